"""This process's place in a ``torchrun`` job, and the few collectives the trainer needs.

Launched by ``torchrun``, a process reads RANK / WORLD_SIZE / LOCAL_RANK; gloo on CPU, nccl on
CUDA. A single process (no WORLD_SIZE) is rank 0 of 1 and starts no process group. Every helper
here is a no-op in a world of one, so the training loop calls them unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


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
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    started = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world)
        started = True
    return Dist(rank, world, local, dev), started


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
