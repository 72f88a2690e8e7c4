"""trainer.schedule: optim.schedule_blends stretches steps and milestones for larger data sets."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from blendkit.format import blend_counts
from tests.tiny_shards import write_tiny_shards
from trainer.config import TINY_SCHEDULE_BLENDS, OptimConfig, apply_overrides, tiny
from trainer.schedule import resolve_schedule, stretched

ROOT = Path(__file__).resolve().parents[1]


def test_stretched_keeps_the_passes_over_the_data_and_never_shrinks():
    optim = OptimConfig(steps=900, milestones=[600], schedule_blends=512)
    numbers = {n: (o.steps, o.milestones, o.schedule_blends) for n in (320, 512, 768, 1024, 2048)
               for o in [stretched(optim, n)]}  # fmt: skip
    assert numbers == {
        320: (900, [600], 0),
        512: (900, [600], 0),
        768: (1350, [900], 0),
        1024: (1800, [1200], 0),
        2048: (3600, [2400], 0),
    }
    three = OptimConfig(steps=10, milestones=[3, 4, 5], schedule_blends=3)
    assert (stretched(three, 4).steps, stretched(three, 4).milestones) == (14, [4, 5, 7])
    fixed = dataclasses.replace(optim, schedule_blends=0)
    assert stretched(fixed, 4096) == fixed


def test_a_cosine_keeps_its_warmup_and_its_share_of_the_steps():
    optim = OptimConfig(
        steps=900, decay="cosine", milestones=[], warmup=50, anneal=1 / 3, schedule_blends=512
    )
    wide = stretched(optim, 1024)
    assert (wide.steps, wide.warmup, wide.anneal, wide.milestones) == (1800, 50, 1 / 3, [])
    assert stretched(optim, 320) == dataclasses.replace(optim, schedule_blends=0)


def test_tiny_counts_its_steps_for_the_demos_training_blends():
    makefile = (ROOT / "Makefile").read_text()
    (demo,) = re.findall(r"^DEMO_TRAIN_BLENDS \?= (\d+)$", makefile, re.MULTILINE)
    assert tiny().optim.schedule_blends == TINY_SCHEDULE_BLENDS == int(demo)


def test_resolve_counts_the_kinds_the_loader_keeps(tmp_path, caplog):
    shards = write_tiny_shards(tmp_path / "shards", n_shards=3, per_shard=4)  # kinds alternate
    assert blend_counts(shards) == {"transparent": 6, "occlusion": 6}
    assert blend_counts(str(shards / "shard-00000{0,1}.tar")) == {"transparent": 4, "occlusion": 4}
    base = ["optim.schedule_blends=4", "optim.steps=10", "optim.milestones=6"]
    both = apply_overrides(tiny(), [f"data.shards={shards}", *base])
    one = apply_overrides(both, ["data.blend=occlusion"])
    with caplog.at_level(logging.INFO, logger="trainer.schedule"):
        resolved = resolve_schedule(both)
    assert (resolved.optim.steps, resolved.optim.milestones) == (30, [18])  # 12 blends of 4
    assert "12 training blends, so 30 steps (milestones [18]) for 10" in caplog.text
    assert resolved.optim.schedule_blends == 0 and resolve_schedule(resolved) == resolved
    assert (resolve_schedule(one).optim.steps, resolve_schedule(one).optim.milestones) == (15, [9])
    assert resolve_schedule(both, blends=0).optim.steps == 10  # e.g. injected batches


def test_resolve_keeps_the_schedule_when_the_blends_cannot_be_counted(tmp_path, caplog):
    cfg = apply_overrides(tiny(), [f"data.shards={tmp_path / 'none-*.tar'}"])
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet")
    broken = apply_overrides(tiny(), [f"data.shards={tmp_path}"])
    with caplog.at_level(logging.WARNING, logger="trainer.schedule"):
        assert resolve_schedule(cfg).optim.steps == tiny().optim.steps
        assert resolve_schedule(broken).optim.steps == tiny().optim.steps
    assert "unreadable manifest" in caplog.text and "training blends not counted" in caplog.text
