"""Stage: decode the members of selected raw samples into tensors (``Sample``).

Videos are decoded to their stored Y, U, V planes (``blendkit.codec.decode_video_yuv``): the
trainer converts them to RGB on the device (``trainer.colour``), which takes a third of the
decoding work off the loader's CPU cores.
Alpha travels as float16, half the bytes of float32 to stack into shared memory (1.3 ms a
sample less on the loader's core): exact for the 0, 1/2 and 1 that blendkit writes, and within
2^-12 for any other value in [0, 1] (a sixteenth of one uint8 video level). ``prepare`` makes it
float32 on the device. Audio is decoded to its mono waveform, whose log-mel the trainer computes
on the device (``trainer.audio_features.batch_log_mel``, from ``trainer.train.prepare``).
Members are named and decoded through ``blendkit.format.members``; every one is checked against
the json (frames, height,
width, audio rate and length): a sample that fails is skipped and counted, never zero-filled.
The one deliberate placeholder is an *absent* audio track (contract: no ``a1``/``a2`` when the
source has no audio): a silent waveform plus ``has_a* = False``, which gives all-zero features.

Geometry and caps. A stream has one clip geometry (frames, fps, size, audio rate): the run's
(``RUN/trained_on.json``), or without one the first sample's. A sample whose json states
another is skipped and counted (``geometry_mismatch``) before any member is decoded, so one
shard of another geometry among the training shards costs its samples, not the run. Members
are then decoded under caps (``blendkit.limits``) no larger than what that json states: a video
is refused past its frame count or at a frame size over its height x width, an alpha past the
bytes of its float32 array, an audio track past its sample count, and a json stating more than
``DataConfig.limits`` allows is refused (``over_cap``): a hostile member is never decoded at any
size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch

from blendkit.codec import decode_audio, decode_video_yuv
from blendkit.format import Geometry
from blendkit.format.members import A1, A2, ALPHA, MIX, V1, V2, Member, find_audio
from blendkit.limits import DEFAULT_LIMITS, Limits
from trainer.audio_features import MelParams
from trainer.data.cache import DecodedCache
from trainer.data.select import where
from trainer.data.stats import LoaderStats, StreamError
from trainer.data.tario import RawSample


@dataclass
class Sample:
    """One decoded sample; videos are uint8 Y, U, V planes (BT.601 limited range, as stored),
    alpha float16 in [0, 1], audio the mono waveforms (their log-mel is the trainer's, with
    ``mel``). Tensors may be shared between samples (the alpha cache, remix): stages build new
    tensors and never write into one."""

    key: str
    blend: str
    v1: torch.Tensor  # (3, T, H, W) uint8 YUV
    v2: torch.Tensor  # (3, T, H, W) uint8 YUV
    alpha: torch.Tensor  # (1, T, H, W) float16
    mix: torch.Tensor | None  # (3, T, H, W) uint8 YUV of mix.mp4, or None (computed later)
    a1_wave: torch.Tensor  # (N,) float32 waveform of V1's audio; zeros when absent
    a2_wave: torch.Tensor  # (N,) float32 waveform of V2's audio; zeros when absent
    has_a1: bool
    has_a2: bool
    mel: MelParams  # the audio rate and the log-mel settings
    a1_reversed: bool = False  # time-reversed by augmentation: a1's log-mel runs backwards
    a2_reversed: bool = False


class SampleError(ValueError):
    """A sample that must be skipped; ``reason`` is a ``LoaderStats`` error name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _geometry(meta: dict, expected: Geometry | None) -> Geometry:
    """The sample's geometry, checked against the stream's ``expected`` one."""
    try:
        found = Geometry.from_dict(meta)
        stated = int(meta["audio_samples"])
    except (KeyError, TypeError, ValueError) as e:
        raise SampleError("decode_error", f"bad json: {e}") from None
    sizes = (found.frames, found.height, found.width, found.audio_rate)
    if min(sizes) < 1 or not 0 < found.fps < math.inf:
        raise SampleError("decode_error", f"bad json: a clip geometry of {found}")
    if stated != found.audio_samples:
        raise SampleError(
            "decode_error", f"json says {stated} audio samples, its clip has {found.audio_samples}"
        )
    if expected is not None and found != expected:
        raise SampleError("geometry_mismatch", f"clips of {found}, the stream's are {expected}")
    return found


def _video(
    raw: RawSample, video: Member, shape: tuple[int, int, int], step: int, caps: Limits
) -> torch.Tensor:
    planes = decode_video_yuv(raw[video.name], step, caps)  # (3, T, H, W)
    if planes.shape != (3, *shape):
        raise SampleError(
            "decode_error", f"{video.name} decodes to {planes.shape[1:]} frames, json says {shape}"
        )
    return torch.from_numpy(planes)


