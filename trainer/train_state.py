"""What a training run is made of, and its checkpoint payload: build, save, restore, digest.

A checkpoint (``trainer.checkpoint`` writes it atomically) holds the model, optimizer and
scheduler states, the step, every rank's RNG states (``all_gather_object``), the data stream
position (micro-batches consumed), the config as JSON and the run record
(``trainer.run_record``). Restoring gives each rank its own RNG
states when the world size is unchanged, else rank 0's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer import checkpoint as ckpt
from trainer.config import ConfigError, TrainConfig
from trainer.distributed import Dist, gather_objects
from trainer.models import build_model, to_channels_last
from trainer.models.checkpointing import enable_activation_checkpointing
from trainer.optim import make_optimizer, make_scheduler
from trainer.run_record import TrainedOn


@dataclass
class TrainState:
    """The objects an optimiser step changes."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build(cfg: TrainConfig, device: torch.device, channels_last: bool) -> TrainState:
    """Model, optimiser and schedule from the seed (identical on every rank)."""
    seed_everything(cfg.seed)
    model = build_model(cfg.model_name, cfg.model).to(device)
    if cfg.activation_checkpointing and enable_activation_checkpointing(model) == 0:
        raise ConfigError(f"activation_checkpointing: {cfg.model_name} has no blocks to wrap")
    if channels_last:
        to_channels_last(model)
    optimizer = make_optimizer(cfg.optim, model)
    return TrainState(model, optimizer, make_scheduler(cfg.optim, optimizer))


def save(
    run: Path,
    state: TrainState,
    cfg: TrainConfig,
    record: TrainedOn,
    d: Dist,
    *,
    step: int,
    consumed: int,
) -> None:
    """Checkpoint step ``step`` (every rank calls it: the RNG states are gathered)."""
    rngs = gather_objects(ckpt.rng_state(), d)
    if not d.main:
        return
    payload = {
        "step": step,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "rng": rngs,
        "data": {"batches": consumed, "seed": cfg.data.seed},
        "config": json.dumps(dataclasses.asdict(cfg), default=str),
        "trained_on": record.to_dict(),
    }
    ckpt.save(ckpt.checkpoint_path(run, step), payload)
    ckpt.prune(run, cfg.keep_ckpts)


PAYLOAD_KEYS = ("step", "model", "optimizer", "scheduler", "rng", "data")


def check_payload(saved: dict[str, Any]) -> None:
    """``CheckpointError`` unless ``saved`` has the parts of a payload ``save`` writes."""
    missing = [k for k in PAYLOAD_KEYS if k not in saved]
    ok = not missing and isinstance(saved["step"], int) and isinstance(saved["model"], dict)
    ok = ok and isinstance(saved["data"], dict) and isinstance(saved["data"].get("batches"), int)
    if not ok or not isinstance(saved["rng"], list | tuple) or not saved["rng"]:
        what = f"lacks {', '.join(missing)}" if missing else "has parts of the wrong type"
        raise ckpt.CheckpointError(f"not a training checkpoint: it {what}")


def restore(path: Path, saved: dict[str, Any], state: TrainState, d: Dist) -> tuple[int, int]:
    """Load checkpoint ``path``'s payload ``saved`` (``check_payload``) into the training objects
    and the RNGs -> (step, batches consumed); ``CheckpointError`` naming the file if it does not
    fit them."""
    try:
        state.model.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        rngs = saved["rng"]
        ckpt.set_rng_state(rngs[d.rank] if len(rngs) == d.world_size else rngs[0])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ckpt.CheckpointError(f"{path}: does not fit this run's model ({first})") from None
    return saved["step"], saved["data"]["batches"]


def params_digest(model: nn.Module) -> str:
    """SHA-256 of the parameters in registration order (bit-exact weight identity).

    Buffers are left out: under DDP each rank's BatchNorm running stats follow its own last
    batch (DDP re-broadcasts rank 0's before every forward, and rank 0's are checkpointed).
    """
    h = hashlib.sha256()
    for name, tensor in model.named_parameters():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
