"""The shard format: the one home of every fact a shard writer and its readers share."""

from blendkit.format.blends import BLEND_CHOICES, BLEND_KINDS, BOTH, OCCLUSION, TRANSPARENT, kinds
from blendkit.format.geometry import Geometry, read_geometry

__all__ = [
    "BLEND_CHOICES",
    "BLEND_KINDS",
    "BOTH",
    "OCCLUSION",
    "TRANSPARENT",
    "Geometry",
    "kinds",
    "read_geometry",
]
