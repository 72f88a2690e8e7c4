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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch

from blendkit.codec import decode_video_yuv
from blendkit.format.members import A1, A2, ALPHA, MIX, V1, V2, Member, find_audio
from trainer.audio_features import MelParams
from trainer.data.select import where
from trainer.data.stats import LoaderStats
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


def _video(raw: RawSample, video: Member, shape: tuple[int, int, int], step: int) -> torch.Tensor:
    planes = decode_video_yuv(raw[video.name], step)  # (3, T, H, W)
    if planes.shape != (3, *shape):
        raise SampleError(
            "decode_error", f"{video.name} decodes to {planes.shape[1:]} frames, json says {shape}"
        )
    return torch.from_numpy(planes)


def _audio(raw: RawSample, track: Member, meta: dict) -> torch.Tensor:
    name = find_audio(raw, track)
    if name is None:
        return torch.zeros(int(meta["audio_samples"]))
    samples, rate = track.decode(raw[name])
    if rate != meta["audio_rate"] or len(samples) != meta["audio_samples"]:
        raise SampleError(
            "decode_error",
            f"{name} has {len(samples)} samples at {rate} Hz, json says "
            f"{meta['audio_samples']} at {meta['audio_rate']} Hz",
        )
    return torch.from_numpy(samples)


@lru_cache(maxsize=4)
def _alpha(data: bytes) -> torch.Tensor:
    """(T, H, W) float16 alpha of ``alpha.npz`` bytes, decoded once for repeated bytes.

    Every transparent sample stores the same constant-1/2 alpha, byte for byte (half of the demo
    shards), so the cache saves inflating 4 MB per such sample (0.8 ms, one core). The tensor
    is shared: stages never write into it (``Sample``).
    """
    return torch.from_numpy(ALPHA.decode(data)).to(torch.float16)


def decode_sample(
    raw: RawSample,
    *,
    need_mix: bool,
    n_mels: int,
    n_fft: int,
    hop_length: int,
    frame_stride: int = 1,
) -> Sample:
    """Decode one selected raw sample; raises ``SampleError`` (or a codec error) on any fault."""
    required = [V1, V2, ALPHA] + ([MIX] if need_mix else [])
    missing = [m.name for m in required if m.name not in raw]
    if missing:
        raise SampleError("missing_member", f"missing {', '.join(missing)}")
    meta = raw["__meta__"]
    shape = (int(meta["frames"]), int(meta["height"]), int(meta["width"]))
    alpha = _alpha(raw[ALPHA.name])
    if tuple(alpha.shape) != shape:
        raise SampleError("decode_error", f"alpha is {tuple(alpha.shape)}, json says {shape}")
    alpha = alpha[::frame_stride]
    shape = (alpha.shape[0], *shape[1:])  # the kept frames
    v1, v2 = (_video(raw, m, shape, frame_stride) for m in (V1, V2))
    return Sample(
        key=str(raw["__key__"]),
        blend=str(meta["blend"]),
        v1=v1,
        v2=v2,
        alpha=alpha.unsqueeze(0),  # (1, T, H, W)
        # without the stored mix, the trainer computes equation 3 on the decoded layers (exact)
        mix=_video(raw, MIX, shape, frame_stride) if need_mix else None,
        a1_wave=_audio(raw, A1, meta),
        a2_wave=_audio(raw, A2, meta),
        has_a1=find_audio(raw, A1) is not None,
        has_a2=find_audio(raw, A2) is not None,
        mel=MelParams(int(meta["audio_rate"]), n_mels, n_fft, hop_length),
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
) -> Iterator[Sample]:
    """Stage: decode each raw sample, skipping (and counting) the ones that fail."""
    for raw in samples:
        try:
            sample = decode_sample(
                raw, need_mix=need_mix, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length,
                frame_stride=frame_stride,
            )  # fmt: skip
        except SampleError as exc:
            stats.skip(exc.reason, where(raw), str(exc))
            continue
        except Exception as exc:  # codec errors come in many types (av, zlib, numpy, KeyError)
            stats.skip("decode_error", where(raw), f"{type(exc).__name__}: {exc}")
            continue
        stats.add("samples_decoded")
        yield sample
