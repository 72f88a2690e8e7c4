"""The training stream of one rank: micro-batch number ``start`` onwards, resumable.

A resampled (endless) shard stream is cut into segments of ``segment`` micro-batches (one
checkpoint interval, ``trainer.config.segment_batches``), each a fresh loader pass seeded by the
segment's index, so resuming at a checkpoint starts the right segment instead of replaying
(decoding) every batch before it. A single-pass stream runs pass after pass and is replayed up to
``start``. Injected batches (tests, experiments) are taken as given, ``start`` of them skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import torch

from blendkit.format import Geometry
from blendkit.format.layout import missing_shards
from blendkit.typed_config import ConfigError
from trainer.data.batch import Batch
from trainer.data.loader import Loader, make_loader
from trainer.data.shards import list_shards
from trainer.data.stats import StreamError
from trainer.data.stream_config import DataConfig


def check_shards(key: str, spec: str, allow_pipe: bool = False) -> list[str]:
    """The shards of ``spec``; fail early, naming the config key, when it lists no shard or
    shards that are missing (local paths, ``file://`` and fsspec URLs such as ``s3://``,
    ``gs://`` or ``memory://``: the one listing, ``blendkit.format.layout``), or ``pipe:``
    commands without ``allow_pipe`` (they are run, not checked, when allowed)."""
    try:
        paths = list_shards(spec, allow_pipe=allow_pipe)
        missing = missing_shards(paths)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"{key}: {e}") from None
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ConfigError(f"{key}: shard {missing[0]} does not exist{more}")
    return paths


def data_stream(
    data: DataConfig,
    *,
    rank: int,
    world_size: int,
    segment: int,
    batches: Iterable[Batch] | None = None,
    start: int = 0,
    geometry: Geometry | None = None,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """This rank's micro-batches from number ``start`` on: ``batches`` as given when injected,
    else the shards of ``data`` (see the module docstring), samples of another clip geometry
    than ``geometry`` (the run's) skipped, page-locked with ``pin_memory``."""
    if batches is not None:
        yield from _skip(iter(batches), start)
        return
    loader = make_loader(
        data, rank=rank, world_size=world_size, geometry=geometry, pin_memory=pin_memory
    )
    if data.resampled:
        yield from _segments(data, loader, segment, start)
    else:
        yield from _skip(_passes(data, loader), start)


def next_batch(stream: Iterator[Batch], consumed: int) -> Batch:
    """The stream's next micro-batch; an ended stream is an error naming how far it got."""
    batch = next(stream, None)
    if batch is None:
        raise StreamError(f"data stream ended after {consumed} batches")
    return batch


def _segments(data: DataConfig, loader: Loader, size: int, start: int) -> Iterator[Batch]:
    """A resampled loader's segments of ``size`` micro-batches, from micro-batch ``start``."""
    segment, offset = divmod(start, size)
    while True:
        with torch.random.fork_rng(devices=[]):  # the DataLoader draws a seed from torch
            batches_of_segment = loader.iter_epoch(segment)
        got = 0
        for batch in islice(batches_of_segment, offset, size):
            got += 1
            yield batch
        del batches_of_segment  # shuts its worker processes down
        if got == 0:
            raise StreamError(f"data.shards {data.shards!r} yielded no batch")
        segment, offset = segment + 1, 0


def _skip(stream: Iterator[Batch], n: int) -> Iterator[Batch]:
    """Drop the first ``n`` batches (those consumed before the checkpoint)."""
    for i in range(n):
        if next(stream, None) is None:
            raise StreamError(f"data stream ended after {i} batches while skipping {n} to resume")
    return stream


def _passes(data: DataConfig, loader: Loader) -> Iterator[Batch]:
    """A single-pass loader's epochs, one after another."""
    while True:
        empty = True
        with torch.random.fork_rng(devices=[]):  # the DataLoader draws a seed from torch's RNG
            epoch = iter(loader)
        for batch in epoch:
            empty = False
            yield batch
        if empty:
            raise StreamError(f"data.shards {data.shards!r} yielded no batch")
