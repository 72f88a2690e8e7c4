"""Self-contained HTML pages with playable, synced clips: what ``inspect --html`` (and the eval
report) write.

One job per module:

- ``page``: the model: ``Page`` -> ``Section`` -> blocks (``Text``, ``Table``, ``Figure``,
  ``SyncGroup`` of ``Clip`` videos and ``Track`` audio), ``Media`` (display-encoded bytes or a
  file to copy), ``TONES`` (clip border/badge colours). Its docstring shows how to build a page.
- ``encode``: clips and sounds for display (H.264 4:2:0 mp4 with ``+faststart``; WAV), from
  numpy frames; ``DisplayVideoWriter`` streams long videos to a file.
- ``folder``: writes ``OUTDIR/index.html`` and ``OUTDIR/media/`` (refuses a folder that is not
  empty and not a page folder), or ``FOLDER/NAME.html`` and ``FOLDER/NAME_media/`` beside other
  files (``write_page_file``: the eval report and ``decompose`` pages).
- ``render``: the page as one HTML document with inline CSS/JS (``page.css``, ``page.js``) and a
  Content-Security-Policy that lets nothing outside the folder load.
- ``markup``: escaping of every string shown; ``names``: generated media names and media types.
- ``spread``: which samples to show, spread over blend kinds and shards.
- ``inspect_page``: the page of a shard folder (``blendkit inspect DIR --html OUTDIR``).

The trainer's pages (``trainer.eval.report_page``: ``report.html`` of ``blendkit-eval eval`` and
``decompose.html`` of ``blendkit-eval decompose``) are built from the same model.
"""

from blendkit.pages.folder import write_page, write_page_file
from blendkit.pages.page import TONES, Clip, Figure, Media, Page, Section, SyncGroup, Table, Track

__all__ = [
    "TONES",
    "Clip",
    "Figure",
    "Media",
    "Page",
    "Section",
    "SyncGroup",
    "Table",
    "Track",
    "write_page",
    "write_page_file",
]
