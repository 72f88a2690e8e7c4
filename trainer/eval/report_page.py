"""``report.html``: the evaluation report as a page whose videos play (``blendkit.pages``).

Written beside ``report.md`` by ``trainer.eval.evaluation.write_files``, media in
``report_media/``; it opens from disk or any static server, offline. It shows:

* Tables 1 and 2 (and Table 3 with a classifier) and Figure 10's numbers as HTML tables, the
  very tables of ``report.md`` (``trainer.eval.tables``, read back from their markdown so the
  numbers have one home), and each controlled run's Figure 10 PNG;
* per run, its examples (the samples the figures show: the first ``n_examples`` of each blend
  kind), each one synced group: the input V, the targets V1 and V2, every output O_i (with the
  target the PIL matched it to) and, for models with a composition module (C2, C3), every term
  beta_ij L_j of Figure 6, a row per output (the row sums to O_i). For a controlled model (C3)
  V1's sound, the control signal, plays with the videos, and the output the audio chose is
  framed green or red as the section 4.1 rule finds it right or wrong (Figure 7's marking);
  the examples filter by blend kind and by that outcome.

Clips are played at the model's input geometry and rate (the run's record: the shards' fps over
``data.frame_stride``); their frames arrive as displayable uint8 (``ExampleClips``), so this
module never converts pixel values itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from blendkit.format import OCCLUSION, TRANSPARENT, Geometry
from blendkit.pages import Page, Section, write_page_file
from trainer.eval import tables
from trainer.eval.types import Example, ExampleClips, RunResult
from trainer.models.registry import NO_CONTROL

REPORT_PAGE = "report.html"
HOW_TO = (
    "Each example plays its videos in sync: the play button (or a click on a video) plays and "
    "pauses, the arrows step one frame, the slider seeks, the menu slows them down. "
    "V is the input mixture, V1 and V2 the videos it was made of, O_i the model's outputs; "
    "for a model with a composition module every term beta_ij L_j is shown too, one row per "
    "output (a row sums to its O_i). For a controlled model (C3) the sound of V1, the control "
    "signal, plays with the videos, and the output the sound chose is framed green when the "
    "section 4.1 rule finds it right, red when wrong."
)
TABLES = (  # (caption, markdown table of trainer.eval.tables)
    ("Table 1: reconstruction loss (eq. 4, lower is better), next to the paper's", tables.table1),
    ("Table 2: loss and control accuracy (section 4.1 rule), next to the paper's", tables.table2),
    ("Figure 10: control accuracy against the offset of the control audio", tables.fig10_table),
)


def clip_width(geometry: Geometry) -> int:
    """CSS width of a clip: small model inputs shown 4x (pixelated), larger ones at 192 px."""
    return max(96, min(192, 4 * geometry.width))


def markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of a table ``trainer.eval.tables`` wrote (``| a | b |`` lines, a rule
    under the header); ``ValueError`` when a row does not split into the header's cells."""
    lines = [line.strip() for line in text.strip().splitlines()]
    cells = [line[1:-1].strip().split(" | ") for line in lines if len(line) >= 2]
    if len(cells) < 2 or any(len(row) != len(cells[0]) for row in cells):
        raise ValueError("not a markdown table of one width")
    return cells[0], cells[2:]


def _tables(section: Section, runs: list[dict[str, Any]], figures: dict[str, dict]) -> None:
    blocks = [(caption, make(runs)) for caption, make in TABLES]
    t3 = tables._table3_from_runs(runs)
    if t3:
        blocks.append(("Table 3: action recognition", t3))
    for caption, text in blocks:
        if not text:
            continue
        try:
            columns, rows = markdown_table(text)
        except ValueError:  # a cell holding " | " (a run folder's name): shown as written
            section.text(caption, text)
            continue
        section.table(columns, rows, caption=caption)
    for name, paths in figures.items():
        if "fig10" in paths:
            section.figure(paths["fig10"], caption=f"Figure 10: {name}")


def _subtitle(
    runs: list[dict[str, Any]], shards: str, stored: Geometry, seen: Geometry, limit
) -> str:
    counts = runs[0]["samples"]
    first = f", first {limit}" if limit else ""
    return (
        f"{', '.join(m['name'] + ' at step ' + str(m['step']) for m in runs)} on {shards}: "
        f"{counts.get(TRANSPARENT, 0)} transparent and {counts.get(OCCLUSION, 0)} occlusion "
        f"validation samples{first}. Clips of {stored.frames} frames at {stored.fps:g} fps, "
        f"{stored.height}x{stored.width}, as stored; as the model saw them (and as they play "
        f"here): {seen.frames} frames at {seen.fps:g} fps, {seen.height}x{seen.width}."
    )


