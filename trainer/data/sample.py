"""Sample-level stages: select on the json metadata, then decode members into tensors.

Selection runs before the shuffle buffer and the decoders, on the small json member only, so
dropped samples cost no video decoding. Videos are decoded to their stored Y, U, V planes
(``blendkit.codec.decode_video_yuv``): the trainer converts them to RGB on the device
(``trainer.colour``), which takes a third of the decoding work off the loader's CPU cores.
Decoding uses ``blendkit.codec`` and checks every member
against the json (frames, height, width, audio rate and length): a sample that fails is skipped
and counted, never zero-filled. The one deliberate placeholder is an *absent* audio track
(contract: no ``a1``/``a2`` when the source has no audio): zeros plus ``has_a* = False``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from blendkit.codec import audio_member_name, decode_alpha, decode_audio, decode_video_yuv
from trainer.audio_features import log_mel, silent_log_mel
from trainer.data.stats import LoaderStats
from trainer.data.tario import RawSample


@dataclass
class Sample:
    """One decoded sample; videos are uint8 Y, U, V planes (BT.601 limited range, as stored),
    alpha float32 in [0, 1]."""

    key: str
    blend: str
    v1: torch.Tensor  # (3, T, H, W) uint8 YUV
    v2: torch.Tensor  # (3, T, H, W) uint8 YUV
    alpha: torch.Tensor  # (1, T, H, W) float32
    mix: torch.Tensor | None  # (3, T, H, W) uint8 YUV of mix.mp4, or None (computed later)
    a1: torch.Tensor  # (1, n_mels, frames) log-mel of V1's audio; zeros when absent
    a2: torch.Tensor  # (1, n_mels, frames) log-mel of V2's audio; zeros when absent
    has_a1: bool
    has_a2: bool


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


def _audio(
    raw: RawSample, track: str, meta: dict, n_mels: int, n_fft: int, hop: int
) -> torch.Tensor:
    name = audio_member(raw, track)
    if name is None:
        return silent_log_mel(int(meta["audio_samples"]), n_mels, hop)
    samples, rate = decode_audio(raw[name])
    if rate != meta["audio_rate"] or len(samples) != meta["audio_samples"]:
        raise SampleError(
            "decode_error",
            f"{name} has {len(samples)} samples at {rate} Hz, json says "
            f"{meta['audio_samples']} at {meta['audio_rate']} Hz",
        )
    return log_mel(samples, rate, n_mels, n_fft, hop)


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
    alpha = decode_alpha(raw["alpha.npz"])
    if alpha.shape != shape:
        raise SampleError("decode_error", f"alpha is {alpha.shape}, json says {shape}")
    alpha = alpha[::frame_stride]
    shape = (alpha.shape[0], *shape[1:])  # the kept frames
    v1, v2 = (_video(raw, f"{k}.mp4", shape, frame_stride) for k in ("v1", "v2"))
    alpha_t = torch.from_numpy(np.asarray(alpha, np.float32)).unsqueeze(0)  # (1, T, H, W)
    return Sample(
        key=str(raw["__key__"]),
        blend=str(meta["blend"]),
        v1=v1,
        v2=v2,
        alpha=alpha_t,
        # without the stored mix, the trainer computes equation 3 on the decoded layers (exact)
        mix=_video(raw, "mix.mp4", shape, frame_stride) if need_mix else None,
        a1=_audio(raw, "a1", meta, n_mels, n_fft, hop_length),
        a2=_audio(raw, "a2", meta, n_mels, n_fft, hop_length),
        has_a1=audio_member(raw, "a1") is not None,
        has_a2=audio_member(raw, "a2") is not None,
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
