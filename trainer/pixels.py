"""Pixel ranges and the paper's loss unit: the one home of both.

The loader delivers float RGB in [0, 1] (``trainer.colour``). A run's model takes, gives and
is scored on videos in its ``model.pixel_range``:

* ``"[-1,1]"`` (``SYMMETRIC``): the paper's. Its I3D pipeline feeds pixels in [-1, 1], and the
  learning rate of 0.5 of its SGD is tuned for losses at that scale. The ``paper`` preset.
* ``"[0,1]"`` (``UNIT``): what every run used before the option existed (``LEGACY``: a saved
  config or run record without a range means this one), and the ``tiny`` preset's.

``prepare`` (``trainer.data.device``) maps the loader's [0, 1] into the run's range
(``to_model``); figures, videos and pages map model-range videos back (``to_display``).

**The paper's unit.** The loss l (``trainer.losses.reconstruction``) is 1-homogeneous, so the
same clips give twice the loss in [-1, 1] that they give in [0, 1] (the identity baseline of the
demo clips: 0.372 against 0.186). Every loss the project prints (training logs, TensorBoard,
evaluation tables and ``eval.json``, ``blendkit-eval baseline``, benchmarks) is in the paper's
unit, pixels in [-1, 1]: a loss computed in a run's range times ``loss_scale(range)`` (2 for
[0, 1], 1 for [-1, 1]). Each output states that once (``LOSS_UNIT``).
"""

from __future__ import annotations

from torch import Tensor

UNIT, SYMMETRIC = "[0,1]", "[-1,1]"
PIXEL_RANGES: tuple[str, ...] = (UNIT, SYMMETRIC)
BOUNDS: dict[str, tuple[float, float]] = {UNIT: (0.0, 1.0), SYMMETRIC: (-1.0, 1.0)}
PAPER = SYMMETRIC  # the paper's range: its I3D input, and the unit of its losses
LOADER = UNIT  # what the loader's RGB and every display are in
LEGACY = UNIT  # the range of runs made before the range was recorded
I3D_INPUT = SYMMETRIC  # what the I3D encoder is fed, whatever the run's range
LOSS_UNIT = "paper: pixels in [-1, 1]"  # the value of every output's loss-unit field


def check(pixel_range: str) -> str:
    """``pixel_range`` if it is one of ``PIXEL_RANGES``, else a one-line ``ValueError``."""
    if pixel_range not in BOUNDS:
        raise ValueError(f"unknown pixel range {pixel_range!r}; expected one of {PIXEL_RANGES}")
    return pixel_range


def convert(video: Tensor, src: str, dst: str) -> Tensor:
    """``video`` in range ``src`` mapped affinely into range ``dst`` (itself when they match)."""
    if check(src) == check(dst):
        return video
    (lo, hi), (to_lo, to_hi) = BOUNDS[src], BOUNDS[dst]
    if lo:
        video = video - lo
    return video * ((to_hi - to_lo) / (hi - lo)) + to_lo


def to_model(video: Tensor, pixel_range: str) -> Tensor:
    """The loader's [0, 1] RGB in the model's range."""
    return convert(video, LOADER, pixel_range)


def to_display(video: Tensor, pixel_range: str) -> Tensor:
    """A video in ``pixel_range`` back in [0, 1], for figures, videos and pages."""
    return convert(video, pixel_range, LOADER)


def loss_scale(pixel_range: str) -> float:
    """The factor that turns a loss computed in ``pixel_range`` into the paper's unit."""
    lo, hi = BOUNDS[check(pixel_range)]
    paper_lo, paper_hi = BOUNDS[PAPER]
    return (paper_hi - paper_lo) / (hi - lo)


def how_reported(pixel_range: str) -> str:
    """How a loss computed in ``pixel_range`` is reported: as computed, or scaled."""
    scale = loss_scale(pixel_range)
    return "as computed" if scale == 1 else f"computed in {pixel_range}, reported x{scale:g}"


def unit_note(pixel_range: str) -> str:
    """One line: the unit the losses are reported in, and how this range gets there."""
    return f"losses in the paper's unit, pixels in [-1, 1] ({how_reported(pixel_range)})"
