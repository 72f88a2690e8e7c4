"""Activation checkpointing of the model's blocks: recompute them in the backward pass.

Moved here from the training loop as it was; the encoder's Inception blocks and the decoder's
up-blocks are the units recomputed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from trainer.models.decoder import UpBlock
from trainer.models.i3d import InceptionBlock

CHECKPOINTED_BLOCKS = (InceptionBlock, UpBlock)


@contextlib.contextmanager
def _keep_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Undo the running-stat update of a recomputation, so BN sees each batch once."""
    buffers = [
        buf
        for m in module.modules()
        if isinstance(m, _BatchNorm)
        for buf in (m.running_mean, m.running_var, m.num_batches_tracked)
        if buf is not None
    ]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        for buf, value in zip(buffers, saved, strict=True):
            buf.copy_(value)


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every I3D Inception block and decoder up-block in the backward pass.

    Non-reentrant ``torch.utils.checkpoint``; the recomputation restores the BatchNorm running
    stats so that they are updated once per forward, as without checkpointing. Returns the
    number of blocks wrapped.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, CHECKPOINTED_BLOCKS):
            module.forward = _checkpointed(module, module.forward)
            count += 1
    return count


def _checkpointed(module: nn.Module, forward: Any) -> Any:
    def contexts() -> tuple[Any, Any]:
        return contextlib.nullcontext(), _keep_batchnorm_stats(module)

    def run(*args: Any) -> Any:
        if not (module.training and torch.is_grad_enabled()):
            return forward(*args)
        return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts)

    return run
