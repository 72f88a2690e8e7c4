"""Safe, generated names for the files of a page folder: the one home of its media types.

A page folder holds ``index.html`` and ``media/`` with files named ``v0001.mp4``, ``a0001.wav``,
``f0001.png`` (video, audio, figure; numbered in the order the page uses them). No name ever comes
from data: a tar member name, a metadata field or a file name a caller passes in chooses nothing
but, through its checked extension, which of the known types a file is.

- ``MEDIA_TYPES``: extension -> (kind, MIME type); the only files a page may hold.
- ``MediaNames().next(ext)``: the next generated name for a file of that type, such as
  ``media/v0003.mp4``.
- ``is_generated(name)``: whether a name inside ``media/`` is one of ours.
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
    """Hands out ``media/<v|a|f><number>.<ext>``, numbered from 1 per kind."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def next(self, ext: str) -> str:
        kind = kind_of(ext)
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return f"{MEDIA_DIR}/{_PREFIX[kind]}{self._counts[kind]:04d}.{ext}"
