"""``decompose.html``: the page of ``blendkit-eval decompose`` (``blendkit.pages``).

Written beside ``decompose.json`` in the output folder: one synced group, the cropped input and
every layer playing together, with the input's soundtrack (for C3 the control signal, which plays
with the videos when the page opens) and the layer the audio selects overall framed and badged;
then a table of what was done (the run, the model, the geometry, the windows and, for C3, the
layer the soundtrack selects in each window). The page points at ``input.mp4``,
``layer_k.mp4`` and ``input.wav`` where ``decompose`` wrote them (already in the display
encoding): a long video is not stored twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blendkit.pages import Clip, Media, Page, Track, write_page_file
from blendkit.pages.spread import spaced
from trainer.models.registry import NO_CONTROL

DECOMPOSE_PAGE = "decompose.html"
MAX_WINDOW_ROWS = 12  # windows listed one by one in the table (spread over the video)
HOW_TO = (
    "The input (the centre crop the model saw, at its frame rate) and every output layer play "
    "in sync: the play button (or a click on a video) plays and pauses, the arrows step one "
    "frame, the slider seeks. An uncontrolled model's layers are re-ordered window by window "
    "to continue the previous window's; for C3 the soundtrack is the control signal and the "
    "layer it selects is framed."
)


def _selection(control: dict | None) -> str:
    if control is None:
        return "none: the model has no audio control"
    if control["overall"] is None:
        return "none: the video has no soundtrack"
    return f"layer {control['overall'] + 1} ({control['rule']}, the slot chosen for most frames)"


def _rows(summary: dict[str, Any]) -> list[list[Any]]:
    fps, windows = summary["fps"], summary["windows"]
    rows = [
        ["video", summary["video"]],
        ["run", f"{summary['run']} ({summary['model']})"],
        ["frames", f"{summary['frames']} at {fps:g} fps ({summary['frames'] / fps:.2f} s)"],
        ["input", f"{summary['size']}x{summary['size']} centre crop"],
        ["windows", f"{len(windows)} of {summary['window']} frames"],
        ["selected by the audio", _selection(summary["control"])],
    ]
    if summary["control"] is not None and summary["control"]["overall"] is not None:
        for i in spaced(len(windows), MAX_WINDOW_ROWS):
            w = windows[i]
            last = w["start"] + w["frames"] - 1
            chosen = "-" if w["chosen"] is None else f"layer {w['chosen'] + 1}"
            rows.append([f"  window {i + 1}: frames {w['start'] + 1}-{last + 1}", chosen])
    return rows


def write_decompose_page(summary: dict[str, Any], control: str) -> Path:
    """``decompose.html`` beside the files ``summary`` names (``decompose``'s summary);
    ``control`` is the run's control kind. Returns the page's path."""
    size = (summary["size"], summary["size"])
    selected = None if summary["control"] is None else summary["control"]["overall"]
    page = Page(f"Decomposition: {Path(summary['video']).name}", subtitle=summary["run"])
    page.clip_width = max(160, min(256, 2 * summary["size"]))
    section = page.section("Layers")
    section.text(HOW_TO)
    group = section.group(Path(summary["video"]).name, summary["fps"])
    group.add_clip(Clip(Media("mp4", source=Path(summary["input"]), size=size), "input"))
    for i, path in enumerate(summary["outputs"]):
        mark = {"tone": "info", "badge": "the audio's choice"} if i == selected else {}
        group.add_clip(Clip(Media("mp4", source=Path(path), size=size), f"layer {i + 1}", **mark))
    if summary["sound"] is not None:
        controlled = control != NO_CONTROL
        label = "soundtrack" + (" (control)" if controlled else "")
        group.add_track(Track(Media.file(summary["sound"]), label))
        group.sound = 0 if controlled else None
    page.section("Details").table(["", "value"], _rows(summary))
    return write_page_file(page, Path(summary["page"]))
