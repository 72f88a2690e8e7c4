"""One run's metrics (the content of ``eval.json``) from its per-sample rows.

Means per blend kind and over both kinds (``blendkit.format.BOTH``), control accuracy in
percent on the samples whose V1 has audio, and Figure 10's curves. Losses are in the paper's
unit (the rows are, ``trainer.eval.scoring``); ``loss_unit`` says so and ``pixel_range`` is the
range the run computed in.
"""

from __future__ import annotations

from typing import Any

from blendkit.format import BLEND_KINDS, BOTH
from trainer import pixels
from trainer.eval.audio_shift import METHOD, shift_frames
from trainer.eval.runs import LoadedRun
from trainer.models.registry import DETERMINISTIC, INTERNAL, NO_CONTROL

GROUPS: tuple[str, ...] = (*BLEND_KINDS, BOTH)  # each kind, then every sample
CONTROL_RULES = {
    NO_CONTROL: "random output slot (chance: the model has no control)",
    DETERMINISTIC: "O_c = O_1",
    INTERNAL: "O_c = O_argmin_i s_i",
}


def _in(group: str, row: dict[str, Any]) -> bool:
    return group == BOTH or row["blend"] == group


def by_blend(rows: list[dict[str, Any]], field: str) -> dict[str, float]:
    """Mean of ``field`` per blend kind and over every sample (None values skipped)."""
    out: dict[str, float] = {}
    for group in GROUPS:
        values = [float(r[field]) for r in rows if r.get(field) is not None and _in(group, r)]
        if values:
            out[group] = sum(values) / len(values)
    return out


def count(rows: list[dict[str, Any]], field: str | None = None) -> dict[str, int]:
    """Samples per blend kind and in all (those with a ``field`` value, if given)."""
    out = {}
    for group in GROUPS:
        n = sum(1 for r in rows if _in(group, r) and (field is None or r[field] is not None))
        if n:
            out[group] = n
    return out


def summarise(
    loaded: LoadedRun,
    rows: list[dict[str, Any]],
    shifted: list[list[list[bool | None]]],
    offsets_s: tuple[float, ...],
    audio_rate: int,
    hop: int,
    params: int,
) -> dict[str, Any]:
    """The metrics of one run; ``shifted`` holds, per batch, Figure 10's correctness per offset
    and sample (empty for uncontrolled models)."""
    for r in rows:
        r["improvement"] = r["identity"] - r["loss"]
    metrics: dict[str, Any] = {
        "run": str(loaded.path),
        "name": loaded.name,
        "model": loaded.kind,
        "step": loaded.step,
        "checkpoint": str(loaded.checkpoint),
        "params": params,
        "pixel_range": loaded.pixel_range,
        "loss_unit": pixels.LOSS_UNIT,
        "samples": count(rows),
        "loss": by_blend(rows, "loss"),
        "identity_loss": by_blend(rows, "identity"),
        "improvement": by_blend(rows, "improvement"),
    }
    if loaded.control == DETERMINISTIC:
        metrics["deterministic_loss"] = by_blend(rows, "deterministic_loss")
    metrics["control_rule"] = CONTROL_RULES[loaded.control]
    metrics["control_chance"] = loaded.control == NO_CONTROL
    # percent, samples whose V1 has audio
    metrics["control_accuracy"] = {
        k: 100.0 * v for k, v in by_blend(rows, "control_correct").items()
    }
    metrics["control_samples"] = count(rows, "control_correct")
    if shifted:
        metrics["fig10"] = {
            "offsets_s": list(offsets_s),
            "shift_frames": [shift_frames(o, audio_rate, hop) for o in offsets_s],
            "method": METHOD,
            "control_accuracy": _fig10_curves(rows, shifted, offsets_s),
        }
    metrics["per_sample"] = rows
    return metrics


def _fig10_curves(
    rows: list[dict[str, Any]], shifted: list[list[list[bool | None]]], offsets_s: tuple[float, ...]
) -> dict[str, list[float | None]]:
    """Control accuracy (%) per group at each offset; groups with no value at all left out."""
    curves: dict[str, list[float | None]] = {}
    for j, _ in enumerate(offsets_s):
        flat = [
            {"blend": r["blend"], "c": c}
            for r, c in zip(rows, (c for batch in shifted for c in batch[j]), strict=True)
        ]
        acc = by_blend(flat, "c")
        for group in GROUPS:
            value = acc.get(group)
            curves.setdefault(group, []).append(None if value is None else 100.0 * value)
    return {k: v for k, v in curves.items() if any(x is not None for x in v)}
