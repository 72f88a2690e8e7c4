"""Blend kinds, spelled once.

A sample is a ``transparent`` blend (alpha = 1/2) or an ``occlusion`` blend (alpha = one
superpixel of V1). ``both`` names every kind at once: ``make-shards --blend both`` alternates
them by sample index, a loader with ``blend=both`` keeps every sample, and reports average over
both kinds under that name.
"""

from __future__ import annotations

TRANSPARENT = "transparent"
OCCLUSION = "occlusion"
BLEND_KINDS: tuple[str, ...] = (TRANSPARENT, OCCLUSION)
BOTH = "both"
BLEND_CHOICES: tuple[str, ...] = (*BLEND_KINDS, BOTH)


def kinds(choice: str) -> tuple[str, ...]:
    """The blend kinds ``choice`` (one kind, or ``both``) stands for."""
    if choice not in BLEND_CHOICES:
        raise ValueError(f"blend {choice!r} is not one of {', '.join(BLEND_CHOICES)}")
    return BLEND_KINDS if choice == BOTH else (choice,)
