"""The one place the data stages are composed, and the DataLoader that drives them.

Each worker process of each rank runs this chain (after open_clip's ``legacy_data.py`` and
webdataset's ``filters.py``)::

    shard list -> [resampled] -> split_by_node -> split_by_worker -> tarfile_to_samples
      -> select (blend / audio / occlusion thinning, on the json) -> [shuffle]
      -> decode [from the cache] -> [augment] -> [remix] -> batched

Randomness: the shard draw (resampled, or the shard order of a shuffled single pass) is seeded by
``(seed, epoch)`` alone, identically everywhere, and the node/worker splits take disjoint slices
of it; the occlusion thinning, the shuffle buffer, the augmentation and the remix are seeded by
``(seed, epoch, rank, worker)``. The epoch
is the number of times the loader has been iterated, so each pass differs and reruns repeat.

Order of a single pass without shuffle (validation): each worker reads its shards
(``worker, worker + W, ...`` of its rank's) in order, and the DataLoader hands out batches round
robin over workers (worker 0's first batch, worker 1's first, ...). The order is therefore fixed
for a given shard set, world_size and number of workers; with one worker (or none) it is the
shard order itself, and with more it is the interleaving above, different from the one-worker
order. Batches are per worker, so with W workers up to W batches per pass can be short.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable, Iterable, Iterator
from functools import partial

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from blendkit.format import Geometry
from trainer.data import augment, batch, decoding, remix, select, shards, shuffle, tario
from trainer.data.batch import Batch
from trainer.data.cache import DecodedCache
from trainer.data.stats import LoaderStats
from trainer.data.stream_config import DataConfig

Stage = Callable[[Iterable], Iterator]

# Streams of randomness, kept apart so that adding one never shifts another.
_SHARDS, _SHUFFLE, _REMIX, _AUGMENT, _THIN = 0, 1, 2, 3, 4
# Guards for endless streams (raise instead of spinning on a broken shard set or empty filter).
_MIN_EMPTY_SHARDS_IN_A_ROW = 64
_MAX_FILTERED_IN_A_ROW = 10_000
_MAX_SKIPPED_IN_A_ROW = 1_000  # samples that fail to decode


def seeded(*parts: int) -> random.Random:
    """A ``random.Random`` seeded from a tuple of non-negative ints."""
    state = np.random.SeedSequence(list(parts)).generate_state(2, dtype=np.uint32)
    return random.Random(int(state[0]) << 32 | int(state[1]))


def stages(
    cfg: DataConfig,
    shard_list: list[str],
    *,
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
    epoch: int,
    stats: LoaderStats,
    geometry: Geometry | None = None,
    cache: DecodedCache | None = None,
) -> list[tuple[str, Stage]]:
    """The named stages one worker runs, in order; the first consumes ``shard_list``. Samples
    of another clip geometry than ``geometry`` (by default the first's) are skipped; decoded
    samples are kept in ``cache`` when given (``trainer.data.cache``)."""
    shuffling = cfg.shuffle_buffer > 1
    shard_rng = seeded(cfg.seed, epoch, _SHARDS)
    if cfg.resampled:
        source: Stage = partial(shards.resampled, rng=shard_rng)
    else:
        source = partial(shards.ordered, rng=shard_rng if shuffling else None)
    chain: list[tuple[str, Stage]] = [
        ("resampled" if cfg.resampled else "single_pass", source),
        ("split_by_node", partial(shards.split_by_node, rank=rank, world_size=world_size)),
        (
            "split_by_worker",
            partial(shards.split_by_worker, worker=worker, num_workers=num_workers),
        ),
        (
            "tarfile_to_samples",
            partial(
                tario.tarfile_to_samples,
                stats=stats,
                max_empty_in_a_row=(
                    max(_MIN_EMPTY_SHARDS_IN_A_ROW, 4 * len(shard_list)) if cfg.resampled else None
                ),
            ),
        ),
        (
            "select",
            partial(
                select.select,
                blend=cfg.blend,
                require_audio=cfg.require_audio,
                stats=stats,
                max_dropped_in_a_row=_MAX_FILTERED_IN_A_ROW if cfg.resampled else None,
                occlusion_keep=cfg.occlusion_keep_at(epoch),
                rng=seeded(cfg.seed, epoch, _THIN, rank, worker),
            ),
        ),
    ]
    if shuffling:
        rng = seeded(cfg.seed, epoch, _SHUFFLE, rank, worker)
        chain.append(("shuffle", partial(shuffle.shuffle, bufsize=cfg.shuffle_buffer, rng=rng)))
    chain.append(
        (
            "decode",
            partial(
                decoding.decode,
                need_mix=cfg.stored_mix and not cfg.remix,
                n_mels=cfg.n_mels,
                n_fft=cfg.n_fft,
                hop_length=cfg.hop_length,
                stats=stats,
                frame_stride=cfg.frame_stride,
                geometry=geometry,
                limits=cfg.limits,
                max_skipped_in_a_row=_MAX_SKIPPED_IN_A_ROW if cfg.resampled else None,
                cache=cache,
            ),
        )
    )
    if cfg.augment:
        rng = seeded(cfg.seed, epoch, _AUGMENT, rank, worker)
        stage = partial(augment.augment, rng=rng, colour=cfg.augment_colour)
        chain.append(("augment", stage))
    if cfg.remix:
        rng = seeded(cfg.seed, epoch, _REMIX, rank, worker)
        chain.append(
            ("remix", partial(remix.remix, pool_size=cfg.remix_pool, rng=rng, stats=stats))
        )
    chain.append(("batched", partial(batch.batched, batch_size=cfg.batch_size)))
    return chain


def run_stages(source: Iterable, chain: list[tuple[str, Stage]]) -> Iterator:
    """Feed ``source`` through the stages in order."""
    stream: Iterable = source
    for _, stage in chain:
        stream = stage(stream)
    return iter(stream)


# glibc's mallopt parameters (malloc.h) and the values the loader's workers run with
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's maximum: blocks below it come from the heap
_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory(_worker: int | None = None) -> bool:
    """Make glibc's malloc keep freed blocks for reuse instead of handing them back to the kernel
    (a DataLoader ``worker_init_fn``); False where there is no glibc.

    A worker decodes every sample into ~10 MB of arrays (videos, alpha, decoder buffers) and frees
    them once the batch is stacked. glibc maps blocks of a few MB straight from the kernel and
    unmaps or trims them when freed, so they are page-faulted in (and zeroed) again for the next
    sample, at ~3 us a 4 KiB page on the 2-core build VM. Serving blocks up to 32 MiB from the
    heap and trimming it only past 1 GiB cut a worker's minor faults from ~3,090 to ~2,640 per
    64x128x128 sample (what is left is the batch's shared memory) and its system time by ~1.4 ms;
    ``python -m trainer.bench_loader --workers 1``: 34.4 -> 35.8 samples/s per core (medians of 6
    alternating runs). The heap stays at about the worker's peak of live arrays.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


class StreamDataset(IterableDataset):
    """Runs ``stages`` in whichever process iterates it (a DataLoader worker or the main one)."""

    def __init__(
        self, cfg: DataConfig, shard_list: list[str], rank: int, world_size: int,
        stats: LoaderStats, geometry: Geometry | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.cfg, self.shard_list, self.stats = cfg, shard_list, stats
        self.rank, self.world_size, self.geometry = rank, world_size, geometry
        self.epoch = 0
        # decoded samples: this process's for the whole run, a worker's for one epoch
        self.cache = DecodedCache(cfg.cache_decoded) if cfg.cache_decoded else None

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        chain = stages(
            self.cfg,
            self.shard_list,
            rank=self.rank,
            world_size=self.world_size,
            worker=worker,
            num_workers=num_workers,
            epoch=self.epoch,
            stats=self.stats,
            geometry=self.geometry,
            cache=self.cache,
        )
        return run_stages(self.shard_list, chain)


class Loader:
    """Iterable over batches; ``stats`` holds the counts summed over workers. Each iteration is
    one epoch (endless when resampled) and re-seeds the stream with the next epoch number.
    ``pin_memory``: batches come in page-locked memory, so that a ``non_blocking`` copy to a
    GPU is asynchronous (from pageable memory it waits for the copy)."""

    def __init__(self, cfg: DataConfig, dataset: StreamDataset, pin_memory: bool = False) -> None:
        self.cfg, self.dataset, self.stats = cfg, dataset, dataset.stats
        self.pin_memory = pin_memory
        self.epoch = 0

    def __iter__(self) -> Iterator[Batch]:
        self.epoch += 1
        return self.iter_epoch(self.epoch - 1)

    def iter_epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch ``epoch`` (a stream seeded by it), whatever came before."""
        return iter(self.data_loader(epoch))

    def data_loader(self, epoch: int) -> DataLoader:
        """The torch ``DataLoader`` of epoch ``epoch``."""
        self.dataset.epoch = epoch
        return DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=self.cfg.workers,
            persistent_workers=False,
            worker_init_fn=keep_freed_memory,
            pin_memory=self.pin_memory,
        )


def make_loader(
    cfg: DataConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    geometry: Geometry | None = None,
    pin_memory: bool = False,
) -> Loader:
    """Batches from ``cfg.shards`` for ``rank`` of ``world_size`` (see the module docstring);
    samples of another clip geometry than ``geometry`` (a run's) are skipped and counted; batches
    page-locked with ``pin_memory`` (for a GPU)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
    shard_list = shards.list_shards(cfg.shards, allow_pipe=cfg.allow_pipe)
    if not cfg.resampled:
        shards.check_enough_shards(len(shard_list), world_size, cfg.workers)
    dataset = StreamDataset(cfg, shard_list, rank, world_size, LoaderStats(), geometry)
    return Loader(cfg, dataset, pin_memory=pin_memory)
