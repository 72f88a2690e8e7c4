"""One optimiser step, as the training loop runs it and the GPU benchmark measures it.

``make_stepper`` wraps a built model (``trainer.train_state.build``) the way the run asks: in
DDP with several ranks (SyncBatchNorm first, on CUDA, when ``sync_batchnorm``), compiled with
``compile``, under bf16 autocast on CUDA with ``bf16``. ``Stepper.step`` then runs ``accum``
micro-batches forward and backward (gradients scaled by 1 / accum, DDP all-reducing on the last
one only), clips the gradient norm, steps the optimiser and the schedule, and returns the last
micro-batch, its outputs and the mean logged terms as device tensors: nothing in a step reads a
value back to the host (``trainer.logger`` does, once per log interval).

``COMPILE_BACKEND`` is what ``compile=true`` hands to ``torch.compile`` (tests take a backend
that generates no code).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from trainer.config import TrainConfig
from trainer.data.batch import Batch
from trainer.distributed import Dist
from trainer.models import ModelOutput
from trainer.objective import compute_loss, model_inputs
from trainer.train_state import TrainState

log = logging.getLogger(__name__)

COMPILE_BACKEND = "inductor"


def autocast_factory(bf16: bool) -> Callable[[], Any]:
    """A factory of the context the forward pass runs in: CUDA bf16 autocast, or nothing."""
    if bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


@dataclass
class Stepper:
    """What an optimiser step needs: the state it changes and how the model is run."""

    state: TrainState
    net: nn.Module  # the model, or its DDP wrapper
    forward: Callable[..., ModelOutput]  # ``net``, compiled when asked
    kind: str
    autocast: Callable[[], Any]
    grad_clip: float
    world_size: int

    def step(
        self, next_micro: Callable[[], Batch], accum: int
    ) -> tuple[Batch, ModelOutput, dict[str, Tensor]]:
        """One optimiser step over ``accum`` micro-batches from ``next_micro`` -> (the last
        micro-batch, its outputs, the terms averaged over the micro-batches)."""
        terms: dict[str, Tensor] = {}
        for micro in range(accum):
            batch = next_micro()
            reduce = micro == accum - 1 or self.world_size == 1  # DDP: all-reduce on the last
            out, micro_terms = self.forward_backward(batch, accum, reduce)
            terms = {k: terms.get(k, 0.0) + v / accum for k, v in micro_terms.items()}
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.state.model.parameters(), self.grad_clip)
        self.state.optimizer.step()
        self.state.optimizer.zero_grad(set_to_none=True)
        self.state.scheduler.step()
        return batch, out, terms

    def forward_backward(
        self, batch: Batch, accum: int, reduce: bool
    ) -> tuple[ModelOutput, dict[str, Tensor]]:
        """One micro-batch's forward and backward pass, its gradients scaled by 1 / ``accum``
        (``reduce``: DDP all-reduces them now) -> (outputs, its terms to log)."""
        with contextlib.nullcontext() if reduce else self.net.no_sync():
            with self.autocast():
                out = self.forward(*model_inputs(self.kind, batch))
                loss, terms = compute_loss(self.kind, batch, out)
            (loss / accum).backward()
        return out, terms


def configure_backends(cfg: TrainConfig, cuda: bool) -> None:
    """Process-wide settings of the run: CPU threads, or cuDNN autotuning and TF32 on CUDA."""
    if not cuda and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def make_stepper(cfg: TrainConfig, state: TrainState, d: Dist) -> Stepper:
    """The run's model wrapped as ``cfg`` asks (see the module docstring)."""
    cuda = d.device.type == "cuda"
    net = _distributed(state.model, d, cuda, cfg.sync_batchnorm)
    forward = torch.compile(net, backend=COMPILE_BACKEND) if cfg.compile else net
    autocast = autocast_factory(cfg.bf16 and cuda)
    return Stepper(state, net, forward, cfg.model_name, autocast, cfg.optim.grad_clip, d.world_size)


def _distributed(model: nn.Module, d: Dist, cuda: bool, sync: bool) -> nn.Module:
    """The model wrapped in DDP when there are several ranks, its BatchNorms synchronised across
    ranks first when ``sync`` (``sync_batchnorm``)."""
    if d.world_size == 1:
        return model
    synced = sync and sync_batchnorm(model, cuda)
    # synchronised statistics are equal on every rank: no need to broadcast rank 0's each step
    return DistributedDataParallel(
        model, device_ids=[d.local_rank] if cuda else None, broadcast_buffers=not synced
    )


def sync_batchnorm(model: nn.Module, cuda: bool) -> bool:
    """Turn ``model``'s BatchNorms into SyncBatchNorms, in place (the parameters and buffers
    stay the same tensors, so the optimiser and checkpoints see no difference); on CUDA only,
    where SyncBatchNorm runs. Returns whether any was converted.

    On by default (``TrainConfig.sync_batchnorm``): the statistics are then taken over the
    global micro-batch, so the paper config trains the same model on 1 GPU or 32, where per-rank
    batch statistics would come from 128 / 32 = 4 clips, the regime in which BatchNorm broke
    evaluation (``trainer.models.norm``). The cost is two all-reduces of a few KB per BatchNorm
    layer and pass (not measured: no multi-GPU machine was at hand); ``sync_batchnorm=false``
    turns it off.
    """
    if not any(isinstance(m, _BatchNorm) for m in model.modules()):
        return False
    if not cuda:
        log.info("sync_batchnorm: SyncBatchNorm runs on CUDA only; BatchNorm stays per rank")
        return False
    nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return True
