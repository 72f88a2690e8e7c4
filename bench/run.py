"""``make bench``: measure make-shards, the identity baseline of its shards, the loader, the
superpixels, a training step and the pairwise loss, and write BENCHMARKS.md.

Kinetics cannot be downloaded on the build machine, so the sources are a documented proxy for real
360p-720p H.264 video (``bench.media``): pans over scikit-image's natural photographs with a moving
object and sensor grain (sigma 3), 10 s at 30 fps, H.264 yuv420p CRF 20 + AAC stereo 44.1 kHz.
Every figure is measured in the run that writes the file; medians over repeats. ``quick`` runs
every section once at a tiny size, to show that it runs (its figures mean nothing).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from bench import baseline, engines, gpu_report, loader, loss, media, superpixels, train
from blendkit import codec
from blendkit.kinetics import index_source
from blendkit.pipeline import make_shards, probe_item
from blendkit.recipe import Timer, cut_clip
from blendkit.shard_config import ShardConfig


@dataclass(frozen=True)
class Sizes:
    """How much every section measures."""

    samples: int = 12  # per make-shards run
    repeats: int = 3  # make-shards runs per setting
    source_seconds: float = 10.0
    loader_batches: int = 16  # timed batches per loader run
    loader_repeats: int = 5  # loader runs per setting
    tune_samples: int = 16  # shards written with and without --tune fastdecode
    fidelity_clips: int = 8
    superpixel_clips: int = 3
    superpixel_shape: tuple[int, int] = (64, 128)  # frames, size
    train_repeats: int = 5
    loss_repeats: int = 5
    config: tuple[tuple[str, object], ...] = ()  # ShardConfig overrides (quick: smaller clips)


# loader runs: timed batches of 8 and repeats; 8 and 3 left the median of one `make bench` run
# 12% apart between two settings that do the same decoding (paper 37.6, remix 42.1)
FULL = Sizes()
QUICK = Sizes(samples=4, repeats=1, source_seconds=3.0, loader_batches=1, loader_repeats=1,
              tune_samples=4, fidelity_clips=2, superpixel_clips=1, superpixel_shape=(16, 64),
              train_repeats=1, loss_repeats=1, config=(("frames", 16), ("crop", 64)))  # fmt: skip


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"PyAV {av.__version__} (FFmpeg {'.'.join(map(str, av.library_versions['libavcodec']))}"
        " libavcodec)"
    )


def bench_make_shards(
    source: Path, work: Path, blend: str, n: int, repeats: int, pairing: str = "chain", **overrides
) -> dict:
    """samples/s of one worker process (= per core), median over ``repeats`` fresh runs;
    ``overrides`` are more ``ShardConfig`` fields."""
    rates, stages, sizes = [], [], []
    for r in range(repeats):
        out = Path(tempfile.mkdtemp(prefix=f"{source.name}-{blend}-", dir=work))
        cfg = ShardConfig(
            source=str(source),
            out=str(out),
            blend=blend,
            pairing=pairing,
            num_samples=n,
            samples_per_shard=n,
            workers=1,
            seed=r,
            **overrides,
        )
        summary = make_shards(cfg, progress=False)
        rates.append(summary.samples / summary.seconds)
        stages.append({k: v / summary.samples for k, v in summary.stage_seconds.items()})
        sizes += [p.stat().st_size / summary.samples for p in out.glob("shard-*.tar")]
    names = sorted({k for s in stages for k in s})
    return {
        "samples_per_s_per_core": statistics.median(rates),
        "stage_s_per_sample": {k: statistics.median(s.get(k, 0.0) for s in stages) for k in names},
        "bytes_per_sample": statistics.median(sizes),
    }


def _x264(defaults: dict) -> str:
    """The x264 settings of ``ShardConfig``'s defaults in words."""
    text = f"x264 preset {defaults['preset']}, tune {defaults['tune'] or 'none'}"
    return f"{text}, `{defaults['x264_params']}`" if defaults["x264_params"] else text


def bench_fidelity(source: Path, n: int = 8, **overrides) -> dict:
    """PSNR of stored v1/v2 (the default CRF, preset and tune, 4:4:4, or ``overrides`` of the
    ``ShardConfig``) against the clean crop, and their size."""
    cfg = ShardConfig(source=str(source), out="-", **overrides)
    sources = [probe_item(item, cfg.clip_seconds) for item in index_source(source)[0]]
    values, sizes = [], []
    for i in range(n):
        rng = np.random.default_rng(i)
        clip = cut_clip(sources[i % len(sources)], cfg, rng, Timer())
        data = codec.encode_video(
            clip.frames, cfg.fps, cfg.crf, cfg.preset, cfg.tune, cfg.x264_params
        )
        values.append(codec.psnr(codec.decode_video(data), clip.frames))
        sizes.append(len(data))
    return {
        "psnr_db_median": statistics.median(values),
        "psnr_db_min": min(values),
        "bytes_median": statistics.median(sizes),
    }


