"""Stage: select samples on their json metadata, before any video is decoded.

Selection runs before the shuffle buffer and the decoders, on the small ``KEY.json`` member only,
so dropped samples cost no video decoding. Besides the blend kind and audio filters, it can thin
out occlusion blends (``DataConfig.occlusion_keep``, our addition, not the paper's): the tiny
config trains on both kinds and leans towards transparent ones late in its run. The parsed json
travels on as ``raw["__meta__"]`` for the decode stage.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from blendkit.format.blends import OCCLUSION, kinds
from blendkit.format.members import A1, META, find_audio
from trainer.data.stats import LoaderStats, StreamError
from trainer.data.tario import RawSample


def wanted(blend: str) -> tuple[str, ...]:
    """The blend kinds ``DataConfig.blend`` keeps: one kind, or every kind (``both``)."""
    return kinds(blend)


def where(raw: RawSample) -> str:
    """``URL:KEY`` of a raw sample, for warnings."""
    return f"{raw.get('__url__')}:{raw.get('__key__')}"


def select(
    samples: Iterable[RawSample],
    *,
    blend: str,
    require_audio: bool,
    stats: LoaderStats,
    max_dropped_in_a_row: int | None = None,
    occlusion_keep: float = 1.0,
    rng: random.Random | None = None,
) -> Iterator[RawSample]:
    """Parse ``KEY.json`` into ``raw["__meta__"]`` and keep samples of the wanted blend (and with
    V1 audio when ``require_audio``), each occlusion blend only with probability
    ``occlusion_keep`` (drawn from ``rng``; ``DataConfig.occlusion_keep``). A thinned sample
    costs no decoding. ``max_dropped_in_a_row`` guards endless streams against a filter that
    matches nothing."""
    keep, dropped_in_a_row = wanted(blend), 0
    thinning = occlusion_keep < 1.0
    if thinning and rng is None:
        raise ValueError("select: occlusion_keep < 1 needs an rng")
    for raw in samples:
        if META.name not in raw:
            stats.skip("missing_member", where(raw), "no json member")
            continue
        try:
            raw["__meta__"] = meta = META.decode(raw[META.name])
            kind = meta["blend"]
        except (ValueError, KeyError, TypeError) as exc:
            stats.skip("decode_error", where(raw), f"bad json: {exc!r}")
            continue
        if kind not in keep:
            stats.add("filtered_blend")
        elif require_audio and find_audio(raw, A1) is None:
            stats.add("filtered_no_audio")
        elif thinning and kind == OCCLUSION and rng.random() >= occlusion_keep:
            stats.add("thinned_occlusion")
        else:
            dropped_in_a_row = 0
            yield raw
            continue
        dropped_in_a_row += 1
        if max_dropped_in_a_row is not None and dropped_in_a_row >= max_dropped_in_a_row:
            raise StreamError(
                f"{dropped_in_a_row} samples in a row failed the filter "
                f"(blend={blend!r}, require_audio={require_audio}); does the shard set hold any?"
            )
