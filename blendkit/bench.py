"""``make bench``: measure make-shards and write BENCHMARKS.md.

Kinetics cannot be downloaded on the build machine, so the sources are a documented proxy for real
360p-720p H.264 video: slow pans and zooms over scikit-image's natural photographs, with a moving
object and sensor grain (sigma 3), 10 s at 30 fps, H.264 yuv420p CRF 23 + AAC stereo 44.1 kHz. Every
figure is measured in the run that writes the file; medians over repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

from blendkit import codec
from blendkit.demo import write_video
from blendkit.pipeline import make_shards
from blendkit.recipe import Timer, cut_clip
from blendkit.shard_config import ShardConfig

IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "astronaut", "coffee")
SIZES = ((640, 360), (640, 360), (640, 360), (1280, 720), (1280, 720), (1280, 720))


def proxy_video(
    image: np.ndarray, width: int, height: int, seconds: float, fps: float, rng: np.random.Generator
) -> np.ndarray:
    """Pan and zoom over ``image`` with a moving disc and grain: (N, height, width, 3) uint8."""
    n = int(seconds * fps)
    big = cv2.resize(image, (int(width * 1.5), int(width * 1.5 * image.shape[0] / image.shape[1])))
    if big.shape[0] < height * 1.3:
        big = cv2.resize(
            image, (int(height * 1.3 * image.shape[1] / image.shape[0]), int(height * 1.3))
        )
    frames = np.empty((n, height, width, 3), np.uint8)
    (x0, y0), (x1, y1) = (0, 0), (big.shape[1] - width, big.shape[0] - height)
    colour = tuple(int(c) for c in rng.integers(0, 255, 3))
    for k in range(n):
        u = k / max(1, n - 1)
        x, y = int(x0 + (x1 - x0) * u), int(y0 + (y1 - y0) * (0.5 - 0.5 * np.cos(np.pi * u)))
        img = np.ascontiguousarray(big[y : y + height, x : x + width])
        cx = int(width * (0.2 + 0.6 * u))
        cy = int(height * (0.5 + 0.3 * np.sin(6 * u)))
        cv2.circle(img, (cx, cy), height // 8, colour, -1, cv2.LINE_AA)
        noise = rng.normal(0, 3, img.shape)
        frames[k] = np.clip(img + noise, 0, 255).astype(np.uint8)
    return frames


def make_sources(folder: Path, seconds: float = 10.0, fps: float = 30.0) -> list[Path]:
    """Six proxy videos (three 360p, three 720p) in a flat Kinetics layout."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (name, (w, h)) in enumerate(zip(IMAGES, SIZES, strict=True)):
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        path = folder / f"proxy{h}p{i:03d}_{i:06d}_{i + 10:06d}.mp4"
        t = np.arange(int(seconds * 44100)) / 44100
        audio = (
            0.3 * np.sin(2 * np.pi * (200 + 60 * i) * t) * (1 + np.sin(3 * t)) / 2
            + 0.02 * rng.standard_normal(t.shape)
        ).astype(np.float32)
        write_video(path, proxy_video(image[..., :3], w, h, seconds, fps, rng), fps, audio)
        paths.append(path)
    return paths


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
    ``ShardConfig``) against the clean 128x128 crop, and their size."""
    from blendkit.kinetics import index_source
    from blendkit.pipeline import probe_item

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


def run(out_md: Path, n: int = 12, repeats: int = 3) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m blendkit.bench --out {out_md}`) on "
        f"{time.strftime('%Y-%m-%d')}.",
        f"Machine: {_machine()}.",
        "",
        "Every figure below was measured in the run that wrote this file. Sources are a proxy for",
        "real Kinetics video (none can be downloaded here): pans and zooms over scikit-image's",
        "natural photographs with a moving object and sensor grain, 10 s at 30 fps, three at",
        "640x360 and three at 1280x720, H.264 yuv420p CRF 23 + AAC stereo.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        paths = make_sources(source)
        subsets = {"all": source}
        for tag in ("360p", "720p"):  # the same files, by resolution
            subsets[tag] = Path(tmp) / f"src{tag}"
            subsets[tag].mkdir()
            for path in paths:
                if tag in path.name:
                    os.link(path, subsets[tag] / path.name)
        d = {f.name: f.default for f in dataclasses.fields(ShardConfig)}
        lines += [
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
            r = bench_make_shards(subsets[subset], Path(tmp), blend, n, repeats, **overrides)
            st = r["stage_s_per_sample"]
            cells = " | ".join(
                f"{st.get(k, 0.0):.3f} s"
                for k in ("decode+resize", "crop", "slic", "blend", "encode", "write")
            )
            lines.append(
                f"| {blend} | {subset} | {variant} | {r['samples_per_s_per_core']:.2f} | "
                f"{r['bytes_per_sample'] / 1e3:.0f} | {cells} |"
            )
        lines += [
            "",
            "Stage times are per sample. With chain pairing each decoded clip serves two samples "
            "(V1 of one, V2 of the next), so a sample costs one clip's decoding and encoding; "
            "with draw pairing, two. Resizing happens inside swscale during decoding, so the "
            "two are one stage. `encode` includes decoding v1/v2/mix again for the blend "
            "identity check and the audio/alpha members; `blend` is equation 3 in float. "
            "Decoding skips non-reference pictures before the window (`blendkit/decode.py`).",
            "",
        ]
        fid = bench_fidelity(source)
        lines += ["## Fidelity of stored v1 / v2", "",
                  f"H.264 CRF {d['crf']} ({_x264(d)}) yuv444p against the clean 128x128 "
                  f"crop, 8 clips: median "
                  f"{fid['psnr_db_median']:.1f} dB (min {fid['psnr_db_min']:.1f} dB), median "
                  f"{fid['bytes_median'] / 1e3:.1f} KB per clip.", ""]  # fmt: skip
        lines += _loader_section(Path(tmp), source)
        lines += _engine_section(source, n)
    lines += _superpixel_section()
    lines += _train_section()
    text = "\n".join(lines) + "\n"
    out_md.write_text(text)
    return text


# loader runs: timed batches of 8 and repeats; 8 and 3 left the median of one `make bench` run
# 12% apart between two settings that do the same decoding (paper 37.6, remix 42.1)
LOADER_BATCHES, LOADER_REPEATS = 16, 5


def _loader_section(work: Path, source: Path) -> list[str]:
    """Shards -> batched tensors, on the shards the make-shards runs above wrote."""
    from trainer.bench_loader import measure

    listing = work / "shards.txt"
    listing.write_text("\n".join(str(p) for p in sorted(work.glob("*/shard-*.tar"))) + "\n")
    lines = ["## Loader: shards to batched tensors", "",
             f"`trainer.data.make_loader`, one worker process, batch 8, {LOADER_BATCHES} timed "
             f"batches after the first, median of {LOADER_REPEATS} runs, on the shards written "
             "above (64x128x128).", "",
             "| setting | samples/s (1 worker core) | samples per CPU-second |",
             "|---|---|---|"]  # fmt: skip
    for name, kw in (("paper (64 frames)", {}), ("tiny (every 8th frame)", {"frame_stride": 8}),
                     ("paper, remix", {"remix": True})):  # fmt: skip
        r = measure(str(listing), 8, 1, LOADER_BATCHES, LOADER_REPEATS, shuffle_buffer=16, **kw)
        lines.append(f"| {name} | {r['samples_per_s_per_core']:.1f} | "
                     f"{r['samples_per_cpu_s']:.1f} |")  # fmt: skip
    sizes = {}
    for tune in (None, "fastdecode"):  # the same 16 samples, written both ways
        out = work / f"tune-{tune}"
        cfg = ShardConfig(source=str(source), out=str(out), num_samples=16, samples_per_shard=8,
                          tune=tune)  # fmt: skip
        make_shards(cfg, progress=False)
        sizes[tune] = sum(p.stat().st_size for p in out.glob("shard-*.tar")) / 16 / 1e3
        r = measure(str(out), 8, 1, LOADER_BATCHES, LOADER_REPEATS, shuffle_buffer=16)
        lines.append(f"| paper, 16 samples written with `--tune {tune or 'none'}` "
                     f"({sizes[tune]:.0f} KB per sample) | {r['samples_per_s_per_core']:.1f} | "
                     f"{r['samples_per_cpu_s']:.1f} |")  # fmt: skip
    return lines + [
        "",
        "`--tune fastdecode` (x264 without CABAC and deblocking, the default) makes stored "
        "clips cheaper to decode and bigger than x264's default (`--tune none`).",
        "",
    ]


def _engine_section(source: Path, n: int) -> list[str]:
    """Local engine against Ray on this machine (Ray is an optional extra)."""
    try:
        from blendkit.bench_engines import bench_engines
    except ImportError:
        return []
    r = bench_engines(source, n, workers=2, samples_per_shard=2)
    overhead = 1 - r["ray_samples_per_s"] / r["local_samples_per_s"]
    return ["## Engines: local against Ray", "",
            f"{n} samples, 2 samples per shard, 2 worker processes: local "
            f"{r['local_samples_per_s']:.2f} samples/s, Ray {r['ray_samples_per_s']:.2f} samples/s "
            f"with warm workers ({overhead:+.0%} overhead), {r['ray_cold_samples_per_s']:.2f} "
            f"samples/s including worker start-up.", ""]  # fmt: skip


def _superpixel_section() -> list[str]:
    from blendkit import bench_superpixels

    return [
        "## Superpixels: fast route against full-resolution SLIC",
        "",
        bench_superpixels.markdown(bench_superpixels.compare()),
        "",
    ]


def _train_section() -> list[str]:
    from trainer.bench_train import markdown, step_times

    return [markdown(step_times(repeats=5, threads=1), threads=1), ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(run(args.out, args.samples, args.repeats))


if __name__ == "__main__":
    main()
