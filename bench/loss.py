"""The pairwise loss at paper size on the CPU: the trainer's against the formula as written.

``trainer.losses.reconstruction.pairwise_loss`` computes l(O_i, V_j) for every output and target
without storing the (B, n, k, C, T, H, W) differences and saves only its inputs for backward.
The formula as written (:func:`formula_pairwise_loss`, what the trainer computed before) keeps
the differences and their x and y gradients in float32. Both run forward and backward on one
64x128x128 sample, n = 4 outputs in bf16 (as under autocast) and k = 2 float32 targets, side by
side (``trainer.cost.loss_costs``): bytes saved for backward, live peak, median wall time.

    python -m bench.loss [--repeats N]
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor

from trainer.cost import LossCost, loss_costs, paper_clip
from trainer.losses.reconstruction import pairwise_loss

MIB = 2**20


def formula_pairwise_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """l(O_i, V_j) for outputs (B, n, C, T, H, W) and targets (B, k, C, T, H, W) -> (B, n, k),
    computed as equation 1 reads, every difference kept in float32."""
    d = (outputs.unsqueeze(2) - targets.unsqueeze(1)).float()  # (B, n, k, C, T, H, W)
    dx = d[..., 1:] - d[..., :-1]
    dy = d[..., 1:, :] - d[..., :-1, :]
    dims = (-4, -3, -2, -1)
    return 0.5 * (d.abs().mean(dims) + dx.abs().mean(dims) + dy.abs().mean(dims))


def measure(repeats: int = 5) -> dict[str, LossCost]:
    """Both losses' costs on one paper-size sample, timed in turns."""
    torch.manual_seed(0)
    losses = {"trainer": pairwise_loss, "formula": formula_pairwise_loss}
    return loss_costs(losses, paper_clip(), torch.bfloat16, repeats=repeats)


def markdown(costs: dict[str, LossCost], repeats: int) -> str:
    new, old = costs["trainer"], costs["formula"]
    clip = paper_clip()
    rows = [
        "## The pairwise loss at paper size (CPU)",
        "",
        f"One {clip.frames}x{clip.size}x{clip.size} sample, n = 4 bf16 outputs against k = 2 "
        "float32 targets, forward + backward, the two losses in turns (`bench/loss.py`); median of "
        f"{repeats} timed runs after one untimed run each; saved = bytes kept for backward, "
        "inputs included; peak = live bytes beyond the inputs.",
        "",
        "| pairwise loss | saved MiB | peak MiB | s forward + backward |",
        "|---|---|---|---|",
    ]
    for name, c in (("`pairwise_loss` (trainer)", new), ("the formula as written (before)", old)):
        rows.append(
            f"| {name} | {c.saved_bytes / MIB:.1f} | {c.peak_bytes / MIB:.1f} | {c.median_s:.3f} |"
        )
    rows += [
        "",
        f"The trainer's loss saves {old.saved_bytes / new.saved_bytes:.1f}x fewer bytes, peaks "
        f"{old.peak_bytes / new.peak_bytes:.1f}x lower and runs {old.median_s / new.median_s:.1f}x "
        "faster here.",
        "",
    ]
    return "\n".join(rows)


def section(repeats: int = 5) -> list[str]:
    return [markdown(measure(repeats), repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("\n".join(section(args.repeats)))


if __name__ == "__main__":
    main()
