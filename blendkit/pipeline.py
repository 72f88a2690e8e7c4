"""``make_shards``: Kinetics-layout videos in, blended WebDataset shards out.

Stages, composed in :func:`make_shards`:

0. **claim**  ``--out`` must be new, empty or blendkit's; it is locked for the run (``outdir.py``)
1. **index**  annotation CSV and files -> items (absent files, unreadable and duplicate rows become
   skips)
2. **probe**  open every item (in parallel) -> usable sources; zero-byte, unopenable, video-less,
   too-short files and files over a cap (``limits.py``) become skips
3. **plan**   sample ``i`` takes V1 = ``order[i]``: the usable sources in a seeded random order, a
   new order for each pass over them (``source_order``), and the blend kind
   ``kinds[i % len(kinds)]``; shard ``s`` holds samples ``[s*K, (s+1)*K)``, and V2 is the next
   sample's V1 clip within the shard (``recipe.py``, "Pairing")
4. **records** the config, library versions and input record (``resume.py``), once checked against
   those of the finished shards: rerunning the same command resumes, and a finished shard is kept
   only if a fresh run would make it byte for byte
5. **shards** each unfinished shard is one independent task (see ``recipe.py``), run by an engine
   (``engines.py``: this process, a process pool, or Ray)
6. **manifest** and **report** from the shards' sidecars (``blendkit.format.manifest``)

Failures. Whatever goes wrong with one input (probing it, or decoding or encoding one sample) is a
counted skip or failed sample with its reason in ``report.json``, never the end of the run; what
is wrong with the config or ``--out`` is a ``ConfigError`` / ``OutFolderError`` before anything is
written.

Determinism: a sample depends only on (inputs, config, seed, index), and a shard only on its
samples, so any engine and any number of worker processes give byte-identical shards.

``out`` is a folder or an fsspec URL (``storage.py``): the store decides how a finished shard is put
in place (a rename, or an upload to a temporary key and a move).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
import skimage
from tqdm import tqdm

from blendkit import codec, resume
from blendkit.decode import one_line_reason, probe
from blendkit.engines import Engine, make_engine
from blendkit.format.layout import REPORT, SHARD_FORMAT, sidecar_name
from blendkit.format.manifest import write_manifest
from blendkit.kinetics import DUPLICATE, Skip, VideoItem, index_source
from blendkit.limits import DEFAULT_LIMITS, Limits
from blendkit.recipe import ShardClips, Source, make_sample
from blendkit.shard_config import ShardConfig
from blendkit.storage import FsspecStore, LocalStore, open_store
from blendkit.typed_config import ConfigError

PROBE_CHUNK = 16  # videos per probe task


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
    duplicate_inputs: int = 0  # files listed again (CSV rows, links): skipped, counted once
    shards_redone: int = 0  # finished shards made again: an input they read had changed

    @property
    def samples_per_second(self) -> float:
        made = self.samples if self.shards_written == self.shards else None
        return (made or 0) / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- probe


def probe_item(
    item: VideoItem,
    clip_seconds: float,
    limits: Limits = DEFAULT_LIMITS,
    short_side: int | None = None,
) -> Source | Skip:
    """A usable source, or the reason it is not (whatever went wrong with it)."""
    try:
        info = probe(item.path, limits, short_side)
    except Exception as e:  # noqa: BLE001 - one bad input is a skip, never the end of the run
        return Skip(item.youtube_id, item.rel, one_line_reason(e))
    if info.duration_s < clip_seconds:
        reason = f"too short: {info.duration_s:.2f} s < {clip_seconds:.2f} s clip"
        return Skip(item.youtube_id, item.rel, reason)
    return Source(item, info)


def _probe_chunk(args) -> tuple[int, list[Source | Skip]]:
    chunk, items, clip_seconds, limits, short_side = args
    return chunk, [probe_item(item, clip_seconds, limits, short_side) for item in items]


# ----------------------------------------------------------------------------- shard task

_WORKER: dict = {}


def source_order(seed: int, n_sources: int, n_samples: int) -> list[int]:
    """The V1 source of every sample: pass ``p`` over the sources is its own seeded permutation,
    and no two neighbours are the same source.

    With chain pairing, sample i's V2 is sample i+1's V1, so one permutation repeated would blend
    the same pairs again in every pass (the demo's validation split of 14 videos and 48 samples
    held 7 distinct transparent pairs, each 3 or 4 times)."""
    passes = -(-n_samples // n_sources)
    order: list[int] = []
    for p in range(passes):
        key = [seed, 0x5EED] if p == 0 else [seed, 0x5EED, p]
        perm = np.random.default_rng(key).permutation(n_sources).tolist()
        if order and n_sources > 1 and perm[0] == order[-1]:  # neighbours stay different videos
            perm[0], perm[1] = perm[1], perm[0]
        order += perm
    return order[:n_samples]


def _init_worker(sources: list[Source], order: list[int], cfg: ShardConfig) -> None:
    _WORKER.update(sources=sources, order=order, cfg=cfg)


def make_shard(index: int, start: int, stop: int) -> tuple[int, dict, dict[str, float]]:
    """Write shard ``index`` (samples ``start..stop-1``); returns (index, sidecar, stage times)."""
    sources, order, cfg = _WORKER["sources"], _WORKER["order"], _WORKER["cfg"]
    samples, skipped, failed, seconds = [], [], [], Counter()
    t_put = None
    with open_store(cfg.out).shard_writer(index) as writer:
        try:
            clips = ShardClips(start, stop, order, sources, cfg)
            for i in range(start, stop):
                try:
                    result = make_sample(i, clips, cfg)
                except Exception as e:  # noqa: BLE001 - one bad sample never ends the run
                    failed.append({"index": i, "reason": one_line_reason(e)})
                    continue
                finally:
                    clips.done(i)
                t0 = time.perf_counter()
                size = writer.write(result.key, result.members, result.meta)
                seconds.update(result.seconds)
                seconds["write"] += time.perf_counter() - t0
                skipped += [dataclasses.asdict(s) for s in result.skips]
                sizes = {k: len(v) for k, v in result.members.items()}
                samples.append({"meta": result.meta, "bytes": size, "members": sizes})
            sidecar = {"shard": index, "samples": samples, "skipped": skipped, "failed": failed}
            t_put = time.perf_counter()
            writer.close(sidecar)
        except BaseException:
            writer.abort()
            raise
    seconds["write"] += time.perf_counter() - t_put  # close, and the upload for a URL
    return index, json.loads(json.dumps(sidecar, sort_keys=True)), dict(seconds)


def _shard_task(args: tuple[int, int, int]) -> tuple[int, dict, dict[str, float]]:
    return make_shard(*args)


# ----------------------------------------------------------------------------- orchestration


def made_with() -> dict[str, str | int]:
    """What, besides the config, decides the shards' bytes: blendkit's shard format and the
    codec and array libraries' versions (x264 and swscale come with PyAV's FFmpeg)."""
    return {
        "shard_format": SHARD_FORMAT,
        "av": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
    }


def check_encoders(cfg: ShardConfig) -> None:
    """Fail before anything is written if the encoders refuse the config's options (a preset,
    tune or x264 option x264 does not know, an audio rate the codec cannot take); what they print
    becomes the one-line reason."""
    video, audio = np.zeros((2, 16, 16, 3), np.uint8), np.zeros(2048, np.float32)
    checks = {
        "crf/preset/tune/x264_params": lambda: codec.encode_video(
            video, cfg.fps, cfg.crf, cfg.preset, cfg.tune, cfg.x264_params
        ),
        "audio_rate/audio_codec": lambda: codec.encode_audio(
            audio, cfg.audio_rate, cfg.audio_codec
        ),
    }
    for names, check in checks.items():
        error, printed = _quietly(check)
        if error is not None:
            reason = " ".join(printed.split()) or one_line_reason(error)
            raise ConfigError(f"{names}: the encoder refuses them: {reason[:300]}")


def _quietly(fn: Callable[[], object]) -> tuple[Exception | None, str]:
    """Run ``fn`` with file descriptor 2 going to a temporary file: (what it raised or None, what
    C libraries such as x264 printed to stderr meanwhile)."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        error = None
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - the caller says whose fault it is
            error = e
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        return error, f.read().decode(errors="replace")


