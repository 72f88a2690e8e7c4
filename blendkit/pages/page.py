"""What a page holds: sections of text, tables, figures and synced groups of clips.

A ``Page`` is built in memory, then written as a folder by ``write_page(page, outdir)`` (see
``blendkit.pages.folder``). Media are encoded for display when they are added (``Media``), so a
page holds small mp4/wav/png bytes, never decoded frames. Every string is shown as text (escaped
when rendered), never as markup, so metadata, labels and captions can come straight from data.

Example (the shape ``blendkit inspect --html`` and the eval report use)::

    page = Page("Shards: train", subtitle="8 of 160 samples")
    top = page.section("Summary")
    top.table(["blend", "samples"], [["transparent", 80], ["occlusion", 80]])
    top.figure(png_bytes, caption="Samples by blend kind")      # bytes, a PNG path or a Figure
    samples = page.section("Samples", filters=("blend", "label"))
    group = samples.group("000000012", fps=25.0, tags=["transparent"],
                          facets={"blend": ["transparent"], "label": ["dancing", "surfing"]})
    group.video(mix, "mix")                                      # (T, H, W, 3) uint8
    group.video(alpha, "alpha")                                  # (T, H, W) float in [0, 1]
    group.video(out1, "O1", tone="good", badge="chosen: right",  # C3's Figure 7 marking
                row="outputs")                                   # clips of a row line up
    group.audio(a1, 16000, "a1 (dancing)")
    group.sound = 0                                              # a1 follows the videos
    group.meta = [("clip start", "1.24 s"), ("PSNR", "41.2 dB")]
    write_page(page, "OUTDIR")                                   # -> OUTDIR/index.html

The videos of a group play in sync under one play/pause/seek control; one of its audio tracks can
follow them too (the "sound" menu; ``group.sound`` is the one chosen when the page opens), and
each also plays alone with its own controls. Clips given a ``row`` are laid out in rows, one per
run of consecutive clips with the same row name, which labels it. A section's
``filters`` name facets: the page offers a menu per facet, listing every value its groups carry,
and shows only the groups that carry the chosen values.

``TONES`` are the border and badge colours a clip may take: ``good`` (green), ``bad`` (red),
``warn`` (amber), ``info`` (blue).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blendkit.pages import encode
from blendkit.pages.names import check_extension, kind_of

TONES = ("good", "bad", "warn", "info")


@dataclass(frozen=True, eq=False)
class Media:
    """One file of the page: bytes to write, or an existing file to copy (e.g. a long video a
    ``DisplayVideoWriter`` streamed to disk). ``ext`` is one of ``names.MEDIA_TYPES``."""

    ext: str
    data: bytes | None = None
    source: Path | None = None
    size: tuple[int, int] | None = None  # (height, width) of a video, when known

    def __post_init__(self) -> None:
        check_extension(self.ext)
        if (self.data is None) == (self.source is None):
            raise ValueError("a Media holds either data or a source file")

    @property
    def kind(self) -> str:
        return kind_of(self.ext)

    @classmethod
    def file(cls, path: str | Path) -> Media:
        """An existing display-ready file; its type is read from its suffix (mp4, wav, png)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        return cls(ext=check_extension(path.suffix.lstrip(".").lower()), source=path)

    @classmethod
    def video(cls, frames: np.ndarray, fps: float) -> Media:
        frames = encode.as_rgb(frames)
        size = (frames.shape[1], frames.shape[2])
        return cls("mp4", data=encode.encode_display_video(frames, fps), size=size)

    @classmethod
    def audio(cls, samples: np.ndarray, rate: int) -> Media:
        return cls("wav", data=encode.encode_display_audio(samples, rate))

    @classmethod
    def image(cls, png: bytes | str | Path | Any) -> Media:
        """PNG bytes, a PNG file, or a matplotlib figure (saved as PNG)."""
        if isinstance(png, bytes):
            return cls("png", data=png)
        if isinstance(png, str | Path):
            return cls.file(png)
        buf = io.BytesIO()
        png.savefig(buf, format="png")
        return cls("png", data=buf.getvalue())


def _check_tone(tone: str | None) -> str | None:
    if tone is not None and tone not in TONES:
        raise ValueError(f"tone {tone!r} is not one of {', '.join(TONES)}")
    return tone


