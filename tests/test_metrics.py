"""Metrics: identity baseline, improvement over the mixture, control accuracy rule, PSNR."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from trainer.losses import video_loss
from trainer.metrics import (
    chosen_output,
    control_correct,
    identity_loss,
    improvement_over_mixture,
    psnr,
)

torch.set_num_threads(1)


def _transparent_pair() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    v1 = torch.ones(1, 3, 2, 3, 4)
    v2 = (torch.arange(4, dtype=torch.float32) * 0.25).expand(1, 3, 2, 3, 4).clone()
    return 0.5 * v1 + 0.5 * v2, v1, v2


@pytest.mark.parametrize("n_outputs", [2, 4])
def test_identity_loss_on_transparent_blend_by_hand(n_outputs):
    mix, v1, v2 = _transparent_pair()
    # V1 - V = (0.5, 0.375, 0.25, 0.125) along x: mean 0.3125, |dx| = 0.125, dy = 0
    # -> l(V1, V) = 0.5 * (0.3125 + 0.125) = 0.21875; V2 - V is its negative, same loss.
    expected = torch.tensor([0.21875 + 0.21875])
    assert_close(identity_loss(mix, v1, v2, n_outputs=n_outputs), expected)
    assert_close(identity_loss(mix, v1, v2), video_loss(v1, v2))  # = l(V1, V2) for alpha = 1/2


def test_identity_loss_needs_two_outputs():
    mix, v1, v2 = _transparent_pair()
    with pytest.raises(ValueError, match="n_outputs >= 2"):
        identity_loss(mix, v1, v2, n_outputs=1)


def test_improvement_over_mixture():
    mix, v1, v2 = _transparent_pair()
    assert_close(improvement_over_mixture(torch.zeros(1), mix, v1, v2), torch.tensor([0.4375]))
    assert_close(
        improvement_over_mixture(torch.tensor([0.5]), mix, v1, v2), torch.tensor([-0.0625])
    )
    with pytest.raises(ValueError, match="model_losses"):
        improvement_over_mixture(torch.zeros(2), mix, v1, v2)


def test_chosen_output():
    scores = torch.tensor([[0.3, 0.1, 0.2, 0.9], [0.0, 0.5, 0.5, 0.1]])
    assert chosen_output("internal", scores).tolist() == [1, 0]
    assert chosen_output("deterministic", scores).tolist() == [0, 0]
    assert chosen_output("deterministic", batch_size=3).tolist() == [0, 0, 0]
    assert chosen_output("none", batch_size=1).tolist() == [0]
    with pytest.raises(ValueError, match="needs scores"):
        chosen_output("internal")
    with pytest.raises(ValueError, match="unknown control kind"):
        chosen_output("audio", scores)  # type: ignore[arg-type]


def test_control_correct_rule():
    losses = torch.tensor(
        [
            [1.0, 6.0, 3.0, 4.0],  # min 1, max 6: t = 1, so correct iff l_c < 2
            [1.0, 6.0, 2.0, 4.0],  # chosen exactly at min + t = 2: strict, incorrect
            [1.0, 6.0, 1.5, 4.0],  # within the threshold of the minimum: correct
            [0.5, 0.5, 0.9, 0.7],  # tie at the minimum, either tied slot is correct
            [0.5, 0.5, 0.9, 0.7],
            [0.3, 0.3, 0.3, 0.3],  # all equal: t = 0, nothing is strictly below min
            [0.2, 0.8, 0.8, 0.8],  # n = 4 but one clear winner, chose a loser
        ]
    )
    chosen = torch.tensor([0, 2, 2, 0, 1, 0, 3])
    correct = control_correct(losses, chosen)
    assert correct.dtype == torch.bool
    assert correct.tolist() == [True, False, True, True, True, False, False]
    # a larger threshold fraction admits the edge case
    assert control_correct(losses[1:2], chosen[1:2], t_frac=0.25).tolist() == [True]


def test_control_correct_rejects_bad_shapes():
    with pytest.raises(ValueError, match="control_correct needs"):
        control_correct(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


def test_psnr():
    a = torch.zeros(2, 3, 1, 2, 2)
    b = torch.full((2, 3, 1, 2, 2), 0.1)
    b[1] = 0.0
    value = psnr(a, b)
    assert_close(value[0], torch.tensor(20.0))  # mse 0.01
    assert math.isinf(value[1].item())
    assert_close(psnr(a[:1], b[:1] * 255, max_val=255.0), torch.tensor([20.0]))
