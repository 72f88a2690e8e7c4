"""The identity baseline of any shards: Table 1's "Identity" row, with no trained run.

The outputs are copies of the mixture V, scored as a model's are: the paper's l summed over the
two targets under the best assignment (eq. 4; with identical outputs that is
l(V1, V) + l(V2, V), ``trainer.metrics.identity_loss``), per blend kind and over both, in the
paper's unit: the videos are mapped to [-1, 1] (``trainer.pixels.PAPER``) before the loss, so
nothing is scaled afterwards. The mixtures are the ones a trainer sees: every sample once, in
shard order (``trainer.data.validation.validation_batches``), V = alpha V1 + (1 - alpha) V2 from
the decoded layers (equation 3; ``stored_mix`` scores the stored ``mix.mp4`` instead).

The first number to check on one's own shards: on Kinetics-600 the paper's identity is 0.364
(transparent) and 0.362 (occlusion). ``frame_stride`` and ``pixel_pool`` subsample the clips as a
run's ``data.frame_stride`` and ``pixel_pool`` do (the ``tiny`` preset: 8 and 4), for the
identity a run's evaluation reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from blendkit.format import BLEND_KINDS
from trainer import paper, pixels
from trainer.data import DataConfig, list_shards
from trainer.data.device import prepare
from trainer.data.validation import validation_batches
from trainer.eval.summary import GROUPS, by_blend, count
from trainer.metrics import identity_loss

PAPER_IDENTITY: dict[str, float] = dict(zip(BLEND_KINDS, paper.TABLE1["identity"][:2], strict=True))


@dataclass(frozen=True)
class Baseline:
    """The identity baseline of ``shards``: mean and number of samples per blend kind and over
    both (``blendkit.format.BOTH``), in the paper's unit (``loss_unit``), next to the paper's
    Kinetics values."""

    shards: str
    identity: dict[str, float]
    samples: dict[str, int]
    frame_stride: int = 1
    pixel_pool: int = 1
    stored_mix: bool = False
    loss_unit: str = pixels.LOSS_UNIT
    paper: dict[str, float] = field(default_factory=lambda: dict(PAPER_IDENTITY))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def identity_baseline(
    shards: str,
    *,
    batch_size: int = 8,
    max_samples: int | None = None,
    frame_stride: int = 1,
    pixel_pool: int = 1,
    stored_mix: bool = False,
    progress: bool = True,
    allow_pipe: bool = False,
) -> Baseline:
    """The identity baseline of the shards ``shards`` (a folder, pattern, list file or URL:
    anything ``list_shards`` takes); the first ``max_samples`` samples if given.

    Raises ``FileNotFoundError`` when there is no shard and ``ValueError`` when they hold no
    readable sample (one line each). ``allow_pipe``: a shard list may run ``pipe:`` commands.
    """
    list_shards(shards, allow_pipe=allow_pipe)  # raises FileNotFoundError naming the spec
    data = DataConfig(
        shards=shards, frame_stride=frame_stride, stored_mix=stored_mix, allow_pipe=allow_pipe
    )
    cpu = torch.device("cpu")
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=max_samples, desc="identity baseline", unit="sample", disable=not progress)
    with bar:
        for raw in validation_batches(data, shards, batch_size, max_samples):
            batch = prepare(
                raw, cpu, pixel_pool=pixel_pool, pixel_range=pixels.PAPER, channels_last=False
            )
            values = identity_loss(batch["mix"], batch["v1"], batch["v2"])  # (B,)
            rows += [
                {"blend": blend, "identity": float(v)}
                for blend, v in zip(batch["blend"], values, strict=True)
            ]
            bar.update(len(values))
    if not rows:
        raise ValueError(f"{shards}: no readable sample")
    return Baseline(
        shards=str(shards),
        identity=by_blend(rows, "identity"),
        samples=count(rows),
        frame_stride=frame_stride,
        pixel_pool=pixel_pool,
        stored_mix=stored_mix,
    )


def markdown(result: Baseline) -> str:
    """A table of the baseline per blend kind with its sample counts and the paper's values;
    its first line states the unit."""
    setting = ""
    if result.frame_stride > 1 or result.pixel_pool > 1:
        k = result.pixel_pool
        setting = f"; frame stride {result.frame_stride}, {k}x{k} pixels pooled"
    lines = [
        f"Identity baseline of `{result.shards}` (losses in the paper's unit, pixels in [-1, 1]"
        f"{setting}; the paper's column: Kinetics-600 validation, Table 1)",
        "",
        "| blend | samples | identity | paper |",
        "|---|---|---|---|",
    ]
    for group in GROUPS:
        if group in result.identity:
            published = result.paper.get(group)
            lines.append(
                f"| {group} | {result.samples[group]} | {result.identity[group]:.3f} | "
                f"{'-' if published is None else f'{published:.3f}'} |"
            )
    return "\n".join(lines)
