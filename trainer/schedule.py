"""A schedule counted in passes over the data: ``optim.schedule_blends``.

A preset's ``optim.steps`` and ``optim.milestones`` were set on a data set of some size; on one
twice as large the same steps make half the passes, and the learning-rate drop comes before the
model has seen the data as often. ``optim.schedule_blends = N`` says the schedule is counted for
N training blends: on shards of B > N blends (of the kinds ``data.blend`` keeps) the steps and
milestones are multiplied by B / N (rounded; the warm-up is not, and a cosine decay's ``anneal``
is already a share of the steps), so the run makes the passes it was tuned for. On fewer blends,
or with ``schedule_blends = 0``, the schedule is used as given: it never shrinks.

The trainer resolves it at startup, as it does ``optim.grad_accum=auto``: the resolved config
(``RUN/config.json``) holds the stretched steps and milestones and ``schedule_blends = 0``, so it
reads the same when loaded again. ``tiny`` counts its 900 steps for the demo's 512 blends
(``trainer.config.tiny``, which gives the measurements).
"""

from __future__ import annotations

import dataclasses
import logging
import math

from blendkit.format import FormatError, blend_counts, kinds
from trainer.config import OptimConfig, TrainConfig

log = logging.getLogger(__name__)


def stretched(optim: OptimConfig, blends: int) -> OptimConfig:
    """``optim`` with its steps and milestones counted for ``blends`` training blends (and
    ``schedule_blends`` 0: resolved); unchanged numbers when ``blends`` is not more than
    ``schedule_blends``."""
    resolved = dataclasses.replace(optim, schedule_blends=0)
    if not optim.schedule_blends or blends <= optim.schedule_blends:
        return resolved
    factor = blends / optim.schedule_blends
    milestones = [round(m * factor) for m in optim.milestones]  # still strictly increasing
    steps = math.ceil(optim.steps * factor)
    return dataclasses.replace(resolved, steps=steps, milestones=milestones)


def training_blends(cfg: TrainConfig) -> int:
    """Samples of ``cfg.data.shards`` whose blend kind the loader keeps, malformed ones left out
    (``FormatError``, ``OSError`` when they cannot be counted)."""
    counts = blend_counts(cfg.data.shards, on_error=_left_out, allow_pipe=cfg.data.allow_pipe)
    return sum(counts.get(kind, 0) for kind in kinds(cfg.data.blend))


def _left_out(error: FormatError) -> None:
    """A malformed sample is not counted: the loader does not train on it either."""


def resolve_schedule(cfg: TrainConfig, blends: int | None = None) -> TrainConfig:
    """``cfg`` with ``optim.schedule_blends`` resolved: for ``blends`` training blends when
    given (0: the schedule as given), else for those of ``cfg.data.shards``; when they cannot be
    counted the schedule is kept, with a warning."""
    if not cfg.optim.schedule_blends:
        return cfg
    if blends is None:
        try:
            blends = training_blends(cfg)
        except (FormatError, OSError) as e:
            log.warning("optim.schedule_blends: training blends not counted (%s): %d steps", e,
                        cfg.optim.steps)  # fmt: skip
    optim = stretched(cfg.optim, blends or 0)
    if optim.steps != cfg.optim.steps:
        log.info(
            "optim.schedule_blends=%d: %d training blends, so %d steps (milestones %s) for %d",
            cfg.optim.schedule_blends, blends, optim.steps, optim.milestones, cfg.optim.steps,
        )  # fmt: skip
    return dataclasses.replace(cfg, optim=optim)