@dataclass
class Clip:
    """A video of a synced group: a label above it, an optional coloured border and badge, and
    the row it is laid out in (``""``: the group's one row)."""

    media: Media
    label: str
    tone: str | None = None
    badge: str | None = None
    caption: str = ""
    row: str = ""

    def __post_init__(self) -> None:
        if self.media.kind != "video":
            raise ValueError(f"a clip needs a video, got {self.media.ext}")
        _check_tone(self.tone)


@dataclass
class Track:
    """An audio track of a synced group, with its own controls."""

    media: Media
    label: str
    caption: str = ""

    def __post_init__(self) -> None:
        if self.media.kind != "audio":
            raise ValueError(f"a track needs audio, got {self.media.ext}")


@dataclass
class SyncGroup:
    """Videos that play, pause and seek together; audio tracks; metadata; filter facets.

    ``sound``: the index of the track that plays with the videos when the page opens (None: no
    sound until one is chosen in the group's sound menu)."""

    title: str
    fps: float
    tags: list[str] = field(default_factory=list)
    facets: dict[str, list[str]] = field(default_factory=dict)
    meta: list[tuple[str, Any]] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    tone: str | None = None
    sound: int | None = None

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        _check_tone(self.tone)

    def video(self, frames: np.ndarray, label: str, **options: Any) -> Clip:
        """Encode (T, H, W, 3) uint8 or (T, H, W) grey frames at the group's fps and add them;
        ``options``: ``tone``, ``badge``, ``caption``, ``row`` (see ``Clip``)."""
        return self.add_clip(Clip(Media.video(frames, self.fps), label, **options))

    def audio(self, samples: np.ndarray, rate: int, label: str, caption: str = "") -> Track:
        track = Track(Media.audio(samples, rate), label, caption)
        self.tracks.append(track)
        return track

    def add_clip(self, clip: Clip) -> Clip:
        """Add a clip made elsewhere (e.g. ``Clip(Media.file(path), "layer 1")``)."""
        self.clips.append(clip)
        return clip

    def add_track(self, track: Track) -> Track:
        """Add a track made elsewhere (e.g. ``Track(Media.file(path), "soundtrack")``)."""
        self.tracks.append(track)
        return track


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Figure:
    media: Media
    caption: str = ""


@dataclass
class Text:
    paragraphs: list[str]


Block = Text | Table | Figure | SyncGroup


@dataclass
class Section:
    """A titled part of the page; ``filters`` are facet names offered as menus over its groups."""

    title: str
    filters: tuple[str, ...] = ()
    blocks: list[Block] = field(default_factory=list)

    def text(self, *paragraphs: str) -> Text:
        return self._add(Text(list(paragraphs)))

    def table(self, columns: list[str], rows: list[list[Any]], caption: str = "") -> Table:
        return self._add(Table(list(columns), [list(r) for r in rows], caption))

    def figure(self, png: bytes | str | Path | Any, caption: str = "") -> Figure:
        return self._add(Figure(Media.image(png), caption))

    def group(self, title: str, fps: float, **options: Any) -> SyncGroup:
        """A new synced group; ``options``: ``tags``, ``facets``, ``meta``, ``tone``, ``sound``."""
        return self._add(SyncGroup(title, fps, **options))

    def _add(self, block):
        self.blocks.append(block)
        return block

    @property
    def groups(self) -> list[SyncGroup]:
        return [b for b in self.blocks if isinstance(b, SyncGroup)]


@dataclass
class Page:
    """A self-contained HTML page; ``clip_width`` is the width clips are shown at (CSS px)."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    clip_width: int = 256

    def section(self, title: str, filters: tuple[str, ...] = ()) -> Section:
        section = Section(title, tuple(filters))
        self.sections.append(section)
        return section

    def media(self) -> list[Media]:
        """Every file the page uses, in page order."""
        out: list[Media] = []
        for section in self.sections:
            for block in section.blocks:
                if isinstance(block, Figure):
                    out.append(block.media)
                elif isinstance(block, SyncGroup):
                    out += [c.media for c in block.clips] + [t.media for t in block.tracks]
        return out
