"""``make_shards``: Kinetics-layout videos in, blended WebDataset shards out.

Stages, composed in :func:`make_shards`:

1. **index**  annotation CSV and files -> items (absent files become skips)
2. **probe**  open every item (in parallel) -> usable sources; zero-byte, unopenable, video-less and
   too-short files become skips
3. **plan**   sample ``i`` takes V1 = ``order[i % U]`` (a seeded permutation of the usable sources) and
   the blend kind ``kinds[i % len(kinds)]``; shard ``s`` holds samples ``[s*K, (s+1)*K)``
4. **shards** each unfinished shard is one independent task (see ``sample.py``); finished shards are
   kept, so rerunning the same command resumes
5. **manifest** and **report** from the shards' sidecars

Determinism: a sample depends only on (inputs, config, seed, index), and a shard only on its samples,
so any number of worker processes gives byte-identical shards.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing as mp
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from blendkit.config import ConfigError, ShardConfig
from blendkit.decode import DecodeError, probe
from blendkit.kinetics import Skip, VideoItem, index_source
from blendkit.sample import Source, make_sample
from blendkit.writer import ShardWriter, is_complete, remove_temporaries, shard_paths, write_atomic


@dataclass
class MakeShardsSummary:
    """What a run did; ``report.json`` holds the same counts plus every skipped input."""

    out: str
    shards: int
    shards_written: int
    shards_resumed: int
    samples: int
    samples_by_blend: dict[str, int]
    sources_found: int
    sources_usable: int
    skipped_inputs: int
    failed_samples: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        made = self.samples if self.shards_written == self.shards else None
        return (made or 0) / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- probe


def probe_item(item: VideoItem, clip_seconds: float) -> Source | Skip:
    """A usable source, or the reason it is not."""
    try:
        info = probe(item.path)
    except DecodeError as e:
        return Skip(item.youtube_id, item.rel, str(e))
    if info.duration_s < clip_seconds:
        reason = f"too short: {info.duration_s:.2f} s < {clip_seconds:.2f} s clip"
        return Skip(item.youtube_id, item.rel, reason)
    return Source(item, info)


def _probe_task(args: tuple[VideoItem, float]) -> Source | Skip:
    return probe_item(*args)


# ----------------------------------------------------------------------------- shard task

_WORKER: dict = {}


def _init_worker(sources: list[Source], order: list[int], cfg: ShardConfig) -> None:
    _WORKER.update(sources=sources, order=order, cfg=cfg)


def make_shard(index: int, start: int, stop: int) -> tuple[int, dict, dict[str, float]]:
    """Write shard ``index`` (samples ``start..stop-1``); returns (index, sidecar, stage seconds)."""
    sources, order, cfg = _WORKER["sources"], _WORKER["order"], _WORKER["cfg"]
    writer = ShardWriter(Path(cfg.out), index)
    samples, skipped, failed, seconds = [], [], [], Counter()
    try:
        for i in range(start, stop):
            try:
                result = make_sample(i, order[i % len(order)], sources, cfg)
            except DecodeError as e:
                failed.append({"index": i, "reason": str(e)})
                continue
            finally:
                pass
            t0 = time.perf_counter()
            size = writer.write(result.key, result.members, result.meta)
            seconds.update(result.seconds)
            seconds["write"] += time.perf_counter() - t0
            skipped += [dataclasses.asdict(s) for s in result.skips]
            sizes = {k: len(v) for k, v in result.members.items()}
            samples.append({"meta": result.meta, "bytes": size, "members": sizes})
        sidecar = {"shard": index, "samples": samples, "skipped": skipped, "failed": failed}
        t0 = time.perf_counter()
        writer.close(sidecar)
        seconds["write"] += time.perf_counter() - t0
    except BaseException:
        writer.abort()
        raise
    return index, sidecar, dict(seconds)


def _shard_task(args: tuple[int, int, int]) -> tuple[int, dict, dict[str, float]]:
    return make_shard(*args)


# ----------------------------------------------------------------------------- orchestration


def check_config(cfg: ShardConfig, out: Path) -> None:
    """Record the config with the shards; refuse to resume into shards made differently."""
    path = out / "config.json"
    if path.exists():
        try:
            previous = ShardConfig.load(path).identity()
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{path}: unreadable config of earlier shards ({e})") from e
        changed = sorted(k for k, v in cfg.identity().items() if previous.get(k) != v)
        if changed:
            raise ConfigError(
                f"{path}: shards here were made with a different config "
                f"(differs in: {', '.join(changed)}); use another --out"
            )
    write_atomic(path, json.dumps(dataclasses.asdict(cfg), indent=1, sort_keys=True).encode())


def plan_shards(n_samples: int, per_shard: int) -> list[tuple[int, int, int]]:
    """(shard index, first sample, end sample) for every shard."""
    n_shards = math.ceil(n_samples / per_shard)
    return [(s, s * per_shard, min(n_samples, (s + 1) * per_shard)) for s in range(n_shards)]


def _mp_context():
    """fork on Linux (workers inherit the imports: webdataset pulls in torch, seconds per process);
    spawn elsewhere. Workers share nothing mutable with the parent, so either gives the same bytes."""
    return mp.get_context("fork" if sys.platform == "linux" else "spawn")


def _pool_map(fn, tasks: list, workers: int, init_args: tuple | None = None) -> Iterator:
    """Run ``fn`` over tasks in-process (workers=1) or in a process pool; results in completion order."""
    if workers <= 1:
        if init_args is not None:
            _init_worker(*init_args)
        yield from map(fn, tasks)
        return
    ctx = _mp_context()
    init = (_init_worker, init_args) if init_args is not None else (None, ())
    with ctx.Pool(workers, initializer=init[0], initargs=init[1]) as pool:
        yield from pool.imap_unordered(fn, tasks, chunksize=1)


def _probe_all(items, cfg, progress) -> tuple[list[Source], list[Skip]]:
    tasks = [(item, cfg.clip_seconds) for item in items]
    results: list[Source | Skip] = []
    bar = tqdm(total=len(tasks), desc="probe", unit="video", disable=not progress)
    if cfg.workers <= 1:
        for t in tasks:
            results.append(_probe_task(t))
            bar.update()
    else:
        with _mp_context().Pool(cfg.workers) as pool:
            for r in pool.imap(_probe_task, tasks, chunksize=8):  # imap keeps input order
                results.append(r)
                bar.update()
    bar.close()
    sources = [r for r in results if isinstance(r, Source)]
    return sources, [r for r in results if isinstance(r, Skip)]


def make_shards(
    cfg: ShardConfig,
    progress: bool = True,
    on_skip: Callable[[Skip], None] | None = None,
) -> MakeShardsSummary:
    """Make (or finish making) the shards ``cfg`` describes; returns a summary."""
    t_start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_config(cfg, out)
    remove_temporaries(out)
    warn = on_skip or (lambda s: None)

    items, skips = index_source(cfg.source, cfg.annotations, cfg.split)
    for s in skips:
        warn(s)
    sources, probe_skips = _probe_all(items, cfg, progress)
    for s in probe_skips:
        warn(s)
    skips += probe_skips
    if len(sources) < 2:
        raise ValueError(
            f"{cfg.source}: need at least two usable videos to blend, found {len(sources)}"
        )

    n_samples = cfg.num_samples or len(sources)
    order = np.random.default_rng([cfg.seed, 0x5EED]).permutation(len(sources)).tolist()
    shards = plan_shards(n_samples, cfg.samples_per_shard)
    todo = [t for t in shards if not is_complete(out, t[0])]
    bar = tqdm(total=n_samples, desc="make-shards", unit="sample", disable=not progress)
    bar.update(sum(stop - start for s, start, stop in shards if is_complete(out, s)))
    stage_seconds: Counter = Counter()
    for _, sidecar, seconds in _pool_map(
        _shard_task, todo, cfg.workers, (sources, order, cfg)
    ):
        bar.update(len(sidecar["samples"]) + len(sidecar["failed"]))
        stage_seconds.update(seconds)
        for s in sidecar["skipped"]:
            warn(Skip(**s))
    bar.close()

    sidecars = [json.loads(shard_paths(out, s)[1].read_text()) for s, _, _ in shards]
    write_manifest(out, sidecars)
    summary = _summarize(cfg, shards, len(todo), items, skips, sources, sidecars, stage_seconds)
    summary.seconds = time.perf_counter() - t_start
    report = {
        "counts": dataclasses.asdict(summary),
        "skipped": _unique_skips(skips, sidecars),
        "failed_samples": [f for sc in sidecars for f in sc["failed"]],
        "config": dataclasses.asdict(cfg),
    }
    write_atomic(out / "report.json", json.dumps(report, indent=1).encode())
    return summary


def _unique_skips(skips: list[Skip], sidecars: list[dict]) -> list[dict]:
    """Every skipped input once (the first reason seen), in a stable order."""
    seen: dict[str, dict] = {}
    for s in [dataclasses.asdict(s) for s in skips] + [s for sc in sidecars for s in sc["skipped"]]:
        seen.setdefault(s["path"] or s["youtube_id"], s)
    return list(seen.values())


def _summarize(cfg, shards, written, items, skips, sources, sidecars, stage_seconds):
    samples = [s for sc in sidecars for s in sc["samples"]]
    return MakeShardsSummary(
        out=str(cfg.out),
        shards=len(shards),
        shards_written=written,
        shards_resumed=len(shards) - written,
        samples=len(samples),
        samples_by_blend=dict(Counter(s["meta"]["blend"] for s in samples)),
        sources_found=len(items) + sum(1 for s in skips if s.reason.startswith("missing")),
        sources_usable=len(sources),
        skipped_inputs=len(_unique_skips(skips, sidecars)),
        failed_samples=sum(len(sc["failed"]) for sc in sidecars),
        seconds=0.0,
        stage_seconds={k: round(v, 3) for k, v in sorted(stage_seconds.items())},
    )


# ----------------------------------------------------------------------------- manifest


def manifest_rows(sidecars: list[dict]) -> list[dict]:
    """One flat row per sample."""
    rows = []
    for sc in sidecars:
        for s in sc["samples"]:
            m = s["meta"]
            row = {
                "key": m["key"],
                "index": m["index"],
                "shard": shard_paths(Path("."), sc["shard"])[0].name,
                "blend": m["blend"],
                "seed": m["seed"],
                "bytes": s["bytes"],
                "superpixel_fraction": (m["superpixel"] or {}).get("fraction"),
                "mix_crf": m["video"]["mix_crf"],
                "mix_psnr_db": m["video"]["mix_psnr_db"],
            }
            for side in ("v1", "v2"):
                for k in ("youtube_id", "label", "split", "path", "clip_start_s", "has_audio"):
                    row[f"{side}_{k}"] = m[side][k]
            rows.append(row)
    return rows


def write_manifest(out: Path, sidecars: list[dict]) -> None:
    table = pa.Table.from_pylist(manifest_rows(sidecars))
    tmp = out / ".manifest.parquet.tmp"
    pq.write_table(table, tmp)
    tmp.replace(out / "manifest.parquet")