def _sources(tmp: Path, seconds: float) -> dict[str, Path]:
    """The proxy sources (all, and the same files by resolution)."""
    source = tmp / "src"
    paths = media.write_sources(source, seconds=seconds)
    subsets = {"all": source}
    for tag in ("360p", "720p"):
        subsets[tag] = tmp / f"src{tag}"
        subsets[tag].mkdir()
        for path in paths:
            if tag in path.name:
                os.link(path, subsets[tag] / path.name)
    return subsets


def _make_shards_section(subsets: dict[str, Path], work: Path, sizes: Sizes) -> list[str]:
    d = {f.name: f.default for f in dataclasses.fields(ShardConfig)}
    n, repeats, config = sizes.samples, sizes.repeats, dict(sizes.config)
    lines = [
        "## make-shards, one worker process (per core)",
        "",
        f"Default config (64x128x128 at 25 fps, chain pairing, CRF {d['crf']} v1/v2, mix CRF "
        f"{d['mix_crf']} lowered until the blend identity is >= 40 dB, {_x264(d)}, AAC "
        f"64 kbit/s), {n} samples per run (one shard; 12 are two passes over the six sources, "
        f"so 360p and 720p in equal shares), median of {repeats} runs. `draw` is "
        f"the same run with `--pairing draw` (V2 drawn and decoded per sample, as before "
        f"chain pairing); `trellis` with `--x264-params ''` (x264's faster preset as it is).",
        "",
        "| blend | sources | variant | samples/s per core | KB per sample | decode+resize "
        "| crop | slic | blend | encode | write |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    runs = [("transparent", "all", "chain"), ("occlusion", "all", "chain"),
            ("transparent", "all", "trellis"),
            ("transparent", "all", "draw"), ("occlusion", "all", "draw"),
            ("transparent", "360p", "chain"), ("transparent", "720p", "chain")]  # fmt: skip
    for blend, subset, variant in runs:
        overrides = {"x264_params": ""} if variant == "trellis" else {"pairing": variant}
        r = bench_make_shards(subsets[subset], work, blend, n, repeats, **overrides, **config)
        st = r["stage_s_per_sample"]
        cells = " | ".join(
            f"{st.get(k, 0.0):.3f} s"
            for k in ("decode+resize", "crop", "slic", "blend", "encode", "write")
        )
        lines.append(
            f"| {blend} | {subset} | {variant} | {r['samples_per_s_per_core']:.2f} | "
            f"{r['bytes_per_sample'] / 1e3:.0f} | {cells} |"
        )
    fid = bench_fidelity(subsets["all"], sizes.fidelity_clips, **config)
    return lines + [
        "",
        "Stage times are per sample. With chain pairing each decoded clip serves two samples "
        "(V1 of one, V2 of the next), so a sample costs one clip's decoding and encoding; "
        "with draw pairing, two. Resizing happens inside swscale during decoding, so the "
        "two are one stage. `encode` includes decoding v1/v2/mix again for the blend "
        "identity check and the audio/alpha members; `blend` is equation 3 in float. "
        "Decoding skips non-reference pictures before the window (`blendkit/decode.py`).",
        "",
        "## Fidelity of stored v1 / v2",
        "",
        f"H.264 CRF {d['crf']} ({_x264(d)}) yuv444p against the clean 128x128 crop, "
        f"{sizes.fidelity_clips} clips: median {fid['psnr_db_median']:.1f} dB (min "
        f"{fid['psnr_db_min']:.1f} dB), median {fid['bytes_median'] / 1e3:.1f} KB per clip.",
        "",
    ]


