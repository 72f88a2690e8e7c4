"""Losses of the two audio-control strategies (paper section 3.3, equations 5 and 6)."""

from __future__ import annotations

from torch import Tensor

from trainer.losses.reconstruction import pairwise_loss, video_loss


def deterministic_loss(outputs: Tensor, v1: Tensor, v2: Tensor) -> Tensor:
    """Equation 5: l(V1, O_1) + l(V2, O_2), mean over the batch.

    outputs: (B, n, C, T, H, W) with n == 2, v1, v2: (B, C, T, H, W). The paper restricts
    deterministic control to n = 2 outputs ("the number of output videos has to be restricted
    to n = 2"), so any other n is rejected rather than leaving extra outputs unsupervised.
    """
    if outputs.dim() != 6 or outputs.shape[1] != 2:
        raise ValueError(
            f"deterministic control needs outputs (B, 2, C, T, H, W), got {tuple(outputs.shape)}"
        )
    return (video_loss(outputs[:, 0], v1) + video_loss(outputs[:, 1], v2)).mean()


def regression_loss_from_losses(scores: Tensor, losses_to_v1: Tensor) -> Tensor:
    """Equation 6 from precomputed l(V1, O_i): sum_i |s_i - sg(l_i)|, mean over the batch.

    scores, losses_to_v1: (B, n). The targets are detached here, so a caller may pass a column
    of the PIT cost matrix (cost[:, :, 0] when V1 is target 0) without recomputing it.
    """
    if scores.shape != losses_to_v1.shape or scores.dim() != 2:
        raise ValueError(
            f"regression loss needs scores and losses of shape (B, n), "
            f"got {tuple(scores.shape)} and {tuple(losses_to_v1.shape)}"
        )
    return (scores - losses_to_v1.detach()).abs().sum(dim=1).mean()


def regression_loss(scores: Tensor, outputs: Tensor, v1: Tensor) -> Tensor:
    """Equation 6: sum_i |s_i - l(V1, sg(O_i))|, mean over the batch.

    scores: (B, n) from the control regressor, outputs: (B, n, C, T, H, W), v1: (B, C, T, H, W).
    The stop gradient is on the outputs: training the regressor must not change the outputs.
    """
    losses_to_v1 = pairwise_loss(outputs.detach(), v1.unsqueeze(1)).squeeze(2)  # (B, n)
    return regression_loss_from_losses(scores, losses_to_v1)
