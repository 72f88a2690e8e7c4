"""What each model costs at paper size, next to Table 1: ``python -m trainer.params``.

Per model: parameters (and Table 1's), forward and forward + backward GFLOP per sample, and the
MiB per sample a bf16 training step saves for the backward pass, without activation
checkpointing and with the trainer's (``trainer.cost``). Then, for the paper's model: what each
checkpointing policy saves, peaks at and computes (the numbers behind the trainer's choice,
``trainer.models.checkpointing``), and on common GPUs (``trainer.devices``) the rate at the
issue's 45% MFU target and the largest micro-batch of the paper's 128 whose estimated peak
(``trainer.cost.peak_per_sample``) and training state fit in 90% of the memory. Models are
built and run on meta and fake (CPU and CUDA) tensors, so nothing is allocated and no
arithmetic is done.
Paper size is n = m = 4 (Table 1: "all the results are obtained using models with n = 4
output layers"; m is not given, we take m = n) and width 1.0; c3_det has n = 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer.config import paper
from trainer.cost import (
    BOUNDARIES,
    MIB,
    NO_CHECKPOINTING,
    ModelCost,
    model_cost,
    paper_clip,
    paper_model_config,
    peak_per_sample,
    saved_per_sample,
    train_flops,
    trainer_checkpointing,
)
from trainer.devices import DEVICES, micro_batch_that_fits, training_state_bytes
from trainer.models import ModelConfig, build_model, count_parameters
from trainer.models.registry import MODEL_NAMES
from trainer.paper import TABLE1_MILLIONS


@dataclass
class ParamRow:
    """One model's count and its difference from Table 1 (None where the paper has none)."""

    name: str
    params: int
    paper_millions: float | None
    diff_percent: float | None


def parameter_table(cfg: ModelConfig | None = None) -> list[ParamRow]:
    """Counts for every model at ``cfg`` (paper size by default), built on the meta device."""
    cfg = cfg or ModelConfig()
    rows = []
    for name in MODEL_NAMES:
        with torch.device("meta"):
            params = count_parameters(build_model(name, cfg))
        paper = TABLE1_MILLIONS.get(name)
        diff = None if paper is None else 100.0 * (params / 1e6 - paper) / paper
        rows.append(ParamRow(name, params, paper, diff))
    return rows


def format_table(rows: list[ParamRow]) -> str:
    """Plain-text table of ``rows``."""
    lines = [f"{'model':<15}{'params':>10}{'Table 1':>10}{'diff':>9}"]
    for row in rows:
        paper = "-" if row.paper_millions is None else f"{row.paper_millions:.1f}M"
        diff = "-" if row.diff_percent is None else f"{row.diff_percent:+.1f}%"
        lines.append(f"{row.name:<15}{row.params / 1e6:>9.2f}M{paper:>10}{diff:>9}")
    return "\n".join(lines)


def format_cost_table(costs: list[ModelCost]) -> str:
    """Plain-text table of ``costs`` with Table 1's sizes."""
    head = f"{'model':<15}{'params':>9}{'Table 1':>9}{'GFLOP fwd':>11}{'fwd+bwd':>9}"
    lines = [head + f"{'saved MiB':>11}{'ckpt MiB':>10}"]
    for c in costs:
        paper = TABLE1_MILLIONS.get(c.name)
        paper_text = "-" if paper is None else f"{paper:.1f}M"
        saved = "".join(f"{c.saved[p] / MIB:>{w}.1f}" for p, w in (("none", 11), ("blocks", 10)))
        lines.append(
            f"{c.name:<15}{c.params / 1e6:>8.2f}M{paper_text:>9}"
            f"{c.forward_flops / 1e9:>11.1f}{c.train_flops / 1e9:>9.1f}{saved}"
        )
    return "\n".join(lines)


def format_device_table(
    cost: ModelCost, peaks: dict[str, int], batch: int, optimizer_states: int
) -> str:
    """For ``cost``'s model on each known GPU: peak, memory, samples/s at 45% MFU, and the
    micro-batch of ``batch`` whose estimated peak (``peaks``, bytes per sample by checkpointing
    policy) fits, without and with checkpointing."""
    fixed = training_state_bytes(cost.params, optimizer_states)
    per_sample = ", ".join(f"{p} {b / MIB:.0f} MiB" for p, b in peaks.items())
    lines = [
        f"paper {cost.name}, batch {batch}; estimated peak per sample: {per_sample}",
        f"{'GPU':<12}{'TFLOP/s':>9}{'GB':>6}{'samples/s at 45% MFU':>22}"
        f"{'micro-batch':>13}{'with ckpt':>11}",
    ]
    for d in DEVICES:
        rate = 0.45 * d.bf16_tflops * 1e12 / cost.train_flops
        fits = [_fits(batch, peaks[p], fixed, d.memory_bytes) for p in ("none", "blocks")]
        lines.append(
            f"{d.name:<12}{d.bf16_tflops:>9.0f}{d.memory_gb:>6.0f}{rate:>22.0f}"
            f"{fits[0]:>13}{fits[1]:>11}"
        )
    return "\n".join(lines)


def format_policy_table(
    cost: ModelCost, saved: dict[str, int], peaks: dict[str, int], flops: dict[str, float]
) -> str:
    """What each activation checkpointing policy saves, peaks at and computes per sample
    (hardware FLOPs: recomputation included), for ``cost``'s model."""
    lines = [
        f"paper {cost.name}, per sample: activation checkpointing policies",
        f"{'policy':<12}{'saved MiB':>10}{'peak MiB':>10}{'GFLOP':>9}{'vs none':>9}",
    ]
    for name in saved:
        extra = flops[name] / cost.train_flops - 1
        lines.append(
            f"{name:<12}{saved[name] / MIB:>10.0f}{peaks[name] / MIB:>10.0f}"
            f"{flops[name] / 1e9:>9.1f}{extra:>+9.1%}"
        )
    return "\n".join(lines)


def _fits(batch: int, per_sample: float, fixed: float, memory: float) -> str:
    try:
        return str(micro_batch_that_fits(batch, per_sample, fixed, memory))
    except ValueError:
        return "-"


def main() -> None:
    train = paper()
    costs = [model_cost(name) for name in MODEL_NAMES]
    print(format_cost_table(costs))
    print()
    chosen = next(c for c in costs if c.name == train.model_name)
    cfg, clip = paper_model_config(chosen.name), paper_clip()
    policies = (NO_CHECKPOINTING, trainer_checkpointing(), BOUNDARIES)
    saved = chosen.saved | saved_per_sample(chosen.name, cfg, clip, (BOUNDARIES,))
    peaks = {p.name: peak_per_sample(chosen.name, cfg, clip, p, saved[p.name]) for p in policies}
    flops = {p.name: train_flops(chosen.name, cfg, clip, p)[1] for p in policies}
    print(format_policy_table(chosen, saved, peaks, flops))
    print()
    states = 1 if train.optim.name == "sgd" else 2  # momentum; Adam's two moments
    print(format_device_table(chosen, peaks, train.optim.batch, states))


if __name__ == "__main__":
    main()