def build_report_page(
    results: list[RunResult],
    runs: list[dict[str, Any]],
    figures: dict[str, dict[str, str]],
    shards: str | Path,
    geometry: Geometry,
    max_samples: int | None = None,
    progress: bool = True,
) -> Page:
    """The page of one evaluation: ``runs`` are the runs' metrics (``eval.json`` without the
    per-sample rows), ``figures`` each run's figure paths (``write_figures``)."""
    seen = results[0].run.record.model_input
    page = Page("Evaluation report", _subtitle(runs, str(shards), geometry, seen, max_samples))
    page.clip_width = clip_width(seen)
    _tables(page.section("Tables"), runs, figures)
    todo = [(r, e) for r in results for e in r.examples if e.clips is not None]
    bar = tqdm(total=len(todo), desc="report.html", unit="example", disable=not progress)
    for result in results:
        controlled = result.run.control != NO_CONTROL
        section = page.section(
            f"Examples: {result.run.name}",
            filters=("blend", "control") if controlled else ("blend",),
        )
        section.text(HOW_TO)
        for example in result.examples:
            if example.clips is not None:
                add_example(section, example, result, controlled)
                bar.update()
    bar.close()
    return page


def _marking(example: Example, slot: int) -> tuple[str | None, str | None]:
    """(tone, badge) of output ``slot``: Figure 7's frame on the chosen one."""
    if example.chosen != slot:
        return None, None
    if example.correct is None:
        return "warn", "chosen (V1 has no sound)"
    return ("good", "chosen: right") if example.correct else ("bad", "chosen: wrong")


def _outcome(example: Example) -> str:
    return "no sound" if example.correct is None else ("right" if example.correct else "wrong")


def _meta(example: Example, row: dict[str, Any], controlled: bool) -> list[tuple[str, str]]:
    to_v1, to_v2 = example.assignment
    meta = [
        ("loss l (eq. 4)", f"{row['loss']:.4f}"),
        ("identity baseline", f"{row['identity']:.4f}"),
        ("matched by the PIL", f"O{to_v1 + 1} \u2192 V1, O{to_v2 + 1} \u2192 V2"),
    ]
    if controlled:
        meta.append(("chosen by the sound", f"O{example.chosen + 1}: {_outcome(example)}"))
    meta.append(("sample", f"{example.key} ({example.blend}, #{example.index} of the pass)"))
    return meta


def add_example(section: Section, example: Example, result: RunResult, controlled: bool) -> None:
    """One synced group: V, V1, V2; O_1..O_n; the beta_ij L_j rows; V1's sound for C3."""
    clips: ExampleClips = example.clips
    record = result.run.record
    row = result.metrics["per_sample"][example.index]
    facets = {"blend": [example.blend]}
    tags = [example.blend]
    tone = None
    if controlled:
        facets["control"] = [_outcome(example)]
        tags.append(f"control: {_outcome(example)}")
        tone = {"right": "good", "wrong": "bad"}.get(_outcome(example))
    group = section.group(
        example.key,
        record.model_input.fps,
        tags=tags,
        facets=facets,
        meta=_meta(example, row, controlled),
        tone=tone,
    )
    given = "input and targets"
    group.video(clips.mix, "V", caption="input", row=given)
    group.video(clips.v1, "V1", caption="target", row=given)
    group.video(clips.v2, "V2", caption="target", row=given)
    matched = {example.assignment[0]: "\u2248 V1", example.assignment[1]: "\u2248 V2"}
    for i, output in enumerate(clips.outputs):
        tone, badge = _marking(example, i)
        caption = matched.get(i, "")
        group.video(output, f"O{i + 1}", tone=tone, badge=badge, caption=caption, row="outputs")
    for i, terms in enumerate(clips.terms or []):
        for j, term in enumerate(terms):
            row = f"O{i + 1} = \u03a3j \u03b2{i + 1}j Lj"  # Figure 6: the row sums to O_i
            group.video(term, f"\u03b2{i + 1}{j + 1} L{j + 1}", row=row)
    if controlled and clips.audio is not None:
        group.audio(clips.audio, record.geometry.audio_rate, "A1", caption="V1's sound: control")
        group.sound = 0


def write_report_pages(page: Page, folders: list[Path]) -> list[Path]:
    """``page`` as ``FOLDER/report.html`` (media in ``FOLDER/report_media/``) in each folder."""
    return [write_page_file(page, Path(folder) / REPORT_PAGE) for folder in folders]
