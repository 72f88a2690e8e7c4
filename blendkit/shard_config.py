"""Typed configuration for ``make-shards``: one frozen dataclass, strict loading.

Every number of the paper's data recipe (section 4) is a field. ``blendkit.typed_config.from_dict``
rejects unknown keys and values of the wrong type with a one-line error, so a typo never silently
falls back to a default; ``__post_init__`` checks the values with ``typed_config``'s checks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blendkit import codec
from blendkit.engines import ENGINES
from blendkit.format import blends
from blendkit.format.geometry import Geometry
from blendkit.format.meta import CHAIN, PAIRINGS
from blendkit.limits import Limits
from blendkit.superpixels import SuperpixelConfig
from blendkit.typed_config import (
    ConfigError,
    at_least,
    from_dict,
    one_of,
    positive,
    read_json_object,
    require,
)


@dataclass(frozen=True)
class ShardConfig:
    """What ``blendkit make-shards`` makes. Defaults follow the paper (section 4)."""

    source: str
    out: str
    annotations: str | None = None
    split: str | None = None
    blend: str = blends.BOTH  # transparent | occlusion | both (alternating by sample index)
    pairing: str = CHAIN  # chain: V2 is the next sample's V1 clip (recipe.py) | draw: at random
    num_samples: int | None = None  # default: one per usable source video
    samples_per_shard: int = 100
    workers: int = 1  # local engine: worker processes
    engine: str = "local"  # local | ray (blendkit.engines)
    ray_address: str | None = None  # ray engine: None = a private local Ray; "auto"; "ray://..."
    seed: int = 0
    frames: int = 64
    fps: float = 25.0
    short_side: int = 148
    crop: int = 128
    audio_rate: int = 16000
    audio_codec: str = "aac"  # aac (.m4a, ~21 KB per clip) | flac (lossless, ~60-80 KB)
    crf: int = 15  # v1 / v2: H.264 4:4:4
    mix_crf: int = 10  # first try for mix; lowered until the blend identity reaches min_mix_psnr
    min_mix_psnr: float = 40.0
    # x264 preset and tune of every video. Measured on 64-frame crops of the bench's 360p/720p
    # proxies: v1/v2 at faster/CRF 16 took 45 ms a clip to encode for 38.3 dB and 38 KB, at
    # medium/CRF 18 68 ms for 38.2 dB and 31 KB; veryfast/CRF 15 30 ms for 37.0 dB. Tune
    # fastdecode (no CABAC, no deblocking) cut the loader's decoding from 9.2 to 6.1 ms a clip
    # (CRF 15: 38.2 dB, 47 KB); its mix needs CRF 10 for the 40 dB blend identity (min 40.3 dB
    # over the proxies' blends, 110 KB).
    preset: str = "faster"
    tune: str | None = "fastdecode"  # None: x264's default
    # x264 options on top of the preset and tune, "key=value:key=value". trellis=0 (no trellis
    # quantisation, as in x264's veryfast) took encoding from 56 to 40 ms a clip at CRF 15 and
    # from 68 to 45 ms at CRF 10, for 0.25 dB less and the same size (bench proxies, 6 clips).
    x264_params: str = "trellis=0"
    superpixels: SuperpixelConfig = field(default_factory=SuperpixelConfig)
    limits: Limits = field(default_factory=Limits)  # caps on one input (blendkit.limits)

    def __post_init__(self) -> None:
        one_of(self, "blend", blends.BLEND_CHOICES)
        at_least(self, 1, "frames", "short_side", "crop", "audio_rate")
        at_least(self, 1, "samples_per_shard", "workers")
        if self.num_samples is not None:
            at_least(self, 1, "num_samples")
        one_of(self, "pairing", PAIRINGS)
        one_of(self, "engine", ENGINES)
        one_of(self, "audio_codec", codec.AUDIO_FORMATS)
        for name in ("fps", "min_mix_psnr"):  # NaN and inf are no rate, no quality bar
            require(math.isfinite(getattr(self, name)), name, "must be a finite number")
        positive(self, "fps")
        try:
            codec.check_x264_params(self.x264_params)
        except ValueError as e:
            raise ConfigError(f"x264_params: {e}") from None
        require(
            self.crop <= self.short_side,
            "crop",
            f"{self.crop} is larger than short_side {self.short_side}",
        )

    @property
    def geometry(self) -> Geometry:
        """The clips these shards hold (``blendkit.format.Geometry``)."""
        return Geometry(self.frames, self.fps, self.crop, self.crop, self.audio_rate)

    @property
    def clip_seconds(self) -> float:
        return self.geometry.clip_seconds

    @property
    def audio_samples(self) -> int:
        return self.geometry.audio_samples

    @property
    def kinds(self) -> tuple[str, ...]:
        """The blend kinds samples take in turn (by sample index)."""
        return blends.kinds(self.blend)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the shards' bytes (not where they go, nor how or where they
        are made)."""
        d = dataclasses.asdict(self)
        for volatile in ("out", "workers", "engine", "ray_address", "source", "annotations"):
            d.pop(volatile)
        return d

    @classmethod
    def load(cls, path: Path) -> ShardConfig:
        return from_dict(cls, read_json_object(path))
