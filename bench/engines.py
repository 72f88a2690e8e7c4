"""Throughput of make-shards with the local engine against the Ray engine on one machine.

Both engines run the same config with the same number of parallel workers (``workers`` processes
for the pool, a private Ray instance with ``num_cpus=workers``). Ray's start-up (``ray.init``) is
timed apart, as on a cluster it is paid once; a first, untimed Ray run warms the worker processes
(each imports blendkit, torch included, once). The figure of merit is the overhead
``1 - ray / local`` in samples per second; the issue's target is at most 15%.

    python -m bench.engines SOURCE [--samples N --workers W --crop C]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from blendkit.engines import LocalEngine, RayEngine
from blendkit.pipeline import make_shards
from blendkit.shard_config import ShardConfig


def _rate(cfg: ShardConfig, engine) -> float:
    summary = make_shards(cfg, progress=False, engine=engine)
    return summary.samples / summary.seconds


def bench_engines(source: str | Path, n: int, workers: int = 2, samples_per_shard: int = 2,
                  seed: int = 0, **config) -> dict:  # fmt: skip
    """samples/s of both engines over ``n`` samples of ``source`` (a Kinetics-layout folder).

    ``config`` overrides ShardConfig fields (e.g. a smaller ``crop`` for a quick run)."""
    import ray

    with tempfile.TemporaryDirectory() as tmp:

        def cfg(name: str) -> ShardConfig:
            return ShardConfig(source=str(source), out=f"{tmp}/{name}", num_samples=n,
                               samples_per_shard=samples_per_shard, seed=seed, workers=workers,
                               **config)  # fmt: skip

        local = _rate(cfg("local"), LocalEngine(workers))
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=workers, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)  # fmt: skip
        init_s = time.perf_counter() - t0
        try:
            cold = _rate(cfg("ray-cold"), RayEngine())
            warm = _rate(cfg("ray"), RayEngine())
        finally:
            ray.shutdown()
    return {
        "samples": n,
        "workers": workers,
        "samples_per_shard": samples_per_shard,
        "local_samples_per_s": round(local, 3),
        "ray_samples_per_s": round(warm, 3),
        "ray_cold_samples_per_s": round(cold, 3),
        "ray_init_s": round(init_s, 2),
        "ray_overhead": round(1.0 - warm / local, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="Kinetics-layout folder of videos")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples-per-shard", type=int, default=2)
    parser.add_argument("--frames", type=int, default=64, help="smaller for a quick run")
    parser.add_argument("--crop", type=int, default=128, help="smaller for a quick run")
    args = parser.parse_args(argv)
    small = {"frames": args.frames, "crop": args.crop, "short_side": max(148, args.crop)}
    result = bench_engines(args.source, args.samples, args.workers, args.samples_per_shard, **small)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
