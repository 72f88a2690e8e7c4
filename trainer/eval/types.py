"""What one run's evaluation pass produces, shared by the pass, the figures and the files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from trainer.eval.downstream import Table3
from trainer.eval.runs import LoadedRun


@dataclass
class ExampleClips:
    """An example's whole clips for the HTML report (``trainer.eval.report_page``), at the
    model's input geometry (T frames at the run's fps over ``data.frame_stride``, pooled pixels).

    Every video is (T, H, W, 3) uint8, made displayable by the one conversion of the evaluation
    pass (``trainer.eval.scoring._uint8``); ``terms[i][j]`` is beta_ij * L_j (None for
    models without a composition module); ``audio`` is V1's sound, the control signal, as the
    mono waveform at the shards' audio rate (None without one).
    Memory: (3 + n + n * m) * T * H * W * 3 bytes an example (23 * 3.1 MB = 72 MB for the
    paper's n = m = 4 at 64x128x128; 13 * 24.6 KB for the tiny config), for at most
    ``n_examples`` examples per blend kind.
    """

    mix: np.ndarray
    v1: np.ndarray
    v2: np.ndarray
    outputs: list[np.ndarray]
    terms: list[list[np.ndarray]] | None = None
    audio: np.ndarray | None = None


@dataclass
class Example:
    """One validation sample kept for the figures: a representative (middle) frame of each video.

    Frames are (3, H, W) float in [0, 1]; ``terms`` holds each beta_ij * L_j of the composition
    module (n, m, 3, H, W), None for models without one. ``index`` is the sample's place in the
    pass (its row in ``metrics["per_sample"]``); ``clips`` its whole clips, for the HTML report.
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
    index: int = 0
    clips: ExampleClips | None = None


@dataclass
class RunResult:
    """Everything one run's evaluation pass produced."""

    run: LoadedRun
    metrics: dict[str, Any]
    examples: list[Example]
    videos: list[dict[str, Any]]  # {"key", "blend", "mix", "v1", "v2", "outputs"} uint8 (T,H,W,3)
    table3: Table3 | None = None  # when a classifier was given