def plan_shards(n_samples: int, per_shard: int) -> list[tuple[int, int, int]]:
    """(shard index, first sample, end sample) for every shard."""
    n_shards = math.ceil(n_samples / per_shard)
    return [(s, s * per_shard, min(n_samples, (s + 1) * per_shard)) for s in range(n_shards)]


def _probe_all(items, cfg, engine: Engine, progress) -> tuple[list[Source], list[Skip]]:
    tasks = [
        (c, items[s : s + PROBE_CHUNK], cfg.clip_seconds, cfg.limits, cfg.short_side)
        for c, s in enumerate(range(0, len(items), PROBE_CHUNK))
    ]
    chunks: dict[int, list[Source | Skip]] = {}
    bar = tqdm(total=len(items), desc="probe", unit="video", disable=not progress)
    for c, probed in engine.map(_probe_chunk, tasks):
        chunks[c] = probed
        bar.update(len(probed))
    bar.close()
    results = [r for c in range(len(tasks)) for r in chunks[c]]  # input order
    sources = [r for r in results if isinstance(r, Source)]
    return sources, [r for r in results if isinstance(r, Skip)]


def make_shards(
    cfg: ShardConfig,
    progress: bool = True,
    on_skip: Callable[[Skip], None] | None = None,
    engine: Engine | None = None,
) -> MakeShardsSummary:
    """Make (or finish making) the shards ``cfg`` describes; returns a summary.

    ``engine`` runs the probe and shard tasks; by default the one ``cfg.engine`` names."""
    t_start = time.perf_counter()
    check_encoders(cfg)
    engine = engine or make_engine(cfg.engine, cfg.workers, cfg.ray_address)
    store = open_store(cfg.out)
    with store.claim() as names:
        return _make_shards(cfg, store, names, engine, progress, on_skip, t_start)


