"""Make the blended samples of one shard: decode -> clip -> encode, then alpha -> blend per sample.

Pairing. Sample ``i`` takes as V1 a clip of source ``order[i]`` (``pipeline.source_order``). With
``pairing="chain"`` (default) its V2 is the V1 clip of the next sample of the same shard, and the
shard's last sample takes the first one's: every clip is decoded, encoded and decoded back once
and serves two samples (V1 of one, V2 of another), which halves the work per sample. With
``pairing="draw"``, or where the chain cannot give a different video (a one-sample shard, the same
source twice, a clip that failed), V2 is drawn at random among the other sources.

Everything random about sample ``i`` comes from its own generator, seeded from the run seed and
``i`` alone: first the draws of its V1 clip (start time and crop), then its own (a V2 draw, the
superpixel). A shard's bytes therefore depend only on its samples' indices, not on which process
makes it. A source that fails to decode is recorded as a skip and replaced by another draw from the
same generator.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from blendkit import codec
from blendkit.blend import blend, occlusion_alpha, to_uint8, transparent_alpha
from blendkit.decode import DecodeError, ProbeInfo, VideoDecoder
from blendkit.format.blends import OCCLUSION
from blendkit.format.members import A1, A2, ALPHA, MIX, V1, V2, audio_name, sample_key
from blendkit.format.meta import CHAIN, DRAW, ClipMeta, SampleMeta, SuperpixelMeta, VideoMeta
from blendkit.kinetics import Skip, VideoItem
from blendkit.shard_config import ShardConfig
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
    meta: ClipMeta


@dataclass
class SampleResult:
    key: str
    members: dict[str, bytes]  # member name -> bytes
    meta: dict  # SampleMeta.to_dict(): the KEY.json object
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
    with timer("decode+resize"), VideoDecoder(source.item.path, limits=cfg.limits) as decoder:
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
    meta = ClipMeta(
        youtube_id=item.youtube_id,
        label=item.label,
        split=item.split,
        path=item.rel,
        clip_start_s=round(start, 6),
        crop=(top, left, cfg.crop, cfg.crop),
        resized=(h, w),
        has_audio=audio is not None,
    )
    return Clip(frames, audio, meta)


@dataclass
class StoredClip:
    """A clip as it goes into shards: cut once, encoded once, and decoded back once."""

    source: int  # index into the usable sources
    clip: Clip
    video: bytes  # mp4 member
    decoded: np.ndarray  # (T, crop, crop, 3) uint8: what a reader of `video` sees
    audio: bytes | None  # audio member, None if the source has none
    rng: np.random.Generator  # the generator of the sample this clip is V1 of


def store_clip(
    source: int, clip: Clip, rng: np.random.Generator, cfg: ShardConfig, timer: Timer
) -> StoredClip:
    with timer("encode"):
        video = codec.encode_video(
            clip.frames, cfg.fps, cfg.crf, cfg.preset, cfg.tune, cfg.x264_params
        )
        decoded = codec.decode_video(video)
        audio = None
        if clip.audio is not None:
            audio = codec.encode_audio(clip.audio, cfg.audio_rate, cfg.audio_codec)
    return StoredClip(source, clip, video, decoded, audio, rng)


def _draw_clip(
    sources: list[Source], cfg: ShardConfig, rng, avoid: int, bad: set[int], skips, timer
) -> StoredClip:
    """Draw a source other than ``avoid`` until one yields a clip; failures become skips and join
    ``bad``. Draws depend only on the generator and on which sources failed, never on timing."""
    for _ in range(MAX_DRAWS):
        if len(bad | {avoid} - {-1}) >= len(sources):
            break  # every source is either V1 or known to be bad
        j = avoid
        while j == avoid or j in bad:
            j = int(rng.integers(len(sources)))
        try:
            clip = cut_clip(sources[j], cfg, rng, timer)
        except DecodeError as e:
            bad.add(j)
            skips.append(Skip(sources[j].item.youtube_id, sources[j].item.rel, str(e)))
            continue
        return store_clip(j, clip, rng, cfg, timer)
    raise DecodeError(f"no decodable source found in {MAX_DRAWS} draws")


class ShardClips:
    """The V1 clips of samples ``start..stop-1``, each cut and stored once, on demand.

    ``v1(i)`` is sample ``i``'s V1 clip (its source ``order[i]``, or a fresh draw if that one
    fails); ``v2(i)`` its V2 (see the module docstring). A clip is kept until the samples that
    use it are done: at most the shard's first clip and two more are held at a time.
    """

    def __init__(
        self, start: int, stop: int, order: Sequence[int], sources: list[Source], cfg: ShardConfig
    ) -> None:
        self.start, self.stop = start, stop
        self.order, self.sources, self.cfg = order, sources, cfg
        self._clips: dict[int, StoredClip | DecodeError] = {}

    def v1(self, i: int, timer: Timer, skips: list[Skip]) -> StoredClip:
        if i not in self._clips:
            self._clips[i] = self._cut(i, timer, skips)
        clip = self._clips[i]
        if isinstance(clip, DecodeError):
            raise clip
        return clip

    def v2(self, i: int, timer: Timer, skips: list[Skip]) -> tuple[StoredClip, str]:
        """Sample ``i``'s V2 and how it was paired (``"chain"`` or ``"draw"``); call after
        ``v1(i)``."""
        first = self.v1(i, timer, skips)
        nxt = self.start + (i + 1 - self.start) % (self.stop - self.start)
        if self.cfg.pairing == CHAIN and nxt != i:
            try:
                clip = self.v1(nxt, timer, skips)
                if clip.source != first.source:
                    return clip, CHAIN
            except DecodeError:
                pass  # sample nxt fails on its own; this one draws instead
        drawn = _draw_clip(self.sources, self.cfg, first.rng, first.source, set(), skips, timer)
        return drawn, DRAW

    def done(self, i: int) -> None:
        """Sample ``i`` is over: forget the clips no later sample of the shard needs."""
        last = i == self.stop - 1
        for j in [j for j in self._clips if j <= i and (j != self.start or last)]:
            del self._clips[j]

    def _cut(self, i: int, timer: Timer, skips: list[Skip]) -> StoredClip | DecodeError:
        rng = np.random.default_rng(sample_seed(self.cfg.seed, i))
        first = self.order[i]
        try:
            clip = cut_clip(self.sources[first], self.cfg, rng, timer)
            return store_clip(first, clip, rng, self.cfg, timer)
        except DecodeError as e:
            src = self.sources[first].item
            skips.append(Skip(src.youtube_id, src.rel, str(e)))
        try:
            return _draw_clip(self.sources, self.cfg, rng, -1, {first}, skips, timer)
        except DecodeError as e:
            return e


def mix_members(v1: StoredClip, v2: StoredClip, alpha: np.ndarray, cfg: ShardConfig, timer):
    """Blend the *decoded* v1 and v2 and encode the mix until it meets the PSNR bar.

    Returns (members, video meta). Blending the decoded frames makes the identity
    mix = alpha*v1 + (1-alpha)*v2 hold on exactly what a reader of the shard sees.
    """
    with timer("blend"):
        target = blend(v1.decoded, v2.decoded, alpha)
        mix = to_uint8(target)
    crf = cfg.mix_crf
    with timer("encode"):
        while True:
            bmix = codec.encode_video(mix, cfg.fps, crf, cfg.preset, cfg.tune, cfg.x264_params)
            quality = codec.psnr(codec.decode_video(bmix), target)
            if quality >= cfg.min_mix_psnr or crf == 0:
                break
            crf = max(0, crf - 3)
        members = {MIX.name: bmix, V1.name: v1.video, V2.name: v2.video}
        members[ALPHA.name] = ALPHA.encode(alpha)
        for track, clip in ((A1, v1), (A2, v2)):
            if clip.audio is not None:
                members[audio_name(track, cfg.audio_codec)] = clip.audio
    video_meta = VideoMeta(
        codec="h264",
        pix_fmt=codec.PIX_FMT,
        crf=cfg.crf,
        mix_crf=crf,
        mix_psnr_db=round(quality, 3) if np.isfinite(quality) else 99.0,
    )
    return members, video_meta


def make_sample(index: int, clips: ShardClips, cfg: ShardConfig) -> SampleResult:
    """Sample ``index`` of the shard whose clips ``clips`` holds; raises ``DecodeError`` when no
    clip can be had for it."""
    kind = cfg.kinds[index % len(cfg.kinds)]
    timer, skips = Timer(), []
    c1 = clips.v1(index, timer, skips)
    c2, pairing = clips.v2(index, timer, skips)
    rng = c1.rng

    sp_meta = None
    if kind == OCCLUSION:
        with timer("slic"):
            labels, compactness = occlusion_superpixels(c1.clip.frames, cfg.superpixels)
            label, mask = choose_superpixel(labels, rng, cfg.superpixels)
        alpha = occlusion_alpha(mask)
        voxels = int(mask.sum())
        sp_meta = SuperpixelMeta(
            label=int(label),
            voxels=voxels,
            fraction=round(voxels / mask.size, 6),
            n_segments=int(labels.max()) + 1,
            compactness=compactness,
        )
    else:
        alpha = transparent_alpha(c1.clip.frames.shape[:3])
    members, video_meta = mix_members(c1, c2, alpha, cfg, timer)
    meta = SampleMeta(
        key=sample_key(index),
        index=index,
        blend=kind,
        seed=sample_seed(cfg.seed, index),
        pairing=pairing,
        fps=cfg.fps,
        frames=cfg.frames,
        height=cfg.crop,
        width=cfg.crop,
        audio_rate=cfg.audio_rate,
        audio_samples=cfg.audio_samples,
        v1=c1.clip.meta,
        v2=c2.clip.meta,
        superpixel=sp_meta,
        video=video_meta,
    )
    return SampleResult(meta.key, members, meta.to_dict(), skips, dict(timer.seconds))
