"""Write a ``Page`` as a self-contained folder: ``OUTDIR/index.html`` and ``OUTDIR/media/``.

The folder opens from disk (``file://``) or from any static server. Media files get generated
names (``names.MediaNames``), never names from data. ``OUTDIR`` must be absent, empty, or a page
folder written before (its ``index.html`` carries the ``blendkit.pages`` generator mark): then its
generated media files are replaced and nothing else in it is touched. Anything else is refused
with a ``FileExistsError`` naming the folder, so a typo cannot overwrite a user's files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from blendkit.pages.names import INDEX, MEDIA_DIR, MediaNames, is_generated
from blendkit.pages.page import Page
from blendkit.pages.render import GENERATOR_META, render_page


def is_page_folder(folder: Path) -> bool:
    index = folder / INDEX
    try:
        with index.open(encoding="utf-8", errors="replace") as f:
            return GENERATOR_META in f.read(4096)
    except OSError:
        return False


def prepare_folder(folder: Path) -> None:
    """Create ``folder``, or clear the generated media of a page written there before."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not is_page_folder(folder):
            raise FileExistsError(f"{folder}: not empty and not a page folder; choose another")
        media = folder / MEDIA_DIR
        if media.is_dir():
            for path in media.iterdir():
                if path.is_file() and is_generated(path.name):
                    path.unlink()
    (folder / MEDIA_DIR).mkdir(parents=True, exist_ok=True)


def write_page(page: Page, folder: Path) -> Path:
    """Write every medium under a generated name, then ``index.html``; returns its path."""
    folder = Path(folder)
    prepare_folder(folder)
    names: dict[int, str] = {}
    generator = MediaNames()
    for media in page.media():
        if id(media) in names:  # the same Media used twice is written once
            continue
        names[id(media)] = name = generator.next(media.ext)
        if media.data is not None:
            (folder / name).write_bytes(media.data)
        else:
            shutil.copyfile(media.source, folder / name)
    index = folder / INDEX
    index.write_text(render_page(page, names), encoding="utf-8")
    return index
