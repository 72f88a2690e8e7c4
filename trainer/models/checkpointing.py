"""Activation checkpointing of the model's blocks: recompute them in the backward pass.

The encoder's Inception blocks and the decoder's up-blocks are the units recomputed. BatchNorm
running statistics are updated once per forward pass, as without checkpointing:

* eagerly, the recomputation restores them (``_keep_batchnorm_stats``, a ``context_fn``);
* under ``torch.compile`` a ``context_fn`` must make ``TorchDispatchMode``s (AOTAutograd
  refused ours: "context_fn ... must generate a tuple of two TorchDispatchModes"), and none is
  needed: the checkpointed region is traced once, AOTAutograd turns the buffer updates into
  writes at the end of the forward graph, and the backward graph recomputes only what the
  gradients need, so the statistics are written once (tests/test_train.py compares them with
  an eager run without checkpointing).

Why these blocks and not more (``trainer.cost``, paper C2, bf16, per sample; ``make params``
prints the table): without checkpointing a step saves 1049 MiB and peaks at an estimated
1086 MiB, for 1259 GFLOP. Recomputing the blocks saves 483 MiB and peaks at 655 MiB for 1591
hardware GFLOP (+26%): the paper's batch of 128 then fits one 141 GB H200 (82 GiB). Recomputing
everything but the block boundaries as well (the stem's units and pools, the heads, the
composition, the control regressor, the audio blocks and the loss: ``trainer.cost.BOUNDARIES``)
saves 389 MiB but peaks at 623 MiB (-5%) for 1681 GFLOP (+6% more): the peak is then set by
the backward pass's gradients and recomputed blocks, not by what the forward pass saves, and the
loss already saves only its inputs. What the 5% buys, at batch 128 on the GPUs of
``trainer.devices``: nothing on an H200 or B200 (both policies fit the whole batch), nor on an
H100 SXM or A100; on an H100 NVL, L40S or L4 the micro-batch doubles (64 -> 128, 32 -> 64,
16 -> 32), which halves the gradient accumulation, and accumulation costs no FLOPs, where the
recomputation costs 6% on every step. C3 internal is alike (671 -> 624 MiB for +7% FLOPs).
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
        if torch.compiler.is_compiling():  # traced: the buffers are written once (docstring)
            return checkpoint(forward, *args, use_reentrant=False)
        return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts)

    return run
