"""Index a Kinetics-600 download as distributed.

Annotation CSVs have the columns ``label,youtube_id,time_start,time_end,split`` (the test split
has no label). Files are named ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`` and may sit
anywhere under the source folder: flat, or in per-label folders. Without a CSV, every video file
under the source is an item, labelled by its parent folder's name. Rows whose file is absent become
skips, never errors.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .mkv .webm .avi .mov .m4v .ogv .ogg .flv .mpg .mpeg .3gp .ts .wmv".split()
)
_NAME = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")
CSV_COLUMNS = ("youtube_id", "time_start", "time_end")


class AnnotationError(ValueError):
    """The annotation CSV cannot be used (missing columns, unreadable)."""


@dataclass(frozen=True)
class VideoItem:
    """One source video: where it is and what the annotations say about it."""

    youtube_id: str
    label: str
    split: str
    path: str  # absolute path of the file
    rel: str  # path relative to the source folder, recorded in shards so they do not depend on it


@dataclass(frozen=True)
class Skip:
    """An input that was not used, and why."""

    youtube_id: str
    path: str
    reason: str


def clip_stem(youtube_id: str, time_start: int, time_end: int) -> str:
    """The Kinetics file name without extension."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def find_videos(source: Path) -> list[Path]:
    """Every file under ``source`` with a video extension, sorted by relative path."""
    found = []
    for root, dirs, files in os.walk(source):
        dirs.sort()
        found += [Path(root, f) for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(source).as_posix())


def _youtube_id(path: Path) -> str:
    match = _NAME.match(path.stem)
    return match["youtube_id"] if match else path.stem


def _item(source: Path, path: Path, youtube_id: str, label: str, split: str) -> VideoItem:
    return VideoItem(youtube_id, label, split, str(path), path.relative_to(source).as_posix())


def read_annotations(csv_path: Path) -> list[dict[str, str]]:
    """Rows of a Kinetics annotation CSV, checked for the columns we need."""
    try:
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationError(f"{csv_path}: missing column(s) {', '.join(missing)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AnnotationError(f"{csv_path}: cannot read annotations ({e})") from e


def index_source(
    source: Path | str, annotations: Path | str | None = None, split: str | None = None
) -> tuple[list[VideoItem], list[Skip]]:
    """List the items of a Kinetics-layout folder, and the annotated clips that have no file."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: source folder does not exist")
    videos = find_videos(source)
    if annotations is None:
        items = [
            _item(source, p, _youtube_id(p), p.parent.name if p.parent != source else "", "")
            for p in videos
        ]
        return items, []
    by_stem: dict[str, Path] = {}
    for p in videos:  # prefer .mp4 when a clip exists in several containers
        if p.stem not in by_stem or p.suffix.lower() == ".mp4":
            by_stem[p.stem] = p
    items, skips = [], []
    for row in read_annotations(Path(annotations)):
        row_split = (row.get("split") or "").strip()
        if split is not None and row_split != split:
            continue
        youtube_id = row["youtube_id"].strip()
        try:
            stem = clip_stem(youtube_id, int(float(row["time_start"])), int(float(row["time_end"])))
        except ValueError:
            skips.append(Skip(youtube_id, "", f"bad time_start/time_end in {annotations}"))
            continue
        path = by_stem.get(stem)
        if path is None:
            skips.append(Skip(youtube_id, stem, "missing: no video file with this name"))
            continue
        items.append(_item(source, path, youtube_id, (row.get("label") or "").strip(), row_split))
    items.sort(key=lambda it: it.rel)
    return items, skips
