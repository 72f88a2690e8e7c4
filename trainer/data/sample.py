"""Sample-level stages: select on the json metadata, then decode members into tensors.

Selection runs before the shuffle buffer and the decoders, on the small json member only, so
dropped samples cost no video decoding. Videos are decoded to their stored Y, U, V planes
(``blendkit.codec.decode_video_yuv``): the trainer converts them to RGB on the device
(``trainer.colour``), which takes a third of the decoding work off the loader's CPU cores.
Alpha travels as float16, half the bytes of float32 to stack into shared memory (1.3 ms a
sample less on the loader's core): exact for the 0, 1/2 and 1 that blendkit writes, and within
2^-12 for any other value in [0, 1] (a sixteenth of one uint8 video level). ``prepare`` makes it
float32 on the device. Audio is decoded to its mono waveform, whose log-mel the trainer computes
on the device (``trainer.audio_features.batch_log_mel``, from ``trainer.train.prepare``).
Decoding uses ``blendkit.codec`` and checks every member against the json (frames, height,
width, audio rate and length): a sample that fails is skipped and counted, never zero-filled.
The one deliberate placeholder is an *absent* audio track (contract: no ``a1``/``a2`` when the
source has no audio): a silent waveform plus ``has_a* = False``, which gives all-zero features.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch

from blendkit.codec import audio_member_name, decode_alpha, decode_audio, decode_video_yuv
from trainer.audio_features import MelParams
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


def audio_member(raw: RawSample, track: str) -> str | None:
    """The member name holding ``track`` ("a1" or "a2") audio, or None when it is absent."""
    return audio_member_name(raw, track)


class SampleError(ValueError):
    """A sample that must be skipped; ``reason`` is a ``LoaderStats`` error name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _where(raw: RawSample) -> str:
    return f"{raw.get('__url__')}:{raw.get('__key__')}"


def select(
    samples: Iterable[RawSample],
    *,
    blend: str,
    require_audio: bool,
    stats: LoaderStats,
    max_dropped_in_a_row: int | None = None,
) -> Iterator[RawSample]:
    """Parse ``KEY.json`` into ``raw["meta"]`` and keep samples of the wanted blend (and with
    V1 audio when ``require_audio``). ``max_dropped_in_a_row`` guards endless streams against a
    filter that matches nothing."""
    dropped_in_a_row = 0
    for raw in samples:
        if "json" not in raw:
            stats.skip("missing_member", _where(raw), "no json member")
            continue
        try:
            raw["meta"] = meta = json.loads(raw["json"])
            kind = meta["blend"]
        except (ValueError, KeyError, TypeError) as exc:
            stats.skip("decode_error", _where(raw), f"bad json: {exc!r}")
            continue
        if blend != "any" and kind != blend:
            stats.add("filtered_blend")
        elif require_audio and audio_member(raw, "a1") is None:
            stats.add("filtered_no_audio")
        else:
            dropped_in_a_row = 0
            yield raw
            continue
        dropped_in_a_row += 1
        if max_dropped_in_a_row is not None and dropped_in_a_row >= max_dropped_in_a_row:
            raise RuntimeError(
                f"{dropped_in_a_row} samples in a row failed the filter "
                f"(blend={blend!r}, require_audio={require_audio}); does the shard set hold any?"
            )


def _video(raw: RawSample, name: str, shape: tuple[int, int, int], step: int) -> torch.Tensor:
    planes = decode_video_yuv(raw[name], step)  # (3, T, H, W)
    if planes.shape != (3, *shape):
        raise SampleError(
            "decode_error", f"{name} decodes to {planes.shape[1:]} frames, json says {shape}"
        )
    return torch.from_numpy(planes)


def _audio(raw: RawSample, track: str, meta: dict) -> torch.Tensor:
    name = audio_member(raw, track)
    if name is None:
        return torch.zeros(int(meta["audio_samples"]))
    samples, rate = decode_audio(raw[name])
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
    return torch.from_numpy(decode_alpha(data)).to(torch.float16)


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
    required = ["v1.mp4", "v2.mp4", "alpha.npz"] + (["mix.mp4"] if need_mix else [])
    missing = [name for name in required if name not in raw]
    if missing:
        raise SampleError("missing_member", f"missing {', '.join(missing)}")
    meta = raw["meta"]
    shape = (int(meta["frames"]), int(meta["height"]), int(meta["width"]))
    alpha = _alpha(raw["alpha.npz"])
    if tuple(alpha.shape) != shape:
        raise SampleError("decode_error", f"alpha is {tuple(alpha.shape)}, json says {shape}")
    alpha = alpha[::frame_stride]
    shape = (alpha.shape[0], *shape[1:])  # the kept frames
    v1, v2 = (_video(raw, f"{k}.mp4", shape, frame_stride) for k in ("v1", "v2"))
    return Sample(
        key=str(raw["__key__"]),
        blend=str(meta["blend"]),
        v1=v1,
        v2=v2,
        alpha=alpha.unsqueeze(0),  # (1, T, H, W)
        # without the stored mix, the trainer computes equation 3 on the decoded layers (exact)
        mix=_video(raw, "mix.mp4", shape, frame_stride) if need_mix else None,
        a1_wave=_audio(raw, "a1", meta),
        a2_wave=_audio(raw, "a2", meta),
        has_a1=audio_member(raw, "a1") is not None,
        has_a2=audio_member(raw, "a2") is not None,
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
            stats.skip(exc.reason, _where(raw), str(exc))
            continue
        except Exception as exc:  # codec errors come in many types (av, zlib, numpy, KeyError)
            stats.skip("decode_error", _where(raw), f"{type(exc).__name__}: {exc}")
            continue
        stats.add("samples_decoded")
        yield sample
