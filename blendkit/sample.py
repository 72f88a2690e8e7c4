"""Make one blended sample: the stages decode -> clip -> alpha -> encode -> blend, for one index.

Everything random about sample ``i`` comes from its own generator, seeded from the run seed and
``i`` alone, so a sample's bytes do not depend on which process makes it or in which order. A source
that fails to decode is recorded as a skip and replaced by another draw from the same generator.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from blendkit import codec
from blendkit.blend import blend, occlusion_alpha, transparent_alpha
from blendkit.config import ShardConfig
from blendkit.decode import DecodeError, ProbeInfo, VideoDecoder
from blendkit.kinetics import Skip, VideoItem
from blendkit.superpixels import choose_superpixel, occlusion_superpixels

MAX_DRAWS = 16  # sources tried per side before the sample itself is given up


@dataclass(frozen=True)
class Source:
    """A usable source video: its index entry and what probing it found."""

    item: VideoItem
    info: ProbeInfo


@dataclass
class Clip:
    frames: np.ndarray  # (T, crop, crop, 3) uint8
    audio: np.ndarray | None  # (audio_samples,) float32 mono
    meta: dict


@dataclass
class SampleResult:
    key: str
    members: dict[str, bytes]  # extension -> bytes
    meta: dict
    skips: list[Skip] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time


class Timer:
    """Accumulates wall time per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t0


def sample_seed(run_seed: int, index: int) -> int:
    """The 63-bit seed of sample ``index``: a function of the run seed and the index only."""
    return int(np.random.SeedSequence([run_seed, index]).generate_state(1, np.uint64)[0] >> 1)


def cut_clip(source: Source, cfg: ShardConfig, rng: np.random.Generator, timer: Timer) -> Clip:
    """Decode a random ``cfg.frames``-frame window at ``cfg.fps``, crop it, and take its audio."""
    duration = source.info.duration_s
    latest = max(0.0, duration - cfg.clip_seconds)
    start = float(rng.uniform(0.0, latest)) if latest > 0 else 0.0
    with timer("decode+resize"), VideoDecoder(source.item.path) as decoder:
        frames = decoder.frames(start, cfg.frames, cfg.fps, cfg.short_side)
        audio = None
        if decoder.info.has_audio:
            try:
                audio = decoder.audio(start, cfg.clip_seconds, cfg.audio_rate)
            except DecodeError:
                audio = None  # a broken audio track does not waste good video
    _, h, w, _ = frames.shape
    top = int(rng.integers(0, h - cfg.crop + 1))
    left = int(rng.integers(0, w - cfg.crop + 1))
    with timer("crop"):
        frames = np.ascontiguousarray(frames[:, top : top + cfg.crop, left : left + cfg.crop])
    item = source.item
    meta = {
        "youtube_id": item.youtube_id,
        "label": item.label,
        "split": item.split,
        "path": item.rel,
        "clip_start_s": round(start, 6),
        "crop": [top, left, cfg.crop, cfg.crop],
        "resized": [h, w],
        "has_audio": audio is not None,
    }
    return Clip(frames, audio, meta)


def _draw_clip(
    sources: list[Source], cfg: ShardConfig, rng, avoid: int, bad: set[int], skips, timer
) -> tuple[int, Clip]:
    """Draw a source other than ``avoid`` until one yields a clip; failures become skips and join
    ``bad``. Draws depend only on the generator and on which sources failed, never on timing."""
    for _ in range(MAX_DRAWS):
        if len(bad | {avoid} - {-1}) >= len(sources):
            break  # every source is either V1 or known to be bad
        j = avoid
        while j == avoid or j in bad:
            j = int(rng.integers(len(sources)))
        try:
            return j, cut_clip(sources[j], cfg, rng, timer)
        except DecodeError as e:
            bad.add(j)
            skips.append(Skip(sources[j].item.youtube_id, sources[j].item.rel, str(e)))
    raise DecodeError(f"no decodable source found in {MAX_DRAWS} draws")


