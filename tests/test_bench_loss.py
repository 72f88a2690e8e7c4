"""bench.loss: the formula it compares against is the trainer's loss, and its section says so."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from bench.loss import formula_pairwise_loss, markdown
from trainer.cost import LossCost
from trainer.losses.reconstruction import pairwise_loss


def test_the_formula_gives_the_trainers_values():
    g = torch.Generator().manual_seed(0)
    outputs = torch.rand(2, 3, 3, 4, 6, 5, generator=g)
    targets = torch.rand(2, 2, 3, 4, 6, 5, generator=g)
    assert_close(formula_pairwise_loss(outputs, targets), pairwise_loss(outputs, targets))


def test_section_gives_both_rows_and_the_ratios():
    costs = {"trainer": LossCost(2 * 2**20, 1 * 2**20, 0.5),
             "formula": LossCost(12 * 2**20, 8 * 2**20, 2.0)}  # fmt: skip
    text = markdown(costs, repeats=3)
    assert "| `pairwise_loss` (trainer) | 2.0 | 1.0 | 0.500 |" in text
    assert "| the formula as written (before) | 12.0 | 8.0 | 2.000 |" in text
    assert "saves 6.0x fewer bytes, peaks 8.0x lower and runs 4.0x faster" in text
    assert "median of 3 timed runs" in text
