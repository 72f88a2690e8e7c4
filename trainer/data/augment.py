"""Stage: random flips, time reversal and chroma symmetries of whole samples.

Not in the paper, which trains on 16M blends of 480k Kinetics videos; a small shard set (the
demo's 160 clips) is memorised instead: a tiny C2 reached 0.84x the identity baseline on its
training mixtures and stayed at 1.00x on unseen validation videos. Each transform is applied to
every member of a sample alike (mix, v1, v2, alpha, and for time reversal the audio features,
which ``a*_reversed`` has the trainer run backwards), so ``mix = alpha * v1 + (1 - alpha) * v2``
and the audio-visual alignment still hold.
Draws use ``rng`` only, so a stream is reproducible given the seed.

Colour: the loader's videos are Y, U, V planes (``trainer.colour``), so colours change by one of the
eight symmetries of the chroma plane around grey (swap U and V, mirror U, mirror V: U -> 256 - U),
which keep brightness and are exact on the stored integers (and linear, so equation 3 holds).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import replace

import torch
from torch import Tensor

from trainer.data.decoding import Sample

VIDEOS = ("mix", "v1", "v2")  # (3, T, H, W)


def chroma_symmetry(planes: Tensor, swap: bool, mirror_u: bool, mirror_v: bool) -> Tensor:
    """(3, T, H, W) uint8 Y, U, V planes with U and V swapped and/or mirrored around 128."""
    y, u, v = planes[0], planes[1], planes[2]
    if swap:
        u, v = v, u
    if mirror_u:
        u = (256 - u.to(torch.int16)).clamp_(0, 255).to(torch.uint8)
    if mirror_v:
        v = (256 - v.to(torch.int16)).clamp_(0, 255).to(torch.uint8)
    return torch.stack([y, u, v])


def augment_sample(sample: Sample, rng: random.Random, colour: bool = True) -> Sample:
    """One random combination of h-flip, v-flip, time reversal and (if ``colour``) chroma
    symmetry."""
    dims = [d for d, p in ((-1, 0.5), (-2, 0.5), (1, 0.5)) if rng.random() < p]  # W, H, T
    # swap, mirror U, mirror V; drawn even when ``colour`` is off, so the flips stay the same
    chroma = [rng.random() < 0.5 and colour for _ in range(3)]
    out = {}
    for name in VIDEOS:
        video = getattr(sample, name)
        if video is not None:  # mix is None unless the stored mix was decoded
            video = video.flip(dims) if dims else video
            out[name] = chroma_symmetry(video, *chroma) if any(chroma) else video
    out["alpha"] = sample.alpha.flip(dims) if dims else sample.alpha
    if 1 in dims:  # time reversal: the audio features run backwards too
        out["a1_reversed"], out["a2_reversed"] = not sample.a1_reversed, not sample.a2_reversed
    return replace(sample, **out)


def augment(
    samples: Iterable[Sample], *, rng: random.Random, colour: bool = True
) -> Iterator[Sample]:
    """Stage: ``augment_sample`` on every sample."""
    for sample in samples:
        yield augment_sample(sample, rng, colour)
