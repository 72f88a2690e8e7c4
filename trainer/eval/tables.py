"""Markdown tables in the paper's format, our numbers next to the paper's.

Each function takes the per-run ``metrics`` dicts of ``trainer.eval.scoring.evaluate_run`` (the
content of ``eval.json``) and returns a markdown table; the paper's value sits in its own
column (``trainer.paper``) so a reader compares row by row. Losses are the paper's l summed
over the two targets (eq. 4) in the paper's unit (``trainer.pixels``), accuracies in percent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from blendkit.format import BOTH, OCCLUSION, TRANSPARENT, Geometry
from trainer import paper, pixels
from trainer.models.registry import NO_CONTROL, control_of


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: list[str]) -> list[str]:
    return [_row(cells), _row(["---"] * len(cells))]


def units_line(runs: list[dict[str, Any]]) -> str:
    """The report's one statement of the loss unit, with the ranges the runs computed in."""
    ranges = sorted({m.get("pixel_range", pixels.LEGACY) for m in runs})
    notes = "; ".join(f"runs in {r}: {pixels.how_reported(r)}" for r in ranges)
    return f"Every loss is in the paper's unit, pixels in [-1, 1] ({notes})."


def table1(runs: list[dict[str, Any]]) -> str:
    """Identity baseline and each run: loss (transparent, occlusion) and size."""
    lines = _header(
        [
            "Model",
            "Loss (Transp.)",
            "Loss (Occl.)",
            "Size",
            "Paper: Transp.",
            "Paper: Occl.",
            "Paper: Size",
        ]
    )
    first = runs[0]
    published = paper.TABLE1["identity"]
    lines.append(
        _row(
            [
                "Identity",
                _num(first["identity_loss"].get(TRANSPARENT)),
                _num(first["identity_loss"].get(OCCLUSION)),
                "-",
                _num(published[0]),
                _num(published[1]),
                "-",
            ]
        )
    )
    for m in runs:
        p = paper.TABLE1.get(m["model"])
        lines.append(
            _row(
                [
                    m["name"],
                    _num(m["loss"].get(TRANSPARENT)),
                    _num(m["loss"].get(OCCLUSION)),
                    f"{m['params'] / 1e6:.2f}M",
                    _num(p[0]) if p else "-",
                    _num(p[1]) if p else "-",
                    f"{p[2]:.1f}M" if p and p[2] else "-",
                ]
            )
        )
    return "\n".join(lines)


def table2(runs: list[dict[str, Any]]) -> str:
    """Loss and control accuracy on transparent blends (occlusion accuracy as an extra column)."""
    lines = _header(
        [
            "Model",
            "Loss (Transp.)",
            "Control Acc. (Transp.)",
            "Control Acc. (Occl.)",
            "Rule",
            "Paper: Loss",
            "Paper: Control Acc.",
        ]
    )
    for m in runs:
        acc = m.get("control_accuracy", {})
        chance = " (chance)" if m.get("control_chance") else ""
        p = paper.TABLE2.get(m["model"])
        chance_row = control_of(m["model"]) == NO_CONTROL
        paper_acc = "-" if p is None else _pct(p[1]) + (" (chance)" if chance_row else "")
        lines.append(
            _row(
                [
                    m["name"],
                    _num(m["loss"].get(TRANSPARENT)),
                    _pct(acc.get(TRANSPARENT)) + (chance if TRANSPARENT in acc else ""),
                    _pct(acc.get(OCCLUSION)) + (chance if OCCLUSION in acc else ""),
                    m.get("control_rule", "-"),
                    _num(p[0]) if p else "-",
                    paper_acc,
                ]
            )
        )
    return "\n".join(lines)


def table3(accuracy: dict[str, dict[str, float]], decomposed: dict[str, str]) -> str:
    """Action recognition accuracy; ``decomposed`` maps each run's row name to its model kind."""
    lines = _header(["Mode", "Acc. (Transp.)", "Acc. (Occl.)", "Paper: Transp.", "Paper: Occl."])
    names = {"pure": "classifier - pure video", "blended": "classifier - blended video"}
    for row in [*names, *decomposed]:
        cells = accuracy.get(row, {})
        published = paper.TABLE3.get(row) or paper.TABLE3.get(decomposed.get(row, ""))
        label = names.get(row, f"{row} + classifier")
        lines.append(
            _row(
                [
                    label,
                    _pct(cells.get(TRANSPARENT)),
                    _pct(cells.get(OCCLUSION)),
                    _pct(published[0]) if published else "-",
                    _pct(published[1]) if published else "-",
                ]
            )
        )
    return "\n".join(lines)


