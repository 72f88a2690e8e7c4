"""Decoded samples kept in memory, so that a small shard set is decoded once, not every pass.

Not in the paper, whose 16M blends are each read about once. The tiny demo trains 900 steps of 8
clips on 160 blends: without a cache each blend is decoded about 45 times, about a quarter of a
tiny C2 run's CPU time on a 2-core machine (profiled). ``DataConfig.cache_decoded`` is the most
samples kept (0: no cache); a sample past it is decoded every time, as without the cache.

The cache belongs to the loader's dataset object: with ``data.workers=0`` it lives in the
trainer's process for the whole run; a worker process holds its own copy for one loader epoch.
``trainer.data.decoding.decode`` consults it before decoding and fills it after a successful
decode. Later stages (augmentation, remixing, batching) build new tensors and never write into a
sample's (``trainer.data.decoding.Sample``), so a cached sample stays as decoded and the stream is
the same with or without the cache; only the decoding is skipped.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")  # a decoded sample (``trainer.data.decoding.Sample``)


class DecodedCache(Generic[T]):
    """Decoded samples by ``URL:KEY`` (``trainer.data.select.where``), at most ``max_items``."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.items: dict[str, T] = {}

    def get(self, where: str) -> T | None:
        return self.items.get(where)

    def put(self, where: str, sample: T) -> None:
        """Keep ``sample`` while there is room; a full cache keeps what it has."""
        if len(self.items) < self.max_items:
            self.items[where] = sample

    def __len__(self) -> int:
        return len(self.items)
