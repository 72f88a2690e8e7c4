"""Permutation invariant loss (paper equation 4), as a wrapper over a pairwise loss.

Equation 4: L_pil({V1, V2}, O) = min over ordered pairs (i, j), i != j, of l(V1, O_i) + l(V2, O_j).
We generalise to k targets and n >= k outputs: the minimum, over injective assignments
a: {targets} -> {outputs}, of sum_j l(V_j, O_a(j)). The wrapper takes any pairwise loss that maps
outputs (B, n, ...) and targets (B, k, ...) to a cost matrix (B, n, k) and returns the loss
together with the best assignment, so that metrics and figures can reuse the matching
(the pattern of asteroid's PITLossWrapper with a pairwise matrix; no code taken from it).

Search methods:
* ``"exact"``: enumerate all n!/(n-k)! ordered k-permutations of the outputs
  (itertools.permutations) and take the argmin of the summed costs, batched on the device.
  On ties the first permutation in itertools order wins.
* ``"hungarian"``: scipy.optimize.linear_sum_assignment on the detached (B, n, k) cost, one call
  per sample on the CPU (a rectangular problem: every target gets a distinct output).
* ``"auto"``: exact when n!/(n-k)! <= EXACT_MAX_PERMUTATIONS, hungarian otherwise.

Either way the loss is gathered from the differentiable cost matrix, so gradients flow to the
matched outputs (and only to them); the search itself is not differentiated. The returned loss
is the mean over the batch of the per-sample sum over targets (equation 4 is a sum).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from trainer.device_constants import device_constant
from trainer.losses.reconstruction import pairwise_loss

Method = Literal["exact", "hungarian", "auto"]
PairwiseLoss = Callable[[Tensor, Tensor], Tensor]

EXACT_MAX_PERMUTATIONS = 720  # e.g. n = 6, k = 6 or n = 10, k = 3


@dataclass(frozen=True)
class PITResult:
    """Per-sample outcome of the permutation invariant matching.

    losses: (B,) summed cost of the best assignment (differentiable).
    assignment: (B, k) long, assignment[b, j] = index of the output matched to target j.
    cost: (B, n, k) the pairwise cost matrix the matching was computed on.
    """

    losses: Tensor
    assignment: Tensor
    cost: Tensor


def resolve_method(method: str, n: int, k: int) -> Literal["exact", "hungarian"]:
    """The search method actually used for n outputs and k targets."""
    if n < k:
        raise ValueError(f"permutation invariant loss needs n >= k outputs, got n={n}, k={k}")
    if method == "auto":
        return "exact" if math.perm(n, k) <= EXACT_MAX_PERMUTATIONS else "hungarian"
    if method not in ("exact", "hungarian"):
        raise ValueError(f"unknown PIT method {method!r}; expected 'exact', 'hungarian' or 'auto'")
    return method  # type: ignore[return-value]


def _permutation_table(n: int, k: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Every ordered k-permutation of n outputs (P, k), and the target indices (k,)."""
    perms = list(itertools.permutations(range(n), k))
    return torch.tensor(perms, dtype=torch.long, device=device), torch.arange(k, device=device)


def _exact(cost: Tensor) -> tuple[Tensor, Tensor]:
    _, n, k = cost.shape
    perms, targets = device_constant(  # made once per device: no copy to it each step
        ("pit", n, k), cost, lambda device: _permutation_table(n, k, device)
    )  # (P, k), (k,)
    per_perm = cost[:, perms, targets].sum(dim=-1)  # (B, P)
    best = per_perm.detach().argmin(dim=1)  # (B,)
    losses = per_perm.gather(1, best.unsqueeze(1)).squeeze(1)  # (B,)
    return losses, perms[best]


def _hungarian(cost: Tensor) -> tuple[Tensor, Tensor]:
    batch, _, k = cost.shape
    detached = cost.detach()
    if not bool(torch.isfinite(detached).all()):
        raise ValueError("PIT hungarian matching got a cost matrix with NaN or inf entries")
    costs = detached.to(device="cpu", dtype=torch.float64).numpy()
    assignment = np.empty((batch, k), dtype=np.int64)
    for b in range(batch):
        rows, cols = linear_sum_assignment(costs[b])  # one output row per target column
        assignment[b, cols] = rows
    index = torch.from_numpy(assignment).to(cost.device)  # (B, k)
    losses = cost.gather(1, index.unsqueeze(1)).squeeze(1).sum(dim=-1)  # (B,)
    return losses, index


def pit_from_cost(cost: Tensor, method: Method = "auto") -> tuple[Tensor, Tensor]:
    """Best injective assignment for a cost matrix (B, n, k) -> (losses (B,), assignment (B, k))."""
    if cost.dim() != 3:
        raise ValueError(f"PIT cost matrix must be (B, n, k), got {tuple(cost.shape)}")
    chosen = resolve_method(method, cost.shape[1], cost.shape[2])
    return _exact(cost) if chosen == "exact" else _hungarian(cost)


def gather_assigned(outputs: Tensor, assignment: Tensor) -> Tensor:
    """Outputs reordered to match the targets: (B, n, ...) and (B, k) -> (B, k, ...)."""
    index = assignment.view(*assignment.shape, *([1] * (outputs.dim() - 2)))
    return outputs.gather(1, index.expand(-1, -1, *outputs.shape[2:]))


class PITLoss(nn.Module):
    """Permutation invariant loss over a pairwise loss (equation 4, generalised to k targets)."""

    def __init__(self, pairwise: PairwiseLoss = pairwise_loss, method: Method = "auto") -> None:
        super().__init__()
        resolve_method(method, 1, 1)  # reject an unknown method at construction
        self.pairwise = pairwise
        self.method = method

    def match(self, outputs: Tensor, targets: Tensor) -> PITResult:
        """outputs (B, n, ...), targets (B, k, ...) -> PITResult with per-sample losses."""
        cost = self.pairwise(outputs, targets)  # (B, n, k)
        losses, assignment = pit_from_cost(cost, self.method)
        return PITResult(losses=losses, assignment=assignment, cost=cost)

    def forward(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """-> (loss: scalar mean over the batch, assignment: (B, k) long)."""
        result = self.match(outputs, targets)
        return result.losses.mean(), result.assignment
