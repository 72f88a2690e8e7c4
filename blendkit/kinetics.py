"""Index a Kinetics-600 download as distributed.

Annotation CSVs have the columns ``label,youtube_id,time_start,time_end,split`` (the test split
has no label). Files are named ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`` and may sit
anywhere under the source folder: flat, or in per-label folders. Without a CSV, every video file
under the source is an item, labelled by its parent folder's name. Rows whose file is absent, and
rows that cannot be read (too few fields, a time that is not a finite number), become skips whose
``path`` is ``CSV:LINE``, never errors. A file listed twice (the same row again, or two rows or
paths that lead to the same file) is one item: every later listing becomes a skip whose reason
starts with ``DUPLICATE``, so no video is counted twice or blended with itself.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .mkv .webm .avi .mov .m4v .ogv .ogg .flv .mpg .mpeg .3gp .ts .wmv".split()
)
_NAME = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")
CSV_COLUMNS = ("youtube_id", "time_start", "time_end")
DUPLICATE = "duplicate"  # the reason of a skip for a file listed again


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


def read_annotations(csv_path: Path) -> list[tuple[int, dict[str, str | None]]]:
    """(line number, row) of every row of a Kinetics annotation CSV, checked for the columns we
    need. A row with too few fields has ``None`` for the missing ones."""
    try:
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationError(f"{csv_path}: missing column(s) {', '.join(missing)}")
            return [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AnnotationError(f"{csv_path}: cannot read annotations ({e})") from e


def row_stem(row: dict[str, str | None]) -> tuple[str, str]:
    """(youtube_id, file stem) of an annotation row; ``ValueError`` with the reason if the row
    cannot name a file."""
    fields = [row.get(c) for c in CSV_COLUMNS]
    if any(f is None for f in fields):
        raise ValueError(f"too few fields (needs {', '.join(CSV_COLUMNS)})")
    youtube_id, start, end = (f.strip() for f in fields)
    if not youtube_id:
        raise ValueError("empty youtube_id")
    try:
        times = [float(start), float(end)]
    except ValueError:
        raise ValueError(f"time_start/time_end {start!r}, {end!r} are not numbers") from None
    if not all(math.isfinite(t) and t >= 0 for t in times):
        raise ValueError(f"time_start/time_end {start!r}, {end!r} are not finite and >= 0")
    return youtube_id, clip_stem(youtube_id, int(times[0]), int(times[1]))


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
        return _unique(items, {}, [])
    by_stem: dict[str, Path] = {}
    for p in videos:  # prefer .mp4 when a clip exists in several containers
        if p.stem not in by_stem or p.suffix.lower() == ".mp4":
            by_stem[p.stem] = p
    items, skips, where = [], [], {}
    name = Path(annotations).name
    for line, row in read_annotations(Path(annotations)):
        row_split = (row.get("split") or "").strip()
        if split is not None and row_split != split:
            continue
        try:
            youtube_id, stem = row_stem(row)
        except ValueError as e:
            youtube_id = (row.get("youtube_id") or "").strip()
            skips.append(Skip(youtube_id, f"{name}:{line}", f"bad annotation row: {e}"))
            continue
        path = by_stem.get(stem)
        if path is None:
            skips.append(Skip(youtube_id, stem, "missing: no video file with this name"))
            continue
        item = _item(source, path, youtube_id, (row.get("label") or "").strip(), row_split)
        items.append(item)
        where[id(item)] = f"{name}:{line}"
    return _unique(items, where, skips)


def _unique(
    items: list[VideoItem], where: dict[int, str], skips: list[Skip]
) -> tuple[list[VideoItem], list[Skip]]:
    """Items sorted by path, each file once (the first listing): a later listing of the same file
    (or a link to it) becomes a ``DUPLICATE`` skip; ``where`` names a listing's CSV line."""
    first: dict[tuple[int, int], VideoItem] = {}
    for item in items:
        try:
            st = os.stat(item.path)  # (device, inode) names a file whatever path leads to it
        except OSError as e:
            skips.append(Skip(item.youtube_id, item.rel, f"cannot open: {e.strerror}"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in first:
            seen = first[key]
            listed = where.get(id(item), item.rel)
            reason = f"{DUPLICATE}: {item.rel} is listed already ({where.get(id(seen), seen.rel)})"
            skips.append(Skip(item.youtube_id, listed, reason))
        else:
            first[key] = item
    return sorted(first.values(), key=lambda it: it.rel), skips
