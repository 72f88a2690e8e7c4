"""The optimiser and its learning-rate schedule (paper section 4).

SGD with momentum and a step schedule: the learning rate is multiplied by ``gamma`` at each of
``milestones`` (the paper: 0.5, divided by 10 after 80k, 100k and 120k iterations). Adam, a cosine
decay and a linear warm-up are offered for small CPU runs (``trainer.config.tiny``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainer.config import OptimConfig
from trainer.models.network import DecompositionNet


def param_groups(cfg: OptimConfig, model: nn.Module) -> list[dict]:
    """The trainable parameters: one group, or two when ``cfg.control_lr_scale`` is not 1 and the
    model has a control regressor (its parameters, ``DecompositionNet.control_parameters``, at
    ``lr * control_lr_scale``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    nets = [m for m in model.modules() if isinstance(m, DecompositionNet)]
    control = {id(p) for net in nets for p in net.control_parameters() if p.requires_grad}
    if cfg.control_lr_scale == 1.0 or not control:
        return [{"params": params}]
    return [
        {"params": [p for p in params if id(p) not in control]},
        {"params": [p for p in params if id(p) in control], "lr": cfg.lr * cfg.control_lr_scale},
    ]


def make_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or Adam (small runs, see ``trainer.config.tiny``)."""
    params = param_groups(cfg, model)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(
    cfg: OptimConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule ``cfg.decay`` after ``cfg.warmup`` steps of warm-up, stepped once per
    optimiser step. The paper's (a step decay, no warm-up) is torch's ``MultiStepLR``, whose
    state the checkpoints of such runs hold."""
    if cfg.decay == "step" and not cfg.warmup:
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg, s))


def lr_factor(cfg: OptimConfig, step: int) -> float:
    """The learning rate at optimiser step ``step`` (0-based) over ``cfg.lr``."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.decay == "cosine":
        start = max(cfg.warmup, round(cfg.steps * (1 - cfg.anneal)))
        done = max(step - start, 0) / max(cfg.steps - start, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
    return cfg.gamma ** sum(step >= m for m in cfg.milestones)
