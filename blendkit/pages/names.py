"""Safe, generated names for the files of a page folder: the one home of its media types.

A page folder holds ``index.html`` and ``media/`` with files named ``v0001.mp4``, ``a0001.wav``,
``f0001.png`` (video, audio, figure; numbered in the order the page uses them). No name ever comes
from data: a tar member name, a metadata field or a file name a caller passes in chooses nothing
but, through its checked extension, which of the known types a file is.

- ``MEDIA_TYPES``: extension -> (kind, MIME type); the only files a page may hold.
- ``MediaNames().next(ext)``: the next generated name for a file of that type, such as
  ``media/v0003.mp4``.
- ``is_generated(name)``: whether a name inside ``media/`` is one of ours.
- ``in_place_name(relative)``: a file already in the page's folder that the page may point at
  where it is (a name our code gave it, such as ``decompose``'s ``layer_1.mp4``), or None.
"""

from __future__ import annotations

import re

INDEX = "index.html"
MEDIA_DIR = "media"
MEDIA_TYPES: dict[str, tuple[str, str]] = {
    "mp4": ("video", "video/mp4"),
    "wav": ("audio", "audio/wav"),
    "png": ("image", "image/png"),
}
_PREFIX = {"video": "v", "audio": "a", "image": "f"}
_SAFE_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")  # no "..", no leading dot
_GENERATED = re.compile(r"[vaf]\d{4,9}\.(?:" + "|".join(MEDIA_TYPES) + r")")


def check_extension(ext: str) -> str:
    """``ext`` if it is a known media type; else ``ValueError``."""
    if ext not in MEDIA_TYPES:
        raise ValueError(f"media type {ext!r} is not one of {', '.join(MEDIA_TYPES)}")
    return ext


def kind_of(ext: str) -> str:
    """``video``, ``audio`` or ``image``."""
    return MEDIA_TYPES[check_extension(ext)][0]


def mime_of(ext: str) -> str:
    return MEDIA_TYPES[check_extension(ext)][1]


def is_generated(name: str) -> bool:
    """Whether ``name`` (a bare file name inside ``media/``) has the form ``MediaNames`` gives."""
    return _GENERATED.fullmatch(name) is not None


class MediaNames:
    """Hands out ``media/<v|a|f><number>.<ext>``, numbered from 1 per kind (``media_dir``: the
    folder's name, ``media`` unless a page is written beside other files)."""

    def __init__(self, media_dir: str = MEDIA_DIR) -> None:
        if not _SAFE_PART.fullmatch(media_dir):
            raise ValueError(f"bad media folder name {media_dir!r}")
        self.media_dir = media_dir
        self._counts: dict[str, int] = {}

    def next(self, ext: str) -> str:
        kind = kind_of(ext)
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return f"{self.media_dir}/{_PREFIX[kind]}{self._counts[kind]:04d}.{ext}"


def in_place_name(relative: str) -> str | None:
    """``relative`` (a POSIX path inside a page's folder, such as ``layer_1.mp4``) when it may be
    used as a media URL as it is: plain parts of letters, digits, ``._-`` and a known media
    extension; else None (the file is then copied under a generated name)."""
    parts = relative.split("/")
    if not all(_SAFE_PART.fullmatch(p) for p in parts):
        return None
    ext = parts[-1].rsplit(".", 1)[-1].lower() if "." in parts[-1] else ""
    return relative if ext in MEDIA_TYPES else None
