"""``make reproduce-tiny``'s report: Tables 1 and 2 over seeds, next to the paper's.

Reads each finished job's ``eval.json`` (``trainer.eval``; losses in the paper's unit) and writes
markdown: Table 1 (loss per blend kind, model size), Table 2 (transparent loss, control
accuracy), each cell the mean over seeds with the min-max, the paper's figures
(``trainer.paper``) beside them; then, for every pair of models the paper ranks by loss, whether
ours rank the same way (means over seeds), and the measured minutes of every run.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

from blendkit.format import BLEND_KINDS, OCCLUSION, TRANSPARENT
from trainer import paper
from trainer.config import load_config
from trainer.eval.tables import units_line
from trainer.models.registry import MODEL_NAMES, NO_CONTROL, control_of

if TYPE_CHECKING:
    from trainer.reproduce import Job


def spread(values: Sequence[float], digits: int = 3, suffix: str = "") -> str:
    """``mean (min-max)`` over seeds; the value alone when they all print alike; ``-`` for
    none."""
    if not values:
        return "-"
    mean = f"{statistics.fmean(values):.{digits}f}{suffix}"
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return mean if low == high else f"{mean} ({low}-{high}{suffix})"


def _num(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def collect(jobs: Sequence[Job]) -> dict[str, list[dict[str, Any]]]:
    """model -> the eval.json metrics of its finished jobs (seed order)."""
    from_model: dict[str, list[dict[str, Any]]] = {}
    for job in sorted(jobs, key=lambda j: j.seed):
        path = job.eval_dir / "eval.json"
        if path.is_file():
            from_model.setdefault(job.model, []).append(json.loads(path.read_text()))
    return from_model


def _values(runs: list[dict[str, Any]], field: str, group: str) -> list[float]:
    return [m[field][group] for m in runs if m.get(field, {}).get(group) is not None]


def table1(found: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        _row(["Model", "Loss (Transp.)", "Loss (Occl.)", "Size", "Seeds", "Paper: Transp.",
              "Paper: Occl.", "Paper: Size"]),
        _row(["---"] * 8),
    ]  # fmt: skip
    every = [m for runs in found.values() for m in runs]
    ident = paper.TABLE1["identity"]
    identity = [spread(_values(every, "identity_loss", k)) for k in BLEND_KINDS]
    lines.append(_row([paper.LABELS["identity"], *identity, "-", "-", _num(ident[0]),
                       _num(ident[1]), "-"]))  # fmt: skip
    for model in MODEL_NAMES:
        runs = found.get(model, [])
        p = paper.TABLE1.get(model)
        size = spread([m["params"] / 1e6 for m in runs], 2, "M")
        lines.append(_row([
            paper.LABELS[model], *(spread(_values(runs, "loss", k)) for k in BLEND_KINDS), size,
            str(len(runs)), _num(p[0]) if p else "-", _num(p[1]) if p else "-",
            _num(p[2], 1, "M") if p and p[2] else "-",
        ]))  # fmt: skip
    return lines


def table2(found: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        _row(["Model", "Loss (Transp.)", "Control Acc. (Transp.)", "Control Acc. (Occl.)",
              "Seeds", "Paper: Loss", "Paper: Control Acc."]),
        _row(["---"] * 7),
    ]  # fmt: skip
    for model, (loss, acc) in paper.TABLE2.items():
        runs = found.get(model, [])
        chance = " (chance)" if control_of(model) == NO_CONTROL else ""
        accuracy = [spread(_values(runs, "control_accuracy", k), 1, "%") for k in BLEND_KINDS]
        lines.append(_row([
            paper.LABELS[model], spread(_values(runs, "loss", TRANSPARENT)),
            *(a + chance if a != "-" else a for a in accuracy), str(len(runs)), _num(loss),
            _num(acc, 1, "%") + chance,
        ]))  # fmt: skip
    return lines


def orderings(found: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every pair of models the paper ranks by loss (Table 1 per blend kind, Table 2): ranked
    the same way by ours (means over seeds) or not."""
    lines = []
    tables = [("Table 1, transparent", TRANSPARENT, paper.TABLE1, 0),
              ("Table 1, occlusion", OCCLUSION, paper.TABLE1, 1),
              ("Table 2, transparent", TRANSPARENT, paper.TABLE2, 0)]  # fmt: skip
    for title, kind, table, index in tables:
        ours = {m: statistics.fmean(_values(runs, "loss", kind))
                for m, runs in found.items() if _values(runs, "loss", kind)}  # fmt: skip
        published = {m: v[index] for m, v in table.items() if m in ours}
        held, broken = [], []
        for a, b in combinations(sorted(published, key=published.get), 2):  # a < b in the paper
            (held if ours[a] < ours[b] else broken).append(f"{paper.LABELS[a]} < {paper.LABELS[b]}")
        lines.append(
            f"- {title}: {len(held)} of {len(held) + len(broken)} pairs as in the paper"
            + (f"; not: {', '.join(broken)}" if broken else "")
        )
    return lines


def timing_lines(jobs: Sequence[Job], timings: dict[str, dict[str, float]]) -> list[str]:
    lines = [_row(["Run", "Train (min)", "Eval (min)"]), _row(["---"] * 3)]
    for job in jobs:
        t = timings.get(job.name, {})
        train, evaluate = t.get("train_s"), t.get("eval_s")
        minutes = [_num(None if t is None else t / 60, 1) for t in (train, evaluate)]
        lines.append(_row([job.name, *minutes]))
    return lines


def report(
    jobs: Sequence[Job],
    steps: int,
    val_shards: str,
    timings: dict[str, dict[str, float]],
    overrides: Sequence[str] = (),
) -> str:
    """The markdown report of the jobs that have an eval.json (trained with ``overrides``)."""
    found = collect(jobs)
    every = [m for runs in found.values() for m in runs]
    cfg = load_config("tiny", overrides)
    seeds = sorted({j.seed for j in jobs})
    counts = every[0]["samples"] if every else {}
    lines = [
        "# Tables 1 and 2 in miniature (`make reproduce-tiny`)",
        "",
        f"Each model trained with the `tiny` preset ({steps} steps, batch {cfg.optim.batch}, "
        f"width {cfg.model.width}, n = {cfg.model.n_outputs}, blends: {cfg.data.blend}) for "
        f"seeds {', '.join(map(str, seeds))}; evaluated on `{val_shards}` "
        f"({counts.get(TRANSPARENT, 0)} transparent, {counts.get(OCCLUSION, 0)} occlusion "
        "samples) at the clips the models saw. Cells: mean over seeds (min-max). The paper's "
        "columns are Kinetics-600 at 64x128x128 with full-size models (n = 4) after 124k steps.",
    ]
    if overrides:
        lines.append(f"Set on every run: {', '.join(f'`{o}`' for o in overrides)}.")
    if every:
        lines.append(units_line(every))
    lines += ["", "## Table 1: reconstruction loss", "", *table1(found), "",
              "## Table 2: control (transparent blends)", "", *table2(found), "",
              "Control accuracy: the rule of section 4.1 on samples whose V1 has audio; models "
              "without control are scored on a random output slot (chance).", "",
              "## The paper's orderings at this scale", "", *orderings(found), "",
              "## Minutes per run (this machine, as measured)", "",
              *timing_lines(jobs, timings)]  # fmt: skip
    return "\n".join(lines) + "\n"