def fig10_table(runs: list[dict[str, Any]]) -> str:
    """Figure 10's numbers: control accuracy (transparent, else all samples) per audio offset."""
    curves = [m for m in runs if "fig10" in m]
    if not curves:
        return ""
    offsets = curves[0]["fig10"]["offsets_s"]
    lines = _header(["Offset (s)", *[m["name"] for m in curves]])
    for j, offset in enumerate(offsets):
        cells = [f"{offset:.2f}"]
        for m in curves:
            acc = m["fig10"]["control_accuracy"]
            series = acc.get(TRANSPARENT) or acc.get(BOTH) or []
            cells.append(_pct(series[j] if j < len(series) else None))
        lines.append(_row(cells))
    return "\n".join(lines)


def _table3_from_runs(runs: list[dict[str, Any]]) -> str:
    with3 = [m for m in runs if "table3" in m]
    if not with3:
        return ""
    accuracy = {k: v for k, v in with3[0]["table3"]["accuracy"].items() if k in ("pure", "blended")}
    for m in with3:
        accuracy[m["name"]] = m["table3"]["accuracy"].get(m["name"], {})
    return table3(accuracy, {m["name"]: m["model"] for m in with3})


def report(
    runs: list[dict[str, Any]],
    figures: dict[str, dict[str, str]],
    folder: Path,
    shards: Path,
    geometry: Geometry,
    max_samples: int | None,
) -> str:
    """The markdown report: setup, Tables 1-3, Figure 10 numbers and links to every figure."""
    counts = runs[0]["samples"]
    lines = [
        "# Evaluation report",
        "",
        f"Validation shards: `{shards}` ({counts.get(TRANSPARENT, 0)} transparent, "
        f"{counts.get(OCCLUSION, 0)} occlusion samples"
        + (f", first {max_samples}" if max_samples else "")
        + f"; the runs were trained on clips of {geometry.frames} frames at {geometry.fps:g} fps, "
        f"{geometry.height}x{geometry.width}).",
        "The mixtures are fixed: shards in sorted order, one pass, no shuffle, no remix.",
        "Loss: the paper's l (L1 + spatial-gradient L1, per-element means) summed over the two "
        "targets under the best output assignment (eq. 4); lower is better. Paper numbers are "
        "for Kinetics-600 at 64x128x128 and full-width models trained for 124k steps.",
        units_line(runs),
        "",
        "Runs: " + ", ".join(f"`{m['run']}` (step {m['step']})" for m in runs),
        "",
        "Watch the examples play, in sync and with the control audio: [report.html](report.html).",
        "",
        "## Table 1: reconstruction loss",
        "",
        table1(runs),
        "",
        "The identity baseline (outputs are copies of V) depends only on the data; the paper's "
        "0.364 / 0.362 are for Kinetics-600 validation clips.",
        "",
        "## Table 2: control accuracy",
        "",
        table2(runs),
        "",
        "Section 4.1 rule: O_c is correct when l(V1, O_c) < min_i l(V1, O_i) + t, "
        "t = 0.2 (max_i - min_i). Counted on samples whose V1 has audio. Uncontrolled models "
        "(C2 and the Centrifuges) have no chosen slot: their value is the rule applied to a "
        "uniformly random slot (seeded), i.e. chance.",
    ]
    fig10 = fig10_table(runs)
    if fig10:
        lines += [
            "",
            "## Figure 10: control accuracy vs. offset of the control audio",
            "",
            "The log-mel of V1's audio is rolled circularly in time by the offset (audio leaving "
            "the clip's end re-enters at its start), so an offset of a whole clip (2.56 s) wraps "
            "back to the unshifted audio and the largest misalignment is at half a clip; the "
            "paper shifted the audio window along the source video instead. Accuracy on "
            "transparent samples (all samples when there are none).",
            "",
            fig10,
        ]
    t3 = _table3_from_runs(runs)
    if t3:
        lines += [
            "",
            "## Table 3: action recognition",
            "",
            t3,
            "",
            "Transparent: 1 / 0.5 / 0 for both / one / no labels among the two predictions (top-2 "
            "on the blended video, top-1 of each of the two PIL-matched outputs after "
            "decomposition). Occlusion: top-1 = label of V2 (blended video, or the output "
            "matched to V2). Pure: top-1 on V1 and V2.",
        ]
    lines += ["", "## Figures", "", *_figure_links(figures, folder)]
    return "\n".join(lines).rstrip() + "\n"


def _figure_links(figures: dict[str, dict[str, str]], folder: Path) -> list[str]:
    """A heading per run, then each figure inline and each video as a link, relative to
    ``folder``."""
    lines = []
    for name, paths in figures.items():
        lines += [f"### {name}", ""]
        for key, path in paths.items():
            rel = os.path.relpath(path, folder)
            image = path.endswith(".png")
            lines += [f"{key}: ![{key}]({rel})" if image else f"{key}: [{rel}]({rel})", ""]
    return lines
