"""What one run's evaluation pass produces, shared by the pass, the figures and the files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from trainer.eval.downstream import Table3
from trainer.eval.runs import LoadedRun


@dataclass
class Example:
    """One validation sample kept for the figures: a representative (middle) frame of each video.

    Frames are (3, H, W) float in [0, 1]; ``terms`` holds each beta_ij * L_j of the composition
    module (n, m, 3, H, W), None for models without one.
    """

    key: str
    blend: str
    mix: Tensor
    v1: Tensor
    v2: Tensor
    outputs: Tensor  # (n, 3, H, W)
    assignment: list[int]  # output slots matched to V1, V2 by the PIL
    terms: Tensor | None = None
    chosen: int | None = None  # audio-chosen slot (C3)
    correct: bool | None = None


@dataclass
class RunResult:
    """Everything one run's evaluation pass produced."""

    run: LoadedRun
    metrics: dict[str, Any]
    examples: list[Example]
    videos: list[dict[str, Any]]  # {"key", "blend", "mix", "v1", "v2", "outputs"} uint8 (T,H,W,3)
    table3: Table3 | None = None  # when a classifier was given
