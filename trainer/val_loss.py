"""Training's validation: the mean loss terms of a model on a fixed set of batches.

(Evaluation of a finished run, with the paper's tables and figures, is ``trainer.eval``.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from trainer.data.batch import Batch
from trainer.objective import compute_loss, identity_term, model_inputs


@torch.no_grad()
def validation_loss(
    model: nn.Module, kind: str, batches: Iterable[Batch], prep: Callable, autocast: Any
) -> dict[str, float]:
    """Mean loss terms over ``batches`` (weighted by batch size), with the identity baseline.

    ``prep`` puts a loader batch on the device (``trainer.data.device.prepare`` with the run's
    settings); ``autocast`` makes the context the forward pass runs in.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for raw in batches:
        batch = prep(raw, channels_last=False)
        with autocast():
            out = model(*model_inputs(kind, batch))
            _, terms = compute_loss(kind, batch, out)
        terms["identity"] = identity_term(batch)
        n = batch["mix"].shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise RuntimeError("the validation set is empty")
    return {k: v / count for k, v in sums.items()}