def _loader_section(work: Path, source: Path, sizes: Sizes) -> list[str]:
    """Shards -> batched tensors, on the shards the make-shards runs above wrote."""
    batches, repeats, config = sizes.loader_batches, sizes.loader_repeats, dict(sizes.config)
    listing = work / "shards.txt"
    listing.write_text("\n".join(str(p) for p in sorted(work.glob("*/shard-*.tar"))) + "\n")
    lines = ["## Loader: shards to batched tensors", "",
             f"`trainer.data.make_loader`, one worker process, batch 8, {batches} timed "
             f"batches after the first, median of {repeats} runs, on the shards written "
             "above (64x128x128).", "",
             "| setting | samples/s (1 worker core) | samples per CPU-second |",
             "|---|---|---|"]  # fmt: skip
    for name, kw in (("paper (64 frames)", {}), ("tiny (every 8th frame)", {"frame_stride": 8}),
                     ("paper, remix", {"remix": True})):  # fmt: skip
        r = loader.measure(str(listing), 8, 1, batches, repeats, shuffle_buffer=16, **kw)
        lines.append(f"| {name} | {r['samples_per_s_per_core']:.1f} | "
                     f"{r['samples_per_cpu_s']:.1f} |")  # fmt: skip
    n = sizes.tune_samples
    for tune in (None, "fastdecode"):  # the same samples, written both ways
        out = work / f"tune-{tune}"
        cfg = ShardConfig(source=str(source), out=str(out), num_samples=n,
                          samples_per_shard=n // 2, tune=tune, **config)  # fmt: skip
        make_shards(cfg, progress=False)
        kb = sum(p.stat().st_size for p in out.glob("shard-*.tar")) / n / 1e3
        r = loader.measure(str(out), 8, 1, batches, repeats, shuffle_buffer=16)
        lines.append(f"| paper, {n} samples written with `--tune {tune or 'none'}` "
                     f"({kb:.0f} KB per sample) | {r['samples_per_s_per_core']:.1f} | "
                     f"{r['samples_per_cpu_s']:.1f} |")  # fmt: skip
    return lines + [
        "",
        "`--tune fastdecode` (x264 without CABAC and deblocking, the default) makes stored "
        "clips cheaper to decode and bigger than x264's default (`--tune none`).",
        "",
    ]


def _engine_section(source: Path, sizes: Sizes) -> list[str]:
    """Local engine against Ray on this machine (Ray is an optional extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return []
    n = sizes.samples
    r = engines.bench_engines(source, n, workers=2, samples_per_shard=2, **dict(sizes.config))
    overhead = 1 - r["ray_samples_per_s"] / r["local_samples_per_s"]
    return ["## Engines: local against Ray", "",
            f"{n} samples, 2 samples per shard, 2 worker processes: local "
            f"{r['local_samples_per_s']:.2f} samples/s, Ray {r['ray_samples_per_s']:.2f} samples/s "
            f"with warm workers ({overhead:+.0%} overhead), {r['ray_cold_samples_per_s']:.2f} "
            f"samples/s including worker start-up.", ""]  # fmt: skip


def _superpixel_section(sizes: Sizes) -> list[str]:
    frames, size = sizes.superpixel_shape
    result = superpixels.compare(sizes.superpixel_clips, frames, size)
    return [
        "## Superpixels: fast route against full-resolution SLIC",
        "",
        superpixels.markdown(result),
        "",
    ]


def _train_section(sizes: Sizes) -> list[str]:
    return [train.markdown(train.step_times(repeats=sizes.train_repeats, threads=1), 1), ""]


def run(out_md: Path, sizes: Sizes = FULL) -> str:
    """Run every benchmark and write the report to ``out_md``; returns its text."""
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench --out {out_md}`) on "
        f"{time.strftime('%Y-%m-%d')}.",
        f"Machine: {_machine()}.",
        "",
        "Every figure below was measured in the run that wrote this file. Sources are a proxy for",
        "real Kinetics video (none can be downloaded here, `bench/media.py`): pans over",
        "scikit-image's natural photographs with a moving object and sensor grain, "
        f"{sizes.source_seconds:g} s at",
        "30 fps, three at 640x360 and three at 1280x720, H.264 yuv420p CRF 20 + AAC stereo.",
        "",
    ]
    if sizes != FULL:
        lines[2:2] = ["**A quick run: tiny sizes, to show that every benchmark runs. Its figures "
                      "are not measurements to quote.**", ""]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        subsets = _sources(Path(tmp), sizes.source_seconds)
        lines += _make_shards_section(subsets, Path(tmp), sizes)
        lines += baseline.section(Path(tmp))  # on the shards just written
        lines += _loader_section(Path(tmp), subsets["all"], sizes)
        lines += _engine_section(subsets["all"], sizes)
    lines += _superpixel_section(sizes)
    lines += _train_section(sizes)
    lines += loss.section(sizes.loss_repeats)
    text = "\n".join(lines) + "\n"
    old = out_md.read_text() if out_md.is_file() else ""
    gpu = gpu_report.section_of(old)  # written by `make bench-gpu` on a GPU host: kept
    if gpu is not None:
        text = gpu_report.replace_section(text, gpu)
    out_md.write_text(text)
    return text
