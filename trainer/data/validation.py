"""The fixed validation streams: the same mixtures, in the same order, every time.

Paper Tables 1-2 compare models on one validation set, so a validation stream is a single pass
over its shards in sorted order, without shuffle, remix or augmentation
(``DataConfig.fixed_pass``).

* ``fixed_batches``: training's validation, the first N batches of the run's own stream made a
  fixed pass (its blend and audio filters and its workers kept: the loss is measured on the kind
  of sample the model trains on).
* ``validation_batches``: evaluation's (and Table 3's classifier's), every sample of every blend
  kind with one reader (``workers=0``), so the sample order is the shard order; ``max_samples``
  keeps the first N.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from blendkit.format import BOTH, Geometry
from trainer.data.batch import Batch
from trainer.data.loader import make_loader
from trainer.data.stream_config import DataConfig


def fixed_batches(
    data: DataConfig, shards: str, n_batches: int, geometry: Geometry | None = None
) -> Iterator[Batch]:
    """The first ``n_batches`` batches of a fixed pass over ``shards`` with ``data``'s settings
    (samples of another clip geometry than ``geometry`` skipped)."""
    loader = make_loader(data.fixed_pass(shards), rank=0, world_size=1, geometry=geometry)
    return islice(iter(loader), n_batches)


def validation_config(data: DataConfig, shards: str | Path, batch_size: int) -> DataConfig:
    """The run's data config turned into a fixed single pass over every sample of ``shards``."""
    return dataclasses.replace(
        data.fixed_pass(str(shards)),
        batch_size=batch_size,
        workers=0,
        blend=BOTH,
        require_audio=False,
    )


def _slice(batch: Batch, n: int) -> Batch:
    return {k: v[:n] for k, v in batch.items()}


def validation_batches(
    data: DataConfig, shards: str | Path, batch_size: int = 4, max_samples: int | None = None
) -> Iterator[Batch]:
    """The fixed validation batches of ``shards`` (first ``max_samples`` samples, if given;
    samples of another clip geometry than the first's skipped)."""
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be at least 1, got {max_samples}")
    cfg = validation_config(data, shards, batch_size)
    seen = 0
    for batch in make_loader(cfg, rank=0, world_size=1):
        n = len(batch["key"])
        if max_samples is not None and seen + n > max_samples:
            batch, n = _slice(batch, max_samples - seen), max_samples - seen
        seen += n
        yield batch
        if max_samples is not None and seen >= max_samples:
            return
