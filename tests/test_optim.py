"""trainer.optim: the control regressor's own learning rate, and what it is for (paper SGD)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from bench import gpu
from trainer import step, train_state
from trainer.config import CONTROL_LR_SCALE, paper, tiny
from trainer.distributed import Dist
from trainer.models import build_model
from trainer.optim import lr_factor, make_optimizer, make_scheduler

torch.set_num_threads(1)
CPU = torch.device("cpu")
SIZES = dataclasses.replace(gpu.DRY, batch=4)  # width 1/16, 8x32x32 clips


def _model(cfg, name):
    return build_model(name, dataclasses.replace(cfg.model, width=0.0625))


def test_the_regressor_and_its_audio_net_get_their_own_learning_rate():
    cfg = paper()
    model = _model(cfg, "c3_internal")
    rest, control = make_optimizer(cfg.optim, model).param_groups
    expected = [*model.control.parameters(), *model.control_audio_net.parameters()]
    assert {id(p) for p in control["params"]} == {id(p) for p in expected}
    assert control["lr"] == cfg.optim.lr * CONTROL_LR_SCALE == 0.005 and rest["lr"] == 0.5
    assert len(rest["params"]) + len(expected) == len(list(model.parameters()))


def test_one_group_without_a_regressor_or_at_scale_one():
    assert len(make_optimizer(paper().optim, _model(paper(), "c2")).param_groups) == 1
    cfg = tiny()  # Adam at 5e-4: the regressor learns at the same rate (where tiny was tuned)
    assert len(make_optimizer(cfg.optim, _model(cfg, "c3_internal")).param_groups) == 1


def _reg_losses(scale: float, steps: int = 15) -> list[float]:
    """L_reg of paper C3 internal (SGD at 0.5) at width 1/16, the same synthetic batch each step."""
    cfg = gpu.bench_config("c3_internal", gpu.CHANNELS_LAST, SIZES, CPU)
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, control_lr_scale=scale))
    torch.manual_seed(0)
    state = train_state.build(cfg, CPU, False)
    stepper = step.make_stepper(cfg, state, Dist(0, 1, 0, CPU))
    batch = gpu._synthetic(cfg, SIZES, CPU, SIZES.batch)
    return [float(stepper.step(lambda: batch, 1)[2]["reg"]) for _ in range(steps)]


def test_at_the_papers_learning_rate_the_regressor_converges_only_when_slowed():
    slowed, full = _reg_losses(CONTROL_LR_SCALE), _reg_losses(1.0)
    assert slowed[-1] < slowed[0] / 4  # 6.09 -> 0.38
    assert full[-1] > 10 * full[0]  # 6.09 -> 706: the divergence first seen on an H200


def _lrs(optim, steps: int) -> list[float]:
    """The learning rate of each of the first ``steps`` optimiser steps."""
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(optim, model)
    scheduler = make_scheduler(optim, optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_the_papers_step_decay_is_torchs_multistep():
    optim = dataclasses.replace(tiny().optim, steps=6, milestones=[2, 4], gamma=0.5, lr=1.0)
    assert _lrs(optim, 6) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert [lr_factor(optim, s) for s in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_warmup_rises_linearly_then_the_cosine_falls_to_zero():
    optim = dataclasses.replace(
        tiny().optim, lr=1.0, steps=6, decay="cosine", milestones=[], warmup=2
    )
    # warm-up 1/2, 2/2; then cos over the 4 steps left: 1, (1 + cos(pi/4)) / 2, 1/2, ...
    c = math.cos(math.pi / 4)
    expected = [0.5, 1.0, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2]
    assert _lrs(optim, 6) == pytest.approx(expected, abs=1e-12)
    assert lr_factor(optim, 6) == lr_factor(optim, 60) == 0.0


def test_a_warmup_longer_than_the_run_only_rises():
    optim = dataclasses.replace(tiny().optim, lr=1.0, steps=3, milestones=[], warmup=4)
    assert _lrs(optim, 3) == [0.25, 0.5, 0.75]


def test_a_cosine_over_the_last_part_of_the_steps_keeps_lr_before_it():
    optim = dataclasses.replace(
        tiny().optim, lr=1.0, steps=7, decay="cosine", milestones=[], warmup=1, anneal=4 / 7
    )
    c = math.cos(math.pi / 4)
    expected = [1.0, 1.0, 1.0, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2]
    assert _lrs(optim, 7) == pytest.approx(expected, abs=1e-12)


def test_a_step_decay_with_warmup_keeps_its_milestones():
    optim = dataclasses.replace(tiny().optim, lr=1.0, steps=5, milestones=[3], warmup=2)
    assert _lrs(optim, 5) == [0.5, 1.0, 1.0, 0.1, 0.1]


def test_a_resumed_cosine_schedule_continues_where_it_stopped():
    optim = dataclasses.replace(tiny().optim, steps=10, decay="cosine", milestones=[], warmup=3)
    whole = _lrs(optim, 10)
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(optim, model)
    scheduler = make_scheduler(optim, optimizer)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    again = make_optimizer(optim, model)
    resumed = make_scheduler(optim, again)
    again.load_state_dict(optimizer.state_dict())
    resumed.load_state_dict(scheduler.state_dict())
    lrs = []
    for _ in range(6):
        lrs.append(again.param_groups[0]["lr"])
        again.step()
        resumed.step()
    assert lrs == whole[4:]


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"decay": "cosine"}, "must be empty with decay=cosine"),
        ({"decay": "cosine", "milestones": [], "anneal": 0.0}, "must be in"),
        ({"decay": "cosine", "milestones": [], "anneal": 1.5}, "must be in"),
        ({"anneal": 0.5}, "is for decay=cosine"),
        ({"warmup": -1}, "warmup"),
    ],
)
def test_a_schedule_that_cannot_be_followed_is_refused(keys, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(tiny().optim, **keys)