def _audio(raw: RawSample, track: Member, meta: dict) -> torch.Tensor:
    name = find_audio(raw, track)
    if name is None:
        return torch.zeros(int(meta["audio_samples"]))
    samples, rate = decode_audio(raw[name], max_samples=int(meta["audio_samples"]))
    if rate != meta["audio_rate"] or len(samples) != meta["audio_samples"]:
        raise SampleError(
            "decode_error",
            f"{name} has {len(samples)} samples at {rate} Hz, json says "
            f"{meta['audio_samples']} at {meta['audio_rate']} Hz",
        )
    return torch.from_numpy(samples)


@lru_cache(maxsize=4)
def _alpha(data: bytes, max_bytes: int = DEFAULT_LIMITS.max_alpha_bytes) -> torch.Tensor:
    """(T, H, W) float16 alpha of ``alpha.npz`` bytes, decoded once for repeated bytes.

    Every transparent sample stores the same constant-1/2 alpha, byte for byte (half of the demo
    shards), so the cache saves inflating 4 MB per such sample (0.8 ms, one core). The tensor
    is shared: stages never write into it (``Sample``).
    """
    return torch.from_numpy(ALPHA.decode(data, max_bytes=max_bytes)).to(torch.float16)


def decode_sample(
    raw: RawSample,
    *,
    need_mix: bool,
    n_mels: int,
    n_fft: int,
    hop_length: int,
    frame_stride: int = 1,
    geometry: Geometry | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Sample:
    """Decode one selected raw sample of clip geometry ``geometry`` (when given) under
    ``limits`` (module docstring); raises ``SampleError`` (or a codec error) on any fault."""
    required = [V1, V2, ALPHA] + ([MIX] if need_mix else [])
    missing = [m.name for m in required if m.name not in raw]
    if missing:
        raise SampleError("missing_member", f"missing {', '.join(missing)}")
    meta = raw["__meta__"]
    g = _geometry(meta, geometry)
    try:
        caps = limits.for_clip(g.frames, g.height, g.width)
    except ValueError as e:
        raise SampleError("over_cap", f"its json states {e}; data.limits raises them") from None
    shape = (g.frames, g.height, g.width)
    alpha = _alpha(raw[ALPHA.name], caps.max_alpha_bytes)
    if tuple(alpha.shape) != shape:
        raise SampleError("decode_error", f"alpha is {tuple(alpha.shape)}, json says {shape}")
    alpha = alpha[::frame_stride]
    shape = (alpha.shape[0], *shape[1:])  # the kept frames
    v1, v2 = (_video(raw, m, shape, frame_stride, caps) for m in (V1, V2))
    return Sample(
        key=str(raw["__key__"]),
        blend=str(meta["blend"]),
        v1=v1,
        v2=v2,
        alpha=alpha.unsqueeze(0),  # (1, T, H, W)
        # without the stored mix, the trainer computes equation 3 on the decoded layers (exact)
        mix=_video(raw, MIX, shape, frame_stride, caps) if need_mix else None,
        a1_wave=_audio(raw, A1, meta),
        a2_wave=_audio(raw, A2, meta),
        has_a1=find_audio(raw, A1) is not None,
        has_a2=find_audio(raw, A2) is not None,
        mel=MelParams(g.audio_rate, n_mels, n_fft, hop_length),
    )


def decode(
    samples: Iterable[RawSample],
    *,
    need_mix: bool,
    n_mels: int,
    n_fft: int,
    hop_length: int,
    stats: LoaderStats,
    frame_stride: int = 1,
    geometry: Geometry | None = None,
    limits: Limits = DEFAULT_LIMITS,
    max_skipped_in_a_row: int | None = None,
    cache: DecodedCache[Sample] | None = None,
) -> Iterator[Sample]:
    """Stage: decode each raw sample, skipping (and counting) the ones that fail. Samples of
    another clip geometry than ``geometry`` (by default the first decoded sample's) are
    skipped. ``max_skipped_in_a_row`` guards endless streams: after that many skips in a row,
    raise instead of reading a shard set none of whose samples decode forever. A sample in
    ``cache`` (``trainer.data.cache``) is taken from there; one decoded is put there."""
    skipped_in_a_row = 0
    for raw in samples:
        cached = cache.get(where(raw)) if cache is not None else None
        if cached is not None:
            stats.add("samples_cached")
            skipped_in_a_row = 0
            yield cached
            continue
        if max_skipped_in_a_row is not None and skipped_in_a_row >= max_skipped_in_a_row:
            raise StreamError(
                f"the last {skipped_in_a_row} samples read were all skipped; see the warnings"
            )
        skipped_in_a_row += 1
        try:
            sample = decode_sample(
                raw, need_mix=need_mix, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length,
                frame_stride=frame_stride, geometry=geometry, limits=limits,
            )  # fmt: skip
        except SampleError as exc:
            stats.skip(exc.reason, where(raw), str(exc))
            continue
        except Exception as exc:  # codec errors come in many types (av, zlib, numpy, KeyError)
            stats.skip("decode_error", where(raw), f"{type(exc).__name__}: {exc}")
            continue
        stats.add("samples_decoded")
        skipped_in_a_row = 0
        if cache is not None:
            cache.put(where(raw), sample)
        if geometry is None:  # the stream's first sample sets its geometry
            geometry = Geometry.from_dict(raw["__meta__"])
        yield sample
