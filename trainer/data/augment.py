"""Stage: random flips, time reversal and colour-channel permutation of whole samples.

Not in the paper, which trains on 16M blends of 480k Kinetics videos; a small shard set (the
demo's 160 clips) is memorised instead: a tiny C2 reached 0.84x the identity baseline on its
training mixtures and stayed at 1.00x on unseen validation videos. Each transform is applied to
every member of a sample alike (mix, v1, v2, alpha, and the log-mel time axis for time
reversal), so ``mix = alpha * v1 + (1 - alpha) * v2`` and the audio-visual alignment still hold.
Draws use ``rng`` only, so a stream is reproducible given the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import replace

from trainer.data.sample import Sample

VIDEOS = ("mix", "v1", "v2")  # (3, T, H, W)


def augment_sample(sample: Sample, rng: random.Random) -> Sample:
    """One random combination of h-flip, v-flip, time reversal and channel permutation."""
    dims = [d for d, p in ((-1, 0.5), (-2, 0.5), (1, 0.5)) if rng.random() < p]  # W, H, T
    perm = list(range(3))
    rng.shuffle(perm)
    out = {}
    for name in VIDEOS:
        video = getattr(sample, name)
        if video is not None:  # mix is None unless the stored mix was decoded
            out[name] = (video.flip(dims) if dims else video)[perm]
    out["alpha"] = sample.alpha.flip(dims) if dims else sample.alpha
    if 1 in dims:  # time reversal: the audio features run backwards too
        out["a1"], out["a2"] = sample.a1.flip(-1), sample.a2.flip(-1)
    return replace(sample, **out)


def augment(samples: Iterable[Sample], *, rng: random.Random) -> Iterator[Sample]:
    """Stage: ``augment_sample`` on every sample."""
    for sample in samples:
        yield augment_sample(sample, rng)
