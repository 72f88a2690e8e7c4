"""Write a ``Page`` as a self-contained folder: ``OUTDIR/index.html`` and ``OUTDIR/media/``.

The folder opens from disk (``file://``) or from any static server. Media files get generated
names (``names.MediaNames``), never names from data. ``OUTDIR`` must be absent, empty, or a page
folder written before (its ``index.html`` carries the ``blendkit.pages`` generator mark): then its
generated media files are replaced and nothing else in it is touched. Anything else is refused
with a ``FileExistsError`` naming the folder, so a typo cannot overwrite a user's files.

``write_page_file(page, FOLDER/NAME.html)`` writes a page beside the files of a folder that holds
other things too (``RUN/eval/report.html`` beside ``report.md``): its media go to
``FOLDER/NAME_media/``, and an existing ``NAME.html`` must be a page written before.

A medium that is already a file inside the page's folder under a plain name our code gave it
(``decompose``'s ``layer_1.mp4``; see ``names.in_place_name``) is pointed at where it is, not
copied: a long video is not stored twice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from blendkit.pages.names import INDEX, MEDIA_DIR, MediaNames, in_place_name, is_generated
from blendkit.pages.page import Media, Page
from blendkit.pages.render import GENERATOR_META, render_page


def is_page(index: Path) -> bool:
    """Whether ``index`` is an HTML file this package wrote (it carries the generator mark)."""
    try:
        with index.open(encoding="utf-8", errors="replace") as f:
            return GENERATOR_META in f.read(4096)
    except OSError:
        return False


def is_page_folder(folder: Path) -> bool:
    return is_page(folder / INDEX)


def _clear_generated(media: Path) -> None:
    if media.is_dir():
        for path in media.iterdir():
            if path.is_file() and is_generated(path.name):
                path.unlink()


def prepare_folder(folder: Path) -> None:
    """Create ``folder``, or clear the generated media of a page written there before."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not is_page_folder(folder):
            raise FileExistsError(f"{folder}: not empty and not a page folder; choose another")
        _clear_generated(folder / MEDIA_DIR)
    (folder / MEDIA_DIR).mkdir(parents=True, exist_ok=True)


def write_page(page: Page, folder: Path) -> Path:
    """Write every medium under a generated name, then ``index.html``; returns its path."""
    folder = Path(folder)
    prepare_folder(folder)
    return _write(page, folder, INDEX, MEDIA_DIR)


def write_page_file(page: Page, path: Path) -> Path:
    """Write ``page`` as the file ``path`` beside whatever its folder holds, its media in
    ``<stem>_media/`` next to it; returns ``path``. An existing ``path`` that is not a page
    written before is refused (``FileExistsError``)."""
    path = Path(path)
    if path.suffix != ".html":
        raise ValueError(f"{path}: a page file must end in .html")
    if path.exists() and not (path.is_file() and is_page(path)):
        raise FileExistsError(f"{path}: exists and is not a page; choose another name")
    media_dir = f"{path.stem}_media"
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    _clear_generated(folder / media_dir)
    return _write(page, folder, path.name, media_dir)


def _in_place(media: Media, folder: Path) -> str | None:
    """The URL of a medium that is a file inside ``folder`` under a plain name, else None."""
    if media.source is None:
        return None
    try:
        relative = media.source.resolve().relative_to(folder.resolve())
    except ValueError:
        return None
    return in_place_name(relative.as_posix())


def _write(page: Page, folder: Path, index_name: str, media_dir: str) -> Path:
    names: dict[int, str] = {}
    generator = MediaNames(media_dir)
    for media in page.media():
        if id(media) in names:  # the same Media used twice is written once
            continue
        in_place = _in_place(media, folder)
        if in_place is not None:
            names[id(media)] = in_place
            continue
        names[id(media)] = name = generator.next(media.ext)
        (folder / media_dir).mkdir(exist_ok=True)
        if media.data is not None:
            (folder / name).write_bytes(media.data)
        else:
            shutil.copyfile(media.source, folder / name)
    index = folder / index_name
    partial = folder / f".{index_name}.tmp"
    partial.write_text(render_page(page, names), encoding="utf-8")
    os.replace(partial, index)  # a page appears whole
    return index
