"""Figures 5, 6, 7 and 10 of the paper as PNG files, and example output videos as mp4.

Image grids show one representative frame per video (the middle frame of the clip), as the
paper's figures do. matplotlib runs on the Agg backend (no display needed).

* Figure 5: per row one sample, columns V, O_1..O_n, V1, V2.
* Figure 6: per sample, V and the n x m grid of composition terms beta_ij * L_j (C2/C3).
* Figure 7: per row V1 (stands in for the audio A1, as in the paper), V, O_1..O_n; the
  audio-chosen output has a green border when the control is correct (section 4.1 rule), red
  when wrong, grey when the sample has no V1 audio.
* Figure 10: control accuracy against the offset of the control audio.
* Videos: mix | V1 | V2 | O_1 .. O_n side by side, in the pages' display encoding
  (``blendkit.pages.encode``), at the fps of the model's input.

``write_figures`` draws every figure one run's evaluation pass allows, under generated names
(``fig5.png``, ``videos/example-1.mp4``, ...) inside its folder (``blendkit.confine.inside``);
text from elsewhere (a run folder's name) is drawn as plain text, never as matplotlib mathtext.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from blendkit.confine import inside  # noqa: E402
from blendkit.format import BLEND_KINDS, BOTH  # noqa: E402
from blendkit.pages.encode import DISPLAY_CRF, encode_display_video  # noqa: E402
from blendkit.render import plain  # noqa: E402
from trainer.eval.types import Example, RunResult  # noqa: E402
from trainer.models.registry import NO_CONTROL  # noqa: E402

CELL_INCHES = 1.6
GREEN, RED, GREY = "#1a9641", "#d7191c", "#999999"


def _image(frame: Tensor) -> np.ndarray:
    """(3, H, W) float -> (H, W, 3) float in [0, 1]."""
    return frame.clamp(0, 1).permute(1, 2, 0).numpy()


def _grid(rows: int, cols: int) -> tuple[Any, np.ndarray]:
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * CELL_INCHES, rows * CELL_INCHES), squeeze=False
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def figure5(examples: list[Example], path: Path, title: str = "") -> Path:
    """Rows of V, O_1..O_n, V1, V2 (one representative frame each)."""
    n = examples[0].outputs.shape[0]
    fig, axes = _grid(len(examples), n + 3)
    for r, ex in enumerate(examples):
        frames = [ex.mix, *ex.outputs, ex.v1, ex.v2]
        names = ["V", *[f"O{i + 1}" for i in range(n)], "V1", "V2"]
        for c, (frame, name) in enumerate(zip(frames, names, strict=True)):
            axes[r, c].imshow(_image(frame))
            if r == 0:
                axes[r, c].set_title(name, fontsize=9)
        axes[r, 0].set_ylabel(ex.blend, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def figure6(example: Example, path: Path, title: str = "") -> Path:
    """V and each beta_ij * L_j term (rows: outputs i, columns: layers j), then O_i."""
    if example.terms is None:
        raise ValueError("figure 6 needs a model with a composition module (C2/C3)")
    n, m = example.terms.shape[:2]
    fig, axes = _grid(n, m + 2)
    for i in range(n):
        axes[i, 0].imshow(_image(example.mix))
        axes[i, 0].set_ylabel(f"O{i + 1}", fontsize=9)
        for j in range(m):
            axes[i, j + 1].imshow(_image(example.terms[i, j]))
            if i == 0:
                axes[i, j + 1].set_title(f"beta_{{i{j + 1}}} L{j + 1}", fontsize=8)
        axes[i, m + 1].imshow(_image(example.outputs[i]))
    axes[0, 0].set_title("V", fontsize=9)
    axes[0, m + 1].set_title("sum = O_i", fontsize=8)
    fig.suptitle(f"{title} {example.blend} {example.key}".strip(), fontsize=9)
    return _save(fig, path)


def figure7(examples: list[Example], path: Path, title: str = "") -> Path:
    """Rows of V1 (for A1), V, O_1..O_n; the chosen output framed green (correct) or red."""
    n = examples[0].outputs.shape[0]
    fig, axes = _grid(len(examples), n + 2)
    for r, ex in enumerate(examples):
        axes[r, 0].imshow(_image(ex.v1))
        axes[r, 1].imshow(_image(ex.mix))
        for i in range(n):
            ax = axes[r, i + 2]
            ax.imshow(_image(ex.outputs[i]))
            if i == ex.chosen:
                color = GREY if ex.correct is None else (GREEN if ex.correct else RED)
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(5)
        if r == 0:
            axes[r, 0].set_title("A1 (frame of V1)", fontsize=8)
            axes[r, 1].set_title("V", fontsize=9)
            for i in range(n):
                axes[r, i + 2].set_title(f"O{i + 1}", fontsize=9)
        axes[r, 0].set_ylabel(ex.blend, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def figure10(curves: dict[str, tuple[list[float], list[float | None]]], path: Path) -> Path:
    """Control accuracy (%) against audio offset (s); ``curves``: label -> (offsets, accuracy)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (offsets, acc) in curves.items():
        points = [(o, a) for o, a in zip(offsets, acc, strict=True) if a is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel("Audio offset (s)")
    ax.set_ylabel("Control accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_video(video: dict[str, Any], path: Path, fps: float, crf: int = DISPLAY_CRF) -> Path:
    """mix | V1 | V2 | O_1 .. O_n side by side, each (T, H, W, 3) uint8, as a browser-playable
    mp4 (``blendkit.pages.encode``: H.264 4:2:0, ``+faststart``) at ``fps``, the rate of the
    model's input (the shards' fps over ``data.frame_stride``)."""
    frames = np.concatenate([video["mix"], video["v1"], video["v2"], *video["outputs"]], axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_display_video(frames, fps, crf))
    return path


def write_figures(result: RunResult, dest: Path, fps: float) -> dict[str, str]:
    """Figures 5, 6, 7, 10 and example videos of one run into ``dest``; name -> path."""
    name = plain(result.run.name)
    paths: dict[str, Path] = {}
    if result.examples:
        paths["fig5"] = figure5(result.examples, inside(dest, "fig5.png"), name)
    for blend in BLEND_KINDS:
        ex = next((e for e in result.examples if e.blend == blend and e.terms is not None), None)
        if ex is not None:
            paths[f"fig6_{blend}"] = figure6(ex, inside(dest, f"fig6_{blend}.png"), name)
    if result.run.control != NO_CONTROL and result.examples:
        paths["fig7"] = figure7(result.examples, inside(dest, "fig7.png"), name)
    fig10 = result.metrics.get("fig10")
    if fig10:
        curves = {
            f"{name} {blend}": (fig10["offsets_s"], acc)
            for blend, acc in fig10["control_accuracy"].items()
            if blend in (*BLEND_KINDS, BOTH)
        }
        paths["fig10"] = figure10(curves, inside(dest, "fig10.png"))
    for i, video in enumerate(result.videos, 1):  # which sample: eval.json's "videos"
        path = inside(dest, "videos", f"example-{i}.mp4")
        paths[f"video_{i}"] = write_video(video, path, fps)
    return {k: str(v) for k, v in paths.items()}
