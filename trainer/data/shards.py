"""Shard-level stages: resample the shards, split them across ranks and workers.

The shard list itself comes from ``blendkit.format.layout.list_shards``, the one listing.

Every stage is a generator function over shard paths (strings). Ranks and workers are passed in
explicitly, so the split does not depend on environment variables or an initialised process
group (webdataset's ``split_by_node`` reads ``torch.distributed``; ours takes ``rank``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from itertools import islice

from blendkit.format.layout import list_shards  # the one shard listing, for the loader
from blendkit.typed_config import ConfigError

__all__ = [
    "check_enough_shards",
    "list_shards",
    "ordered",
    "resampled",
    "split_by_node",
    "split_by_worker",
]


def ordered(shards: list[str], rng: random.Random | None) -> Iterator[str]:
    """One pass over the shards: in the given order, or shuffled by ``rng`` when given."""
    order = list(shards)
    if rng is not None:
        rng.shuffle(order)
    yield from order


def resampled(shards: list[str], rng: random.Random) -> Iterator[str]:
    """An endless stream of shards drawn with replacement.

    ``rng`` must be seeded identically on every rank and worker: the later splits then hand each
    one a disjoint slice of the same draw sequence, so all ranks together see one i.i.d. stream.
    """
    while True:
        yield shards[rng.randrange(len(shards))]


def split_by_node(src: Iterable[str], rank: int, world_size: int) -> Iterator[str]:
    """Every ``world_size``-th shard starting at ``rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    yield from islice(src, rank, None, world_size)


def split_by_worker(src: Iterable[str], worker: int, num_workers: int) -> Iterator[str]:
    """Every ``num_workers``-th shard (of this rank's) starting at ``worker``."""
    yield from islice(src, worker, None, num_workers)


def check_enough_shards(n_shards: int, world_size: int, workers: int) -> None:
    """A single pass needs a shard for every (rank, worker), else some would read nothing."""
    needed = world_size * max(workers, 1)
    if n_shards < needed:
        raise ConfigError(
            f"data.shards: {n_shards} shards cannot feed world_size={world_size} x "
            f"workers={max(workers, 1)} = {needed} readers in a single pass; write more shards "
            "or lower data.workers"
        )
