"""The members of a shard sample, declared once, and the one rule for member names.

A sample is the tar members ``KEY.NAME`` that share a KEY; ``NAME`` says what the member holds
and how it is coded (after webdataset's ``writer.py``, which declares its handlers in one table).
Every member is listed in ``MEMBERS`` with its codec functions from ``blendkit.codec``; code
elsewhere names members through the constants below, never as string literals.

Name rule. A tar member name is ``KEY.NAME``: the key is the name up to its first dot, NAME the
rest. The key is one or more of ``[A-Za-z0-9_-]``; NAME is dot-separated parts of the same
characters, its first a letter or digit (read as lowercase). A member name is data, never a
path: a name with a directory part, ``..``, an absolute path, an empty key or any other
character is malformed (``FormatError``), and readers count and skip it without using it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from blendkit import codec
from blendkit.limits import DEFAULT_LIMITS, Limits


class FormatError(ValueError):
    """A shard, sample or member that breaks the shard contract; the message says where and why."""


_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")


def sample_key(index: int) -> str:
    """The key of sample ``index``: its global index, zero-padded to nine digits."""
    return f"{index:09d}"


def split_member(name: str) -> tuple[str, str]:
    """Tar member name -> (key, member name): ``000000012.mix.mp4`` -> (``000000012``,
    ``mix.mp4``). Raises ``FormatError`` for a name that breaks the name rule (module docstring).
    """
    key, dot, rest = name.partition(".")
    if not dot or not _KEY.fullmatch(key) or not _NAME.fullmatch(rest):
        raise FormatError(f"malformed member name {name!r} (expected KEY.NAME, a plain file name)")
    return key, rest.lower()


@dataclass(frozen=True)
class Member:
    """One kind of member: its names (audio has one per codec), what it holds, whether every
    sample has it, and its decoder (bytes -> value) and encoder."""

    names: tuple[str, ...]
    holds: str
    required: bool
    decode: Callable[[bytes], Any]
    encode: Callable[..., bytes]

    @property
    def name(self) -> str:
        """The member name (for audio: the name of the default codec's extension)."""
        return self.names[0]


def encode_meta(meta: Mapping[str, Any]) -> bytes:
    """``KEY.json`` bytes of a sample's metadata dict (sorted keys: same dict, same bytes)."""
    return json.dumps(meta, sort_keys=True).encode()


def decode_meta(data: bytes) -> dict[str, Any]:
    """The metadata dict of ``KEY.json`` bytes (any JSON object; ``meta.SampleMeta`` checks it)."""
    try:
        meta = json.loads(data)
    except RecursionError:  # [[[[...]]]]: too deep for the parser, a ValueError like the others
        raise FormatError("json member nests too deeply") from None
    if not isinstance(meta, dict):
        raise FormatError(f"json member holds a {type(meta).__name__}, not an object")
    return meta


def _audio(track: str, side: str) -> Member:
    return Member(
        names=tuple(f"{track}.{ext}" for ext in codec.AUDIO_EXTENSIONS),
        holds=f"{side}'s audio: mono, audio_rate Hz, exactly audio_samples samples (AAC in m4a, "
        "or FLAC); absent when the source has none",
        required=False,
        decode=codec.decode_audio,
        encode=codec.encode_audio,
    )


_VIDEO = "H.264 yuv444p in mp4 -> (T, H, W, 3) uint8 RGB"
MIX = Member(("mix.mp4",), f"V = alpha*V1 + (1-alpha)*V2, {_VIDEO}", True,
             codec.decode_video, codec.encode_video)  # fmt: skip
V1 = Member(("v1.mp4",), f"V1, {_VIDEO}", True, codec.decode_video, codec.encode_video)
V2 = Member(("v2.mp4",), f"V2, {_VIDEO}", True, codec.decode_video, codec.encode_video)
ALPHA = Member(("alpha.npz",), "np.savez_compressed(alpha=...): float32 (T, H, W) in [0, 1]",
               True, codec.decode_alpha, codec.encode_alpha)  # fmt: skip
A1 = _audio("a1", "V1")
A2 = _audio("a2", "V2")
META = Member(("json",), "the sample's metadata (blendkit.format.meta.SampleMeta)", True,
              decode_meta, encode_meta)  # fmt: skip

MEMBERS: tuple[Member, ...] = (MIX, V1, V2, ALPHA, A1, A2, META)
VIDEOS: dict[str, Member] = {"mix": MIX, "v1": V1, "v2": V2}  # layer name -> its member
AUDIO: dict[str, Member] = {"a1": A1, "a2": A2}  # track -> its member
REQUIRED: tuple[str, ...] = tuple(m.name for m in MEMBERS if m.required)


def member(name: str) -> Member | None:
    """The table entry of member name ``name`` (``mix.mp4``, ``a1.flac``, ...), or None."""
    return next((m for m in MEMBERS if name in m.names), None)


def audio_name(track: Member, audio_codec: str) -> str:
    """The member name of ``track`` (``A1`` or ``A2``) audio encoded with ``audio_codec``."""
    ext = f".{codec.audio_extension(audio_codec)}"
    return next(n for n in track.names if n.endswith(ext))


def find_audio(sample: Mapping[str, Any], track: Member) -> str | None:
    """The member name holding ``track`` (``A1`` or ``A2``) audio in ``sample``, or None."""
    return next((n for n in track.names if n in sample), None)


def audio_bytes(sample: Mapping[str, Any], track: Member) -> bytes | None:
    """The bytes of ``track`` audio in ``sample`` whatever codec stored it, or None if absent."""
    name = find_audio(sample, track)
    return None if name is None else sample[name]


def decode_layers(
    sample: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS
) -> dict[str, np.ndarray]:
    """mix, v1, v2 as (T, H, W, 3) uint8 RGB and alpha as (T, H, W) float32, each decoded under
    ``limits`` (``Limits.for_clip`` gives a sample's own)."""
    out = {layer: m.decode(sample[m.name], limits=limits) for layer, m in VIDEOS.items()}
    out["alpha"] = ALPHA.decode(sample[ALPHA.name], max_bytes=limits.max_alpha_bytes)
    return out
