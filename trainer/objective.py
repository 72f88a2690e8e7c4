"""What goes into each model kind and which loss comes out (paper section 3.3).

* ``centrifuge``, ``c2_nomask``, ``c2``: no control signal, permutation invariant loss over
  {V1, V2} (equation 4), generalised by ``PITLoss`` to n >= 2 outputs.
* ``centrifuge_pc``: the predictor-corrector Centrifuge [3]. The paper trains it like the other
  uncontrolled models and does not say how its first stage is supervised; we add the same PIL on
  the predictor's outputs (equal weight, independent matching), so both stages are trained to
  decompose, as deep supervision of the first stage. The logged ``pil`` is the corrector's.
* ``c3_det``: deterministic control, equation 5, V1 forced into O_1 (n = 2: the registry's rule,
  ``trainer.models.registry.check_outputs``, checked by ``TrainConfig``).
* ``c3_internal``: internal prediction, PIL (eq. 4) + regression loss (eq. 6) on the control
  regressor's scores, equal weight (the paper sums them without a weight). The regression
  targets l(V1, O_i) are the PIL cost matrix's V1 column, detached (the stop-gradient).

The branches follow each variant's switches in ``trainer.models.registry`` (its control kind and
whether it is a predictor-corrector), never its name. C3 models are given ``a1``, the log-mel
spectrogram of V1's audio, as the control signal. A sample whose V1 has no audio has an all-zero
``a1`` (set ``data.require_audio=true`` to drop them); the other models get no audio.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from trainer.losses import (
    PITLoss,
    deterministic_loss,
    pairwise_loss,
    regression_loss_from_losses,
)
from trainer.metrics import chosen_output, control_correct, identity_loss
from trainer.models import ModelOutput
from trainer.models.registry import DETERMINISTIC, INTERNAL, is_controlled, variant

_pit = PITLoss()


def model_inputs(kind: str, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """(video, audio) for ``model(video, audio)``: the mixture, and V1's audio for C3 models."""
    return batch["mix"], (batch["a1"] if is_controlled(kind) else None)


def compute_loss(
    kind: str, batch: Mapping[str, Tensor], out: ModelOutput
) -> tuple[Tensor, dict[str, Tensor]]:
    """(scalar training loss, detached 0-dim terms to log) for one model kind and batch."""
    v1, v2 = batch["v1"], batch["v2"]
    targets = torch.stack([v1, v2], dim=1)  # (B, 2, 3, T, H, W)
    terms: dict[str, Tensor] = {}
    spec = variant(kind)  # raises for an unknown kind
    if spec.control == DETERMINISTIC:
        loss = terms["det"] = deterministic_loss(out.outputs, v1, v2)
        with torch.no_grad():
            to_v1 = pairwise_loss(out.outputs.detach(), v1.unsqueeze(1)).squeeze(2)  # (B, 2)
            chosen = chosen_output(DETERMINISTIC, to_v1)  # always O_1
            terms["control_acc"] = control_correct(to_v1, chosen).float().mean()
    else:
        match = _pit.match(out.outputs, targets)
        loss = terms["pil"] = match.losses.mean()
        if spec.predictor_corrector:
            if out.predictor is None:
                raise ValueError(f"{kind} must return its predictor outputs")
            pil_pred, _ = _pit(out.predictor, targets)
            terms["pil_predictor"] = pil_pred
            loss = loss + pil_pred
        if spec.control == INTERNAL:
            if out.scores is None:
                raise ValueError(f"{kind} must return control scores (B, n)")
            to_v1 = match.cost[:, :, 0]  # (B, n) l(V1, O_i); V1 is target 0
            reg = regression_loss_from_losses(out.scores.float(), to_v1)
            terms["reg"] = reg
            loss = loss + reg
            chosen = chosen_output(INTERNAL, out.scores.detach())
            terms["control_acc"] = control_correct(to_v1.detach(), chosen).float().mean()
    terms["loss"] = loss
    return loss, {k: v.detach().float() for k, v in terms.items()}


UNITLESS_TERMS: frozenset[str] = frozenset({"control_acc"})  # logged terms that are no loss


def in_paper_unit(terms: Mapping[str, float], loss_scale: float) -> dict[str, float]:
    """Logged terms as reported: every loss term times ``loss_scale`` (``pixels.loss_scale`` of
    the run's range, so losses are in the paper's unit), the others (``UNITLESS_TERMS``) as
    they are."""
    return {k: v if k in UNITLESS_TERMS else v * loss_scale for k, v in terms.items()}


def identity_term(batch: Mapping[str, Tensor]) -> Tensor:
    """The identity baseline of Table 1 on this batch (outputs = copies of the mixture): the
    reference a model must beat, logged next to its loss."""
    return identity_loss(batch["mix"], batch["v1"], batch["v2"]).mean().detach().float()
