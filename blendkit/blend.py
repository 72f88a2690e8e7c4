"""Composing masks and equation 3 of the paper: V = alpha * V1 + (1 - alpha) * V2.

Transparent blending uses alpha = 1/2 everywhere (as the Visual Centrifuge did); occlusion blending
uses alpha = 1 inside one spatio-temporal superpixel of V1 and 0 elsewhere (see ``superpixels.py``).
"""

from __future__ import annotations

import numpy as np

KINDS = ("transparent", "occlusion")


def transparent_alpha(shape: tuple[int, int, int]) -> np.ndarray:
    """(T, H, W) float32 alpha of one half everywhere."""
    return np.full(shape, 0.5, np.float32)


def occlusion_alpha(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool superpixel mask -> float32 alpha, 1 inside and 0 outside."""
    return mask.astype(np.float32)


def blend(v1: np.ndarray, v2: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Equation 3 in float: (T,H,W,3) uint8 videos and (T,H,W) alpha -> (T,H,W,3) float32.

    Computed in place as ``v2 + alpha * (v1 - v2)``, one float array instead of five: 6 ms
    instead of 15-37 ms a 64x128x128 clip. Exact (equal to ``alpha*v1 + (1-alpha)*v2``) for the
    alphas blendkit writes, 0, 1/2 and 1; within one float32 rounding for any other."""
    out = v1.astype(np.float32)  # (T, H, W, 3)
    out -= v2
    out *= np.asarray(alpha, np.float32)[..., None]
    out += v2
    return out


def to_uint8(video: np.ndarray) -> np.ndarray:
    """Round a float video on the 0-255 scale to uint8."""
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)
