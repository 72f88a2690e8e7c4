"""Training losses: the reconstruction loss l, the permutation invariant wrapper, control losses."""

from trainer.losses.control import deterministic_loss, regression_loss, regression_loss_from_losses
from trainer.losses.pit import (
    EXACT_MAX_PERMUTATIONS,
    PITLoss,
    PITResult,
    gather_assigned,
    pit_from_cost,
    resolve_method,
)
from trainer.losses.reconstruction import pairwise_loss, video_loss

__all__ = [
    "EXACT_MAX_PERMUTATIONS",
    "PITLoss",
    "PITResult",
    "deterministic_loss",
    "gather_assigned",
    "pairwise_loss",
    "pit_from_cost",
    "regression_loss",
    "regression_loss_from_losses",
    "resolve_method",
    "video_loss",
]
