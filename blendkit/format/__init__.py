"""The shard format: the one home of every fact a shard writer and its readers share.

- ``blends``    the blend kinds (transparent, occlusion; ``both``)
- ``members``   the member table (name -> what it holds, its codec) and the member-name rule
- ``meta``      a sample's ``KEY.json`` as typed dataclasses
- ``geometry``  the clip geometry of a shard set
- ``layout``    a shard folder's file names, ``SHARD_FORMAT``, shard listing and opening
- ``reader``    the one shard reader (streaming tar -> raw samples)
- ``manifest``  ``manifest.parquet``: its rows, writer and reader (sample labels)

docs/contract.md describes the format in words; this package is its source of truth.
"""

from blendkit.format.blends import BLEND_CHOICES, BLEND_KINDS, BOTH, OCCLUSION, TRANSPARENT, kinds
from blendkit.format.geometry import Geometry, read_geometry, read_shards_geometry
from blendkit.format.layout import (
    CONFIG,
    MADE_WITH,
    MANIFEST,
    REPORT,
    SHARD_FORMAT,
    list_shards,
    open_url,
    shard_name,
    sidecar_name,
)
from blendkit.format.manifest import blend_counts, labels, read_manifest, write_manifest
from blendkit.format.members import (
    A1,
    A2,
    ALPHA,
    MEMBERS,
    META,
    MIX,
    V1,
    V2,
    FormatError,
    Member,
    audio_bytes,
    decode_layers,
    find_audio,
    sample_key,
    split_member,
)
from blendkit.format.meta import PAIRINGS, ClipMeta, SampleMeta, SuperpixelMeta, VideoMeta
from blendkit.format.reader import RawSample, ShardError, read_shard

__all__ = [
    "A1",
    "A2",
    "ALPHA",
    "BLEND_CHOICES",
    "BLEND_KINDS",
    "BOTH",
    "CONFIG",
    "MADE_WITH",
    "MANIFEST",
    "MEMBERS",
    "META",
    "MIX",
    "OCCLUSION",
    "PAIRINGS",
    "REPORT",
    "SHARD_FORMAT",
    "TRANSPARENT",
    "V1",
    "V2",
    "ClipMeta",
    "FormatError",
    "Geometry",
    "Member",
    "RawSample",
    "SampleMeta",
    "ShardError",
    "SuperpixelMeta",
    "VideoMeta",
    "audio_bytes",
    "blend_counts",
    "decode_layers",
    "find_audio",
    "kinds",
    "labels",
    "list_shards",
    "open_url",
    "read_geometry",
    "read_manifest",
    "read_shard",
    "read_shards_geometry",
    "sample_key",
    "shard_name",
    "sidecar_name",
    "split_member",
    "write_manifest",
]
