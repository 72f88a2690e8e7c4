"""Throughput of the data stream: shards on disk -> batched float tensors.

``measure`` times ``make_loader`` on a resampled stream (the training setting) after a warm-up
batch per worker, and reports the median over repeats of samples/s and samples/s per worker core
(the main process is the one core when ``workers=0``), and samples per CPU-second of the
processes that make the batches, the per-core figure that holds on a busy machine.
``write_synthetic_shards`` writes shards in the contract's format with synthetic textured,
moving clips (the paper's 64x128x128 by default) for when no real shards are at hand.

    python -m trainer.bench_loader --shards shards/demo/train --workers 2
    python -m trainer.bench_loader --make /tmp/bench_shards --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import webdataset as wds

from blendkit.codec import audio_extension, encode_alpha, encode_audio, encode_video
from trainer.data import DataConfig, make_loader


def measure(
    shards: str, batch_size: int, workers: int, n_batches: int, repeats: int = 3, **cfg
) -> dict:
    """Median samples/s (and per worker core) over ``repeats`` timed runs of ``n_batches``.

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
        loader = make_loader(replace(config, seed=config.seed + repeat))
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


def synthetic_clip(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8: a drifting textured background and a moving disc, plus noise."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(size), np.arange(size), indexing="ij")
    freq = rng.uniform(0.05, 0.25, size=(2, 3))
    speed = rng.uniform(-2.0, 2.0, size=2)
    colour = rng.uniform(40, 215, size=3)
    out = np.empty((frames, size, size, 3), np.float32)
    for c in range(3):
        out[..., c] = colour[c] + 40 * np.sin(freq[0, c] * (x + speed[0] * t)) * np.cos(
            freq[1, c] * (y + speed[1] * t)
        )
    cx = size / 2 + size / 3 * np.sin(t / 9.0 + rng.uniform(0, 6))
    cy = size / 2 + size / 3 * np.cos(t / 7.0 + rng.uniform(0, 6))
    disc = (x - cx) ** 2 + (y - cy) ** 2 < (size / 6) ** 2
    out[disc] = rng.uniform(0, 255, size=3)
    out += rng.normal(0, 3, size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def write_synthetic_shards(
    out: str | Path,
    n_shards: int = 4,
    per_shard: int = 16,
    frames: int = 64,
    size: int = 128,
    fps: float = 25.0,
    audio_rate: int = 16000,
    seed: int = 0,
) -> list[str]:
    """Shards in the contract's layout; even samples transparent, odd ones occlusion (a disc)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_audio = round(frames / fps * audio_rate)
    ext = audio_extension("aac")
    paths = []
    for s in range(n_shards):
        path = out / f"shard-{s:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(s * per_shard, (s + 1) * per_shard):
                v1, v2 = synthetic_clip(rng, frames, size), synthetic_clip(rng, frames, size)
                b1, b2 = encode_video(v1, fps, 18), encode_video(v2, fps, 18)
                if i % 2 == 0:
                    alpha = np.full((frames, size, size), 0.5, np.float32)
                else:
                    _, y, x = np.ogrid[:frames, :size, :size]
                    alpha = (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 4) ** 2
                    alpha = np.broadcast_to(alpha, (frames, size, size)).astype(np.float32)
                a = alpha[..., None]
                mix = np.round(a * v1 + (1 - a) * v2).astype(np.uint8)
                meta = {
                    "key": f"{i:09d}",
                    "index": i,
                    "blend": "transparent" if i % 2 == 0 else "occlusion",
                    "fps": fps,
                    "frames": frames,
                    "height": size,
                    "width": size,
                    "audio_rate": audio_rate,
                    "audio_samples": n_audio,
                }
                tone = 0.3 * np.sin(np.arange(n_audio) * rng.uniform(0.02, 0.2))
                sink.write(
                    {
                        "__key__": f"{i:09d}",
                        "json": json.dumps(meta).encode(),
                        "mix.mp4": encode_video(mix, fps, 12),
                        "v1.mp4": b1,
                        "v2.mp4": b2,
                        "alpha.npz": encode_alpha(alpha),
                        f"a1.{ext}": encode_audio(tone.astype(np.float32), audio_rate),
                        f"a2.{ext}": encode_audio(tone[::-1].astype(np.float32), audio_rate),
                    }
                )
        paths.append(str(path))
    return paths


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", help="shard spec to read (see DataConfig.shards)")
    parser.add_argument("--make", help="write synthetic 64x128x128 shards here first, read them")
    parser.add_argument("--n-shards", type=int, default=4)
    parser.add_argument("--per-shard", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--remix", action="store_true")
    args = parser.parse_args(argv)
    if args.make:
        if not list(Path(args.make).glob("shard-*.tar")):
            write_synthetic_shards(args.make, args.n_shards, args.per_shard)
        shards = args.make
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
