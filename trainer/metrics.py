"""Evaluation metrics, kept apart from the training losses (paper sections 4 and 4.1).

* identity_loss: the "Identity" baseline of Table 1, outputs that are copies of the input.
* improvement_over_mixture: identity loss minus the model's loss, i.e. how much the model improves
  on handing back the input mixture (as asteroid's metrics report improvement over the input).
* chosen_output / control_correct: the control accuracy rule of section 4.1.
* psnr: per-sample peak signal-to-noise ratio in dB.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.losses.pit import pit_from_cost
from trainer.losses.reconstruction import video_loss
from trainer.models.registry import CONTROLS, DETERMINISTIC, INTERNAL, NO_CONTROL


def identity_loss(mix: Tensor, v1: Tensor, v2: Tensor, n_outputs: int = 2) -> Tensor:
    """PIL of n_outputs copies of the input mixture: (B, C, T, H, W) x3 -> (B,).

    Every output is the same video, so every assignment costs l(V1, V) + l(V2, V) and n_outputs
    (>= 2) does not change the value; it is kept so the baseline goes through the same PIL code
    as a model with n outputs. For a transparent blend V = (V1 + V2)/2 this equals l(V1, V2).
    """
    if n_outputs < 2:
        raise ValueError(f"identity baseline needs n_outputs >= 2 for two targets, got {n_outputs}")
    to_targets = torch.stack([video_loss(mix, v1), video_loss(mix, v2)], dim=1)  # (B, 2)
    cost = to_targets.unsqueeze(1).expand(-1, n_outputs, -1)  # (B, n, 2): every output is V
    losses, _ = pit_from_cost(cost, method="auto")
    return losses


def improvement_over_mixture(model_losses: Tensor, mix: Tensor, v1: Tensor, v2: Tensor) -> Tensor:
    """Identity (mixture-as-output) loss minus the model's per-sample loss: (B,) -> (B,).

    Positive means the model beats returning the input; equal to identity_loss for a perfect model.
    """
    baseline = identity_loss(mix, v1, v2)
    if model_losses.shape != baseline.shape:
        raise ValueError(
            f"model_losses must be (B,) = {tuple(baseline.shape)}, got {tuple(model_losses.shape)}"
        )
    return baseline - model_losses


def chosen_output(
    kind: str, scores: Tensor | None = None, *, batch_size: int | None = None
) -> Tensor:
    """Index c of the chosen output slot O_c per sample -> (B,) long.

    Section 4.1: O_c = O_1 for deterministic control and O_{argmin_i s_i} for internal prediction.
    For "none" (C2, no control) we also take O_1, which gives the chance-level accuracy of
    Table 2. ``kind`` is a control kind of ``trainer.models.registry.CONTROLS``; scores: (B, n),
    required for "internal"; otherwise it (or batch_size) gives B.
    """
    if kind == INTERNAL:
        if scores is None or scores.dim() != 2:
            raise ValueError("internal control needs scores of shape (B, n) to choose an output")
        return scores.argmin(dim=1)
    if kind in (NO_CONTROL, DETERMINISTIC):
        if scores is not None:
            return torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        if batch_size is None:
            raise ValueError(f"chosen_output({kind!r}) needs scores or batch_size to know B")
        return torch.zeros(batch_size, dtype=torch.long)
    raise ValueError(f"unknown control kind {kind!r}; expected one of {', '.join(CONTROLS)}")


def control_correct(pairwise_to_v1: Tensor, chosen: Tensor, t_frac: float = 0.2) -> Tensor:
    """Section 4.1: correct iff l(V1, O_c) < min_i l(V1, O_i) + t, t = t_frac * (max_i - min_i).

    pairwise_to_v1: (B, n) losses l(V1, O_i); chosen: (B,) long slot indices c -> (B,) bool.
    The inequality is strict as in the paper, so when all outputs reconstruct V1 equally well
    (max == min, t = 0) no slot counts as correct, and a loss exactly at min + t is incorrect.
    """
    if pairwise_to_v1.dim() != 2 or chosen.shape != pairwise_to_v1.shape[:1]:
        raise ValueError(
            f"control_correct needs losses (B, n) and chosen (B,), "
            f"got {tuple(pairwise_to_v1.shape)} and {tuple(chosen.shape)}"
        )
    low = pairwise_to_v1.min(dim=1).values
    high = pairwise_to_v1.max(dim=1).values
    threshold = t_frac * (high - low)
    chosen_loss = pairwise_to_v1.gather(1, chosen.unsqueeze(1)).squeeze(1)
    return chosen_loss < low + threshold


def psnr(a: Tensor, b: Tensor, max_val: float = 1.0) -> Tensor:
    """PSNR in dB over the last four dims (C, T, H, W): (..., C, T, H, W) -> (...).

    Identical inputs give +inf (mse = 0); no clamping, so the caller sees it.
    """
    if a.shape != b.shape or a.dim() < 4:
        raise ValueError(
            f"psnr needs (..., C, T, H, W) tensors of one shape, "
            f"got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    mse = (a.double() - b.double()).pow(2).mean(dim=(-4, -3, -2, -1))
    return (10.0 * torch.log10(max_val**2 / mse)).to(
        a.dtype if a.is_floating_point() else torch.float64
    )
