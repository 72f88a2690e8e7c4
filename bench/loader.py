"""Throughput of the data stream: shards on disk -> batched float tensors.

``measure`` times ``make_loader`` on a resampled stream (the training setting) after a warm-up
batch per worker, and reports the median over repeats of samples/s and samples/s per worker core
(the main process is the one core when ``workers=0``), and samples per CPU-second of the
processes that make the batches, the per-core figure that holds on a busy machine.
``make_proxy_shards`` writes shards for when no real ones are at hand: ``blendkit``'s own
make-shards (the paper's 64x128x128 by default) over ``bench.media``'s proxy source videos.

    python -m bench.loader --shards shards/demo/train --workers 2
    python -m bench.loader --make /tmp/bench_shards --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from bench import media
from blendkit.pipeline import make_shards
from blendkit.shard_config import ShardConfig
from trainer.data import DataConfig, make_loader


def measure(
    shards: str,
    batch_size: int,
    workers: int,
    n_batches: int,
    repeats: int = 3,
    pin_memory: bool = False,
    **cfg,
) -> dict:
    """Median samples/s (and per worker core) over ``repeats`` timed runs of ``n_batches``,
    batches page-locked with ``pin_memory`` (as the trainer asks on a GPU).

    Extra keyword arguments go to ``DataConfig`` (e.g. ``remix=True``, ``shuffle_buffer=16``).
    """
    if n_batches < 1 or repeats < 1:
        raise ValueError("n_batches and repeats must be >= 1")
    config = DataConfig(
        shards=shards, batch_size=batch_size, workers=workers, resampled=True, **cfg
    )
    rates, cpu_rates = [], []
    skipped = 0
    for repeat in range(repeats):
        # a different seed per repeat, so repeats do not replay the same draw
        loader = make_loader(replace(config, seed=config.seed + repeat), pin_memory=pin_memory)
        batches = iter(loader)
        for _ in range(max(workers, 1)):  # start-up: process spawn, first shard, first decode
            next(batches)
        cpu_start, start = cpu_seconds(batches), time.perf_counter()
        for _ in range(n_batches):
            next(batches)
        rates.append(n_batches * batch_size / (time.perf_counter() - start))
        cpu = cpu_seconds(batches) - cpu_start
        cpu_rates.append(n_batches * batch_size / cpu if cpu > 0 else float("nan"))
        skipped += loader.stats.skipped
        del batches  # shuts the worker processes down
    rate = statistics.median(rates)
    return {
        "shards": shards,
        "batch_size": batch_size,
        "workers": workers,
        "n_batches": n_batches,
        "repeats": repeats,
        "samples_per_s": rate,
        "samples_per_s_per_core": rate / max(workers, 1),
        "samples_per_cpu_s": statistics.median(cpu_rates),
        "samples_per_s_all": rates,
        "skipped": skipped,
    }


def cpu_seconds(batches) -> float:
    """CPU time (user + system) spent so far by the processes producing batches: the DataLoader
    worker processes (read from /proc, Linux), or this process when there are none. Unlike wall
    time it does not count waiting for a shared, busy machine."""
    workers = getattr(batches, "_workers", None)
    if not workers:
        return time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in workers:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def make_proxy_shards(
    out: str | Path, n_samples: int = 64, per_shard: int = 16, seconds: float = 10.0, **config
) -> str:
    """Shards of ``n_samples`` blends of ``bench.media``'s proxy videos (``seconds`` long),
    written by make-shards (``config``: more ``ShardConfig`` fields) into ``out/shards``;
    returns that folder."""
    out = Path(out)
    sources = out / "sources"
    if not sources.is_dir():
        media.write_sources(sources, seconds=seconds)
    cfg = ShardConfig(source=str(sources), out=str(out / "shards"), num_samples=n_samples,
                      samples_per_shard=per_shard, **config)  # fmt: skip
    make_shards(cfg, progress=False)
    return cfg.out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", help="shard spec to read (see DataConfig.shards)")
    parser.add_argument("--make", help="write proxy 64x128x128 shards here first, read them")
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--per-shard", type=int, default=16)
    parser.add_argument("--source-seconds", type=float, default=10.0, help="of the proxy videos")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--remix", action="store_true")
    args = parser.parse_args(argv)
    if args.make:
        shards = make_proxy_shards(args.make, args.n_samples, args.per_shard, args.source_seconds)
    elif args.shards:
        shards = args.shards
    else:
        parser.error("give --shards or --make")
    result = measure(
        shards,
        args.batch_size,
        args.workers,
        args.n_batches,
        repeats=args.repeats,
        remix=args.remix,
        shuffle_buffer=16,
    )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
