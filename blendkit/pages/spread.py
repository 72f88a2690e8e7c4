"""Which samples a page shows: a few, spread over blend kinds and shards.

``spaced(n_items, k)`` picks k indices spread evenly over ``range(n_items)`` (first and last
included), e.g. the shards to read. ``spread(candidates, n)`` then picks n candidates one at a
time, each time from the blend kind shown least so far (kinds in ``BLEND_KINDS`` order, then any
other kind by name), and within it from the shard shown least so far (lowest shard first), taking
that shard's next sample of that kind in order. Both are pure and deterministic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from blendkit.format.blends import BLEND_KINDS


@dataclass(frozen=True)
class Candidate:
    """A sample that could be shown: its shard (an index), its key and its blend kind."""

    shard: int
    key: str
    kind: str


def spaced(n_items: int, k: int) -> list[int]:
    """``min(k, n_items)`` distinct indices spread evenly over ``range(n_items)``."""
    if n_items <= 0 or k <= 0:
        return []
    if k >= n_items:
        return list(range(n_items))
    return sorted({int(i) for i in np.linspace(0, n_items - 1, k).round()})


def _kind_order(kind: str) -> tuple[int, str]:
    return (BLEND_KINDS.index(kind), "") if kind in BLEND_KINDS else (len(BLEND_KINDS), kind)


def spread(candidates: list[Candidate], n: int) -> list[Candidate]:
    """Up to ``n`` candidates, balanced over kinds first and shards second; in pick order."""
    queues: dict[tuple[str, int], list[Candidate]] = {}
    for c in candidates:
        queues.setdefault((c.kind, c.shard), []).append(c)
    by_kind, by_shard = Counter(), Counter()
    picked: list[Candidate] = []
    while len(picked) < n and queues:
        kind, shard = min(
            queues,
            key=lambda ks: (by_kind[ks[0]], _kind_order(ks[0]), by_shard[ks[1]], ks[1]),
        )
        queue = queues[(kind, shard)]
        picked.append(queue.pop(0))
        if not queue:
            del queues[(kind, shard)]
        by_kind[kind] += 1
        by_shard[shard] += 1
    return picked
