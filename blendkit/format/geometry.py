"""Clip geometry of a shard set: what every sample of it holds, and what a model trains at."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from blendkit.format.layout import list_shards
from blendkit.format.members import META, FormatError
from blendkit.format.reader import read_shard


def audio_samples(frames: int, fps: float, audio_rate: int) -> int:
    """Samples of the audio of a clip of ``frames`` at ``fps``: the one rounding of its length."""
    return round(frames / fps * audio_rate)


@dataclass(frozen=True)
class Geometry:
    """Frames per clip, their rate, the frame size and the audio rate of a shard set's samples."""

    frames: int
    fps: float
    height: int
    width: int
    audio_rate: int

    @property
    def clip_seconds(self) -> float:
        return self.frames / self.fps

    @property
    def audio_samples(self) -> int:
        """Samples of a clip's audio track (``audio_samples`` of every ``KEY.json``)."""
        return audio_samples(self.frames, self.fps, self.audio_rate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        """From ``to_dict``'s output or a sample's ``KEY.json`` (which holds these keys too)."""
        try:
            return cls(
                frames=int(data["frames"]),
                fps=float(data["fps"]),
                height=int(data["height"]),
                width=int(data["width"]),
                audio_rate=int(data["audio_rate"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a clip geometry ({type(e).__name__}: {e})") from None


def read_geometry(first_shard: str | Path) -> Geometry:
    """The geometry of the first sample of a shard (path or URL), from its ``KEY.json``.

    Raises ``ValueError`` naming the shard when it holds no readable sample metadata.
    """
    try:
        for sample in read_shard(str(first_shard), on_error=_ignore, keep={META.name}):
            if META.name in sample:
                return Geometry.from_dict(META.decode(sample[META.name]))
    except ValueError as e:  # FormatError, ShardError and a bad json are ValueErrors
        raise ValueError(f"{first_shard}: no clip geometry ({e})") from None
    raise ValueError(f"{first_shard}: no sample metadata (KEY.json) to read the geometry from")


def read_shards_geometry(spec: str | Path) -> Geometry:
    """The geometry of a shard set (any spec ``layout.list_shards`` takes): its first shard's."""
    return read_geometry(list_shards(spec)[0])


def _ignore(error: FormatError) -> None:
    """Malformed members are never used; the geometry needs only a sample's json."""