def _make_shards(cfg, store, names, engine, progress, on_skip, t_start) -> MakeShardsSummary:
    """``make_shards`` in the claimed ``store`` that held ``names``."""
    resuming, now = resume.has_shards(names), made_with()
    if resuming:  # before the long index and probe: another config is refused at once
        resume.check_same_config(cfg, store, now)
    warn = on_skip or (lambda s: None)
    items, skips = index_source(cfg.source, cfg.annotations, cfg.split)
    for s in skips:
        warn(s)
    stats = resume.stat_inputs(items)  # before probing: a later change shows on the next run
    sources, probe_skips = _probe_all(items, cfg, engine, progress)
    for s in probe_skips:
        warn(s)
    skips += probe_skips
    if len(sources) < 2:
        raise ValueError(
            f"{cfg.source}: need at least two usable videos to blend, found {len(sources)}"
        )

    n_samples = cfg.num_samples or len(sources)
    order = source_order(cfg.seed, len(sources), n_samples)
    shards = plan_shards(n_samples, cfg.samples_per_shard)
    record = resume.record_inputs(items, stats, {s.item.rel for s in sources})
    finished = store.complete(s for s, _, _ in shards) if resuming else set()
    if finished:
        record.pending = resume.shards_to_redo(
            store, record, finished, lambda s: _read_sidecar(store, s)
        )
    resume.write_records(store, cfg, now, record)
    finished -= set(record.pending)
    todo = [t for t in shards if t[0] not in finished]
    made, stage_seconds = _run_shards(todo, shards, finished, (sources, order, cfg), engine,
                                      progress, warn)  # fmt: skip

    sidecars = [made[s] if s in made else _read_sidecar(store, s) for s, _, _ in shards]
    write_manifest(store, sidecars)
    summary = _summarize(cfg, shards, len(todo), items, skips, sources, sidecars, stage_seconds)
    summary.shards_redone = len(record.pending)
    summary.seconds = time.perf_counter() - t_start
    report = {
        "counts": dataclasses.asdict(summary),
        "skipped": _unique_skips(skips, sidecars),
        "failed_samples": [f for sc in sidecars for f in sc["failed"]],
        "redone_shards": record.pending,
        "config": dataclasses.asdict(cfg),
    }
    store.write_bytes(REPORT, json.dumps(report, indent=1).encode())
    if record.pending:  # every shard is made: nothing waits to be redone
        store.write_bytes(resume.RECORD_NAME, dataclasses.replace(record, pending=[]).to_json())
    return summary


def _run_shards(todo, shards, finished, plan, engine, progress, warn):
    """Make the shards ``todo`` of ``plan`` (sources, order, config); returns (sidecar by shard,
    stage seconds)."""
    n_samples = shards[-1][2]
    bar = tqdm(total=n_samples, desc="make-shards", unit="sample", disable=not progress)
    bar.update(sum(stop - start for s, start, stop in shards if s in finished))
    stage_seconds: Counter = Counter()
    made: dict[int, dict] = {}
    for index, sidecar, seconds in engine.map(_shard_task, todo, _init_worker, plan):
        made[index] = sidecar
        bar.update(len(sidecar["samples"]) + len(sidecar["failed"]))
        stage_seconds.update(seconds)
        for s in sidecar["skipped"]:
            warn(Skip(**s))
    bar.close()
    return made, stage_seconds


def _read_sidecar(store: LocalStore | FsspecStore, index: int) -> dict:
    name = sidecar_name(index)
    text = store.read_text(name)
    if text is None:
        raise FileNotFoundError(f"{store.url}/{name}: sidecar of a finished shard is missing")
    return json.loads(text)


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
        duplicate_inputs=sum(s.reason.startswith(DUPLICATE) for s in skips),
        failed_samples=sum(len(sc["failed"]) for sc in sidecars),
        seconds=0.0,
        stage_seconds={k: round(v, 3) for k, v in sorted(stage_seconds.items())},
    )
