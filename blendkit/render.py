"""Contact sheet of shard samples: what the blends look like, and their audio as spectrograms.

One row per sample: four frames (start, 1/3, 2/3, end) of mix, v1, v2 and alpha, then the
spectrograms of a1 and a2. A sample whose members do not decode (within the sizes its json
states) is left off the sheet; text from the shards (labels, ids) is drawn as plain text
(``plain``), never as matplotlib mathtext.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blendkit.format.members import AUDIO, VIDEOS, audio_bytes, decode_layers  # noqa: E402
from blendkit.format.meta import SampleMeta  # noqa: E402
from blendkit.limits import DEFAULT_LIMITS  # noqa: E402

N_FRAMES = 4


def frame_strip(video: np.ndarray, n: int = N_FRAMES) -> np.ndarray:
    """n frames of a (T,H,W[,3]) video side by side with a 2-pixel white gap."""
    idx = np.linspace(0, len(video) - 1, n).round().astype(int)
    frames = [video[i] for i in idx]
    gap = np.full(
        (*frames[0].shape[:1], 2, *frames[0].shape[2:]), frames[0].max() or 1, frames[0].dtype
    )
    return np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)


def plain(text: str) -> str:
    """``text`` drawn as is by matplotlib: a ``$`` would start mathtext, and a bad formula from
    data (a label, a run folder's name) would fail the whole figure."""
    return text.replace("$", r"\$")


def _decoded(samples: list[tuple[str, dict, SampleMeta]]) -> list[tuple[str, dict, SampleMeta]]:
    """The samples whose layers decode within the sizes their json states (and the layers)."""
    out = []
    for key, sample, meta in samples:
        try:
            caps = DEFAULT_LIMITS.for_clip(meta.frames, meta.height, meta.width)
            out.append((key, sample, meta, decode_layers(sample, caps)))
        except Exception:  # codec errors come in many types; inspect --verify names them
            continue
    return out


def contact_sheet(samples: list[tuple[str, dict, SampleMeta]], path: Path) -> None:
    """Draw ``(key, raw sample, meta)`` rows into a PNG at ``path`` (samples that do not
    decode left off)."""
    samples = _decoded(samples)
    if not samples:
        raise ValueError(f"{path}: nothing to render (no readable samples)")
    cols = (*VIDEOS, "alpha", *AUDIO)
    fig, axes = plt.subplots(
        len(samples),
        len(cols),
        figsize=(26, 2.2 * len(samples)),
        gridspec_kw={"width_ratios": [4, 4, 4, 4, 1.6, 1.6]},
        squeeze=False,
    )
    for row, (key, sample, meta, frames) in zip(axes, samples, strict=True):
        for ax, name in zip(row, cols, strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            if name in AUDIO:
                _spectrogram(ax, audio_bytes(sample, AUDIO[name]), AUDIO[name].decode)
            elif name == "alpha":
                ax.imshow(frame_strip(frames[name]), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(frame_strip(frames[name]))
            side = getattr(meta, name) if name in ("v1", "v2") else None
            label = f" ({side.label or side.youtube_id})" if side else ""
            ax.set_title(plain(f"{name}{label}"), fontsize=9)
        row[0].set_ylabel(plain(f"{key.split(':')[-1]}\n{meta.blend}"), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, format="png")  # at ``path`` exactly, whatever its suffix
    plt.close(fig)


def _spectrogram(ax, data: bytes | None, decode) -> None:
    if data is None:
        ax.text(0.5, 0.5, "no audio", ha="center", va="center")
        return
    try:
        audio, rate = decode(data)
    except Exception:  # an undecodable track: said in the cell, the row stays
        ax.text(0.5, 0.5, "audio does not decode", ha="center", va="center")
        return
    ax.specgram(audio, NFFT=512, Fs=rate, noverlap=352, cmap="magma")
    ax.set_ylim(0, min(rate / 2, 8000))
