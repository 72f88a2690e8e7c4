"""Stage: re-pair stored clips across samples so a finite shard set gives fresh mixtures.

Not in the paper, which blends once per training video; this is our way to get new mixtures
every epoch from fixed shards. A new sample keeps ``(v1, alpha, a1)`` of one stored sample (the
base) -- alpha stays with the V1 it was computed from, so an occlusion mask is still a
superpixel of V1 -- and takes as V2 one clip (its v1 or v2, with that clip's audio) of a
*different* stored sample (the partner). The mixture is computed by the trainer with equation 3,
``mix = alpha * v1 + (1 - alpha) * v2`` (``trainer.data.device.prepare``), so the identity holds
exactly on what the model sees.

A pool of decoded samples supplies the partners. Each stored sample is the base of exactly one
output, so a stream of N samples gives N remixed samples. Draws use ``rng`` only, so the output
is deterministic given the seed. The new key is ``BASE+PARTNER.v1`` or ``BASE+PARTNER.v2``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import replace

from trainer.data.decoding import Sample
from trainer.data.stats import LoaderStats


def compose(base: Sample, partner: Sample, use_partner_v1: bool) -> Sample:
    """Base's V1 (with its alpha and audio) over one clip of the partner (with its audio)."""
    if use_partner_v1:
        tag, clip = "v1", partner.v1
        wave, has_audio, reversed_ = partner.a1_wave, partner.has_a1, partner.a1_reversed
    else:
        tag, clip = "v2", partner.v2
        wave, has_audio, reversed_ = partner.a2_wave, partner.has_a2, partner.a2_reversed
    if clip.shape != base.v1.shape or wave.shape != base.a1_wave.shape:
        raise ValueError(f"cannot remix {base.key} with {partner.key}: shapes differ")
    if partner.mel != base.mel:
        raise ValueError(f"cannot remix {base.key} with {partner.key}: audio rates differ")
    return replace(
        base,
        key=f"{base.key}+{partner.key}.{tag}",
        v2=clip,
        a2_wave=wave,
        has_a2=has_audio,
        a2_reversed=reversed_,
        mix=None,  # the trainer computes equation 3 on the new pair (trainer.data.device.prepare)
    )


def remix(
    samples: Iterable[Sample], *, pool_size: int, rng: random.Random, stats: LoaderStats
) -> Iterator[Sample]:
    """Stage: one remixed sample per input sample, drawing partners from a pool."""
    if pool_size < 2:
        raise ValueError(f"remix needs a pool of at least 2 samples, got {pool_size}")
    pool: list[Sample] = []
    previous: Sample | None = None
    for sample in samples:
        pool.append(sample)
        if len(pool) < pool_size:
            continue
        base = pool.pop(rng.randrange(len(pool)))
        yield compose(base, pool[rng.randrange(len(pool))], rng.random() < 0.5)
        previous = base
    while pool:  # drain; the last base pairs with the previous base
        base = pool.pop(rng.randrange(len(pool)))
        partner = pool[rng.randrange(len(pool))] if pool else previous
        if partner is None:
            stats.skip("remix_unpaired", base.key, "the stream held a single sample")
            continue
        yield compose(base, partner, rng.random() < 0.5)
        previous = base
