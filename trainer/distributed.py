"""This process's place in a ``torchrun`` job, and the few collectives the trainer needs.

Launched by ``torchrun``, a process reads RANK / WORLD_SIZE / LOCAL_RANK; gloo on CPU, nccl on
CUDA (bound to the rank's GPU with ``device_id``). A single process (no WORLD_SIZE) is rank 0 of
1 and starts no process group. Every helper here is a no-op in a world of one, so the training
loop calls them unconditionally.

The device (``pick_device``): ``device=cuda`` that cannot be used is an error naming why.
``device=auto`` takes CUDA when it works and the CPU when the machine has no GPU, but a GPU that
is there and unusable (its device files exist, yet torch was built without CUDA or cannot
initialise the driver) is an error too, not a fallback: the paper config on the CPU runs about a
thousand times slower, and a log line would be noticed hours later. ``device=cpu`` says "CPU"
on purpose.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from blendkit.typed_config import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> tuple[Dist, bool]:
    """Read torchrun's env vars, pick the device, start the process group when needed.

    Returns the ``Dist`` and whether this call initialised the process group (and so must
    ``teardown`` it).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.set_device(dev)
    started = False
    if world > 1 and not dist.is_initialized():
        backend, bound = ("nccl", {"device_id": dev}) if cuda else ("gloo", {})
        dist.init_process_group(backend, rank=rank, world_size=world, **bound)
        started = True
    return Dist(rank, world, local, dev), started


def gpu_device_files() -> list[str]:
    """The NVIDIA device files of this machine (``/dev/nvidia0``...): a GPU is there."""
    return sorted(glob.glob("/dev/nvidia[0-9]*"))


def pick_device(device: str, local_rank: int = 0) -> torch.device:
    """The device ``device`` ("auto", "cpu" or "cuda") means for this rank (module docstring);
    ``ConfigError`` in one line when CUDA is asked for, or there, and cannot be used."""
    if device == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ConfigError(
                f"device={device}: LOCAL_RANK {local_rank} but only {count} GPU(s) visible"
            )
        return torch.device("cuda", local_rank)
    files = gpu_device_files()
    if device == "auto" and not files:
        log.info("device=auto: no GPU on this machine, training on the CPU")
        return torch.device("cpu")
    there = f"a GPU is there ({files[0]}) but " if files else ""
    if torch.version.cuda is None:
        why = f"{there}this torch {torch.__version__} was built without CUDA"
    elif files:
        why = f"{there}CUDA cannot initialise it (driver, or CUDA_VISIBLE_DEVICES)"
    else:
        why = "no GPU on this machine"
    raise ConfigError(f"device={device}: {why}; set device=cpu to train on the CPU")


def teardown() -> None:
    """End the process group ``setup_distributed`` started."""
    dist.destroy_process_group()


def barrier(d: Dist) -> None:
    """Wait for every rank (nothing to wait for in a world of one)."""
    if d.world_size > 1:
        dist.barrier()


def mean_over_ranks(values: Tensor, d: Dist) -> Tensor:
    """``values`` averaged element-wise over the ranks (in place; returned for chaining)."""
    if d.world_size > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= d.world_size
    return values


def gather_objects(value: Any, d: Dist) -> list[Any]:
    """Every rank's ``value``, in rank order (picklable objects)."""
    if d.world_size == 1:
        return [value]
    gathered: list[Any] = [None] * d.world_size
    dist.all_gather_object(gathered, value)
    return gathered