def encode_blend(v1: np.ndarray, v2: np.ndarray, alpha: np.ndarray, cfg: ShardConfig, timer):
    """Encode v1 and v2, blend their *decoded* frames, encode the mix until it meets the PSNR bar.

    Returns (members, video meta). Blending the decoded frames makes the identity
    mix = alpha*v1 + (1-alpha)*v2 hold on exactly what a reader of the shard sees.
    """
    with timer("encode"):
        b1 = codec.encode_video(v1, cfg.fps, cfg.crf, cfg.preset)
        b2 = codec.encode_video(v2, cfg.fps, cfg.crf, cfg.preset)
        d1, d2 = codec.decode_video(b1), codec.decode_video(b2)
    with timer("blend"):
        target = blend(d1, d2, alpha)
        mix = np.clip(np.rint(target), 0, 255).astype(np.uint8)
    crf = cfg.mix_crf
    with timer("encode"):
        while True:
            bmix = codec.encode_video(mix, cfg.fps, crf, cfg.preset)
            quality = codec.psnr(codec.decode_video(bmix), target)
            if quality >= cfg.min_mix_psnr or crf == 0:
                break
            crf = max(0, crf - 3)
    video_meta = {
        "codec": "h264",
        "pix_fmt": codec.PIX_FMT,
        "crf": cfg.crf,
        "mix_crf": crf,
        "mix_psnr_db": round(quality, 3) if np.isfinite(quality) else 99.0,
    }
    return {"mix.mp4": bmix, "v1.mp4": b1, "v2.mp4": b2}, video_meta


def make_sample(index: int, first: int, sources: list[Source], cfg: ShardConfig) -> SampleResult:
    """Sample ``index`` with V1 = ``sources[first]`` (replaced by a fresh draw if it fails)."""
    seed = sample_seed(cfg.seed, index)
    rng = np.random.default_rng(seed)
    kind = cfg.kinds[index % len(cfg.kinds)]
    timer, skips, bad = Timer(), [], set()
    try:
        c1 = cut_clip(sources[first], cfg, rng, timer)
    except DecodeError as e:
        bad.add(first)
        skips.append(Skip(sources[first].item.youtube_id, sources[first].item.rel, str(e)))
        first, c1 = _draw_clip(sources, cfg, rng, -1, bad, skips, timer)
    _, c2 = _draw_clip(sources, cfg, rng, first, bad, skips, timer)

    sp_meta = None
    if kind == "occlusion":
        with timer("slic"):
            labels, compactness = occlusion_superpixels(c1.frames, cfg.superpixels)
            label, mask = choose_superpixel(labels, rng, cfg.superpixels)
        alpha = occlusion_alpha(mask)
        voxels = int(mask.sum())
        sp_meta = {
            "label": int(label),
            "voxels": voxels,
            "fraction": round(voxels / mask.size, 6),
            "n_segments": int(labels.max()) + 1,
            "compactness": compactness,
        }
    else:
        alpha = transparent_alpha(c1.frames.shape[:3])
    members, video_meta = encode_blend(c1.frames, c2.frames, alpha, cfg, timer)
    with timer("encode"):
        members["alpha.npz"] = codec.encode_alpha(alpha)
        ext = codec.audio_extension(cfg.audio_codec)
        for name, clip in (("a1", c1), ("a2", c2)):
            if clip.audio is not None:
                members[f"{name}.{ext}"] = codec.encode_audio(
                    clip.audio, cfg.audio_rate, cfg.audio_codec
                )
    key = f"{index:09d}"
    meta = {
        "key": key,
        "index": index,
        "blend": kind,
        "seed": seed,
        "fps": cfg.fps,
        "frames": cfg.frames,
        "height": cfg.crop,
        "width": cfg.crop,
        "audio_rate": cfg.audio_rate,
        "audio_samples": cfg.audio_samples,
        "v1": c1.meta,
        "v2": c2.meta,
        "superpixel": sp_meta,
        "video": video_meta,
    }
    return SampleResult(key, members, meta, skips, dict(timer.seconds))
