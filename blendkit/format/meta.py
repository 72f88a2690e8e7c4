"""A sample's metadata (its ``KEY.json`` member) as typed dataclasses.

``SampleMeta(...).to_dict()`` is what blendkit writes (the writer serialises it with sorted
keys); ``SampleMeta.from_dict`` reads it back and rejects a malformed one (a missing or unknown
field, a value of the wrong type, a blend or pairing outside the contract) with a one-line
``FormatError`` naming the field. ``to_dict`` keeps every value as given, so shards are
byte-identical to those written from plain dicts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from blendkit.format.blends import BLEND_KINDS, TRANSPARENT
from blendkit.format.geometry import Geometry
from blendkit.format.members import FormatError, sample_key

CHAIN = "chain"  # V2 is the next sample's V1 clip
DRAW = "draw"  # V2 drawn at random
PAIRINGS: tuple[str, ...] = (CHAIN, DRAW)


@dataclass(frozen=True)
class ClipMeta:
    """Where one side's clip (V1 or V2) comes from and how it was cut."""

    youtube_id: str
    label: str
    split: str
    path: str  # relative to the source folder
    clip_start_s: float
    crop: tuple[int, int, int, int]  # top, left, height, width in the resized frame
    resized: tuple[int, int]  # height, width after resizing
    has_audio: bool


@dataclass(frozen=True)
class SuperpixelMeta:
    """The superpixel of V1 that is an occlusion blend's alpha."""

    label: int
    voxels: int
    fraction: float  # of the clip's T*H*W voxels
    n_segments: int  # superpixels the clip was cut into
    compactness: float  # SLIC compactness used (raised for fine texture)


@dataclass(frozen=True)
class VideoMeta:
    """How the videos were coded, and the blend identity the mix reaches."""

    codec: str
    pix_fmt: str
    crf: int  # v1, v2
    mix_crf: int  # as finally used
    mix_psnr_db: float  # decoded mix against alpha*v1 + (1-alpha)*v2


@dataclass(frozen=True)
class SampleMeta:
    """Everything ``KEY.json`` says about a sample (docs/contract.md)."""

    key: str
    index: int
    blend: str  # one of BLEND_KINDS
    seed: int  # the sample's own seed
    pairing: str  # one of PAIRINGS
    fps: float
    frames: int
    height: int
    width: int
    audio_rate: int
    audio_samples: int
    v1: ClipMeta
    v2: ClipMeta
    superpixel: SuperpixelMeta | None  # None for transparent blends
    video: VideoMeta

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.frames, self.fps, self.height, self.width, self.audio_rate)

    def to_dict(self) -> dict[str, Any]:
        """The ``KEY.json`` object (tuples as lists, as JSON has them)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Any) -> SampleMeta:
        """Parse a ``KEY.json`` object; raises ``FormatError`` naming the first bad field."""
        meta = _build(cls, data, "")
        if meta.blend not in BLEND_KINDS:
            raise FormatError(f"blend: expected one of {list(BLEND_KINDS)}, got {meta.blend!r}")
        if meta.pairing not in PAIRINGS:
            raise FormatError(f"pairing: expected one of {list(PAIRINGS)}, got {meta.pairing!r}")
        if meta.key != sample_key(meta.index):
            raise FormatError(f"key: {meta.key!r} is not index {meta.index} as %09d")
        if (meta.superpixel is None) != (meta.blend == TRANSPARENT):
            raise FormatError(f"superpixel: must be null exactly for {TRANSPARENT} blends")
        return meta


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Dataclass ``cls`` from a JSON object: every field present, no other, each of its type."""
    if not isinstance(data, dict):
        raise FormatError(f"{prefix.rstrip('.') or 'json'}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in data]
    unknown = [k for k in data if k not in hints]
    if missing or unknown:
        what = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
        raise FormatError(f"{prefix.rstrip('.') or 'json'}: {what}")
    return cls(**{n: _value(data[n], hints[n], f"{prefix}{n}") for n in names})


def _value(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against type ``tp`` (int for float allowed, lists for tuples)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _value(value, next(a for a in args if a is not type(None)), key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.")
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise FormatError(f"{key}: expected a list of {len(args)}, got {value!r}")
        return tuple(_value(v, a, key) for v, a in zip(value, args, strict=True))
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:  # str, bool
        ok = isinstance(value, tp)
    if not ok:
        raise FormatError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value
