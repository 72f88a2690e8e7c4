"""Files written under an output folder stay under it: the one check every report writer uses.

Evaluation, ``decompose`` and the Table 3 classifier write into a folder the user names; what
goes inside gets generated names (``fig5.png``, ``videos/example-1.mp4``, ``layer_1.mp4``), and
the one part that comes from elsewhere, a run folder's name (several runs evaluated together
each get a subfolder), goes through ``safe_name``. ``inside`` is the last check before a file
is written: the path, resolved (symbolic links followed), must lie under the folder, resolved,
so neither a name with ``..`` or a ``/`` nor a link planted inside the folder sends a write
elsewhere.

- ``safe_name(text, fallback)``: a file-name part of ``[A-Za-z0-9._-]`` from free text.
- ``inside(root, *parts)``: ``root/parts...``, or ``OutsideError`` naming both.
- ``unique_names(texts, fallback)``: safe names, one per text, with ``-2``, ``-3`` added where
  two would be the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 64


class OutsideError(ValueError):
    """A file that would be written outside its output folder."""


def safe_name(text: str, fallback: str) -> str:
    """``text`` as one file-name part: runs of other characters become ``_``, leading dots and
    underscores go (no hidden file, no ``..``), at most ``MAX_NAME`` characters; ``fallback``
    when nothing is left."""
    name = _UNSAFE.sub("_", text).lstrip("._")[:MAX_NAME]
    return name or fallback


def unique_names(texts: Iterable[str], fallback: str) -> list[str]:
    """``safe_name`` of each text (``fallback`` numbered), distinct: ``-2``, ``-3``... added."""
    names: list[str] = []
    for i, text in enumerate(texts, 1):
        base = safe_name(text, f"{fallback}-{i}")
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def inside(root: str | Path, *parts: str) -> Path:
    """``root / parts...`` if, resolved, it lies under ``root`` resolved; else ``OutsideError``."""
    root = Path(root)
    path = root.joinpath(*parts)
    base, target = root.resolve(), path.resolve()
    if target != base and base not in target.parents:
        raise OutsideError(f"{path}: would be written outside the output folder {root}")
    return path
