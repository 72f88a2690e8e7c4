"""Losses: the reconstruction loss l, the permutation invariant loss (eq. 4), control (eq. 5, 6)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.testing import assert_close

from trainer import device_constants
from trainer.losses import (
    PITLoss,
    deterministic_loss,
    gather_assigned,
    pairwise_loss,
    pit_from_cost,
    reconstruction,
    regression_loss,
    regression_loss_from_losses,
    resolve_method,
    video_loss,
)

torch.set_num_threads(1)


def _video(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _scalar(x: float) -> torch.Tensor:
    return torch.tensor([x])


# --- video_loss ------------------------------------------------------------------------------


def test_constant_frames_give_half_the_offset():
    u = torch.full((1, 3, 2, 4, 4), 0.5)
    v = torch.full((1, 3, 2, 4, 4), 0.25)
    # L1 mean 0.25 per frame, no gradient: 1/(2T) * T * 0.25.
    assert_close(video_loss(u, v), _scalar(0.125))


def test_ramp_in_x_and_y_gives_known_gradient_term():
    ramp = torch.arange(5, dtype=torch.float32) * 0.125  # 0 .. 0.5, mean 0.25, step 0.125
    u_x = ramp.expand(1, 3, 2, 4, 5).clone()
    u_y = ramp.view(5, 1).expand(1, 3, 2, 5, 4).clone()
    # 0.5 * (mean|D| + mean|dx D| + mean|dy D|) = 0.5 * (0.25 + 0.125 + 0)
    assert_close(video_loss(u_x, torch.zeros_like(u_x)), _scalar(0.1875))
    assert_close(video_loss(u_y, torch.zeros_like(u_y)), _scalar(0.1875))


def test_impulse_checks_per_direction_means():
    u = torch.zeros(1, 3, 1, 3, 3)
    u[0, 1, 0, 1, 1] = 1.0  # one pixel of one channel
    # mean|D| = 1/27; dx has 3*3*2 = 18 entries, two of them +-1 -> 1/9; dy likewise.
    assert_close(video_loss(u, torch.zeros_like(u)), _scalar(0.5 * (1 / 27 + 2 / 9)))


def test_frames_are_averaged_with_one_over_2t():
    u = torch.zeros(1, 3, 2, 4, 4)
    u[:, :, 1] = 0.5  # frame 0 identical, frame 1 off by 0.5
    assert_close(video_loss(u, torch.zeros_like(u)), _scalar(0.5 / 4))


def test_zero_for_identical_symmetric_and_per_sample():
    u, v = _video(3, 3, 2, 6, 5, seed=1), _video(3, 3, 2, 6, 5, seed=2)
    assert torch.equal(video_loss(u, u), torch.zeros(3))
    assert_close(video_loss(u, v), video_loss(v, u))
    assert (video_loss(u, v) > 0).all()
    singles = torch.cat([video_loss(u[b : b + 1], v[b : b + 1]) for b in range(3)])
    assert_close(video_loss(u, v), singles)


def test_video_loss_rejects_single_pixel_rows():
    with pytest.raises(ValueError, match="H >= 2 and W >= 2"):
        video_loss(torch.zeros(1, 3, 2, 1, 4), torch.zeros(1, 3, 2, 1, 4))


def test_pairwise_loss_matches_a_loop():
    outputs, targets = _video(2, 4, 3, 2, 4, 4, seed=3), _video(2, 2, 3, 2, 4, 4, seed=4)
    cost = pairwise_loss(outputs, targets)
    assert cost.shape == (2, 4, 2)
    for i, j in itertools.product(range(4), range(2)):
        assert_close(cost[:, i, j], video_loss(outputs[:, i], targets[:, j]))


def _formula_video_loss(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """l(U, V) through plain autograd: the implementation before ``_VideoLoss`` (saved D)."""
    d = u - v
    if d.dtype in (torch.float16, torch.bfloat16):
        d = d.float()
    dims = (-4, -3, -2, -1)
    l1 = d.abs().mean(dim=dims)
    grad_x = (d[..., :, 1:] - d[..., :, :-1]).abs().mean(dim=dims)
    grad_y = (d[..., 1:, :] - d[..., :-1, :]).abs().mean(dim=dims)
    return 0.5 * (l1 + grad_x + grad_y)


def _pairwise_and_grads(loss_fn, outputs, targets, weights):
    outputs = outputs.detach().requires_grad_(True)
    targets = targets.detach().requires_grad_(True)
    cost = loss_fn(outputs.unsqueeze(2), targets.unsqueeze(1))  # (B, n, k)
    grads = torch.autograd.grad((cost * weights).sum(), (outputs, targets))
    return cost, grads


DTYPES = {
    "fp32": (torch.float32, torch.float32),
    "bf16": (torch.bfloat16, torch.bfloat16),
    "bf16-outputs": (torch.bfloat16, torch.float32),  # bf16 training: outputs bf16, targets fp32
}


# None: the whole clip in one chunk; else two frames of (B, n, k, C, H, W) = (2, n, 2, 3, 7, 9)
@pytest.mark.parametrize("chunk_elements", [None, 2 * (2 * 2 * 3 * 7 * 9)])
@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("dtypes", list(DTYPES))
def test_pairwise_loss_values_and_gradients_equal_the_formula(
    dtypes, n, chunk_elements, monkeypatch
):
    if chunk_elements is not None:  # frames 0-1, 2-3 and 4
        monkeypatch.setattr(reconstruction, "CHUNK_ELEMENTS", n * chunk_elements)
        assert len(reconstruction._frame_chunks(torch.Size((2, n, 2, 3, 5, 7, 9)))) == 3
    out_dtype, target_dtype = DTYPES[dtypes]
    outputs = _video(2, n, 3, 5, 7, 9, seed=20).to(out_dtype)  # odd T, H, W
    targets = _video(2, 2, 3, 5, 7, 9, seed=21).to(target_dtype)
    outputs[:, 0] = targets[:, 1].to(out_dtype)  # D == 0 somewhere: sign(0) = 0 in both
    weights = _video(2, n, 2, seed=22)  # a different upstream gradient per pair
    cost, grads = _pairwise_and_grads(video_loss, outputs, targets, weights)
    expected_cost, expected_grads = _pairwise_and_grads(
        _formula_video_loss, outputs, targets, weights
    )
    assert cost.dtype == expected_cost.dtype == torch.float32
    assert_close(cost, expected_cost)
    assert_close(cost, pairwise_loss(outputs, targets))
    for grad, expected in zip(grads, expected_grads, strict=True):
        assert grad.dtype == expected.dtype and grad.shape == expected.shape
        assert_close(grad, expected)


def test_pairwise_loss_saves_only_its_inputs():
    outputs = _video(2, 4, 3, 4, 6, 6, seed=23).to(torch.bfloat16).requires_grad_(True)
    targets = _video(2, 2, 3, 4, 6, 6, seed=24)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pairwise_loss(outputs, targets)
    assert sum(saved.values()) == outputs.nbytes + targets.nbytes
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        saved.clear()
        _formula_video_loss(outputs.unsqueeze(2), targets.unsqueeze(1))
    assert sum(saved.values()) > 5 * (outputs.nbytes + targets.nbytes)  # D, dx D, dy D in fp32


def test_pairwise_loss_rejects_mismatched_videos():
    with pytest.raises(ValueError, match="shapes differ"):
        pairwise_loss(torch.zeros(1, 2, 3, 2, 4, 4), torch.zeros(1, 2, 3, 2, 4, 5))


# --- permutation invariant loss --------------------------------------------------------------


def _eq4_reference(outputs: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Brute force of equation 4: min over ordered (i, j), i != j, of l(V1, O_i) + l(V2, O_j)."""
    n = outputs.shape[1]
    per_sample = []
    for b in range(outputs.shape[0]):
        candidates = [
            video_loss(v1[b], outputs[b, i]) + video_loss(v2[b], outputs[b, j])
            for i in range(n)
            for j in range(n)
            if i != j
        ]
        per_sample.append(min(candidates))
    return torch.stack(per_sample).mean()


@pytest.mark.parametrize("method", ["exact", "hungarian"])
def test_pil_matches_equation_4_brute_force(method):
    outputs = _video(3, 4, 3, 2, 4, 4, seed=5)
    v1, v2 = _video(3, 3, 2, 4, 4, seed=6), _video(3, 3, 2, 4, 4, seed=7)
    loss, _ = PITLoss(method=method)(outputs, torch.stack([v1, v2], dim=1))
    assert_close(loss, _eq4_reference(outputs, v1, v2))


@pytest.mark.parametrize("method", ["exact", "hungarian"])
def test_pil_invariant_to_every_output_permutation(method):
    targets = _video(3, 2, 3, 2, 4, 4, seed=8)
    # Outputs near distinct targets so that the best assignment is unique and non-trivial.
    outputs = _video(3, 4, 3, 2, 4, 4, seed=9)
    outputs[:, 2] = targets[:, 0] + 0.05 * outputs[:, 2]
    outputs[:, 0] = targets[:, 1] + 0.05 * outputs[:, 0]
    pit = PITLoss(method=method)
    loss, assignment = pit(outputs, targets)
    assert assignment.tolist() == [[2, 0]] * 3
    for perm in itertools.permutations(range(4)):
        sigma = torch.tensor(perm)
        permuted_loss, permuted_assignment = pit(outputs[:, sigma], targets)
        assert torch.equal(permuted_loss, loss)
        # permuted output i is original output sigma[i]
        assert torch.equal(sigma[permuted_assignment], assignment)


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("k", [2, 3])
def test_exact_equals_hungarian_on_random_costs(n, k):
    cost = _video(16, n, k, seed=10 * n + k)
    exact_losses, exact_assignment = pit_from_cost(cost, "exact")
    hungarian_losses, hungarian_assignment = pit_from_cost(cost, "hungarian")
    assert_close(exact_losses, hungarian_losses)
    assert torch.equal(exact_assignment, hungarian_assignment)
    for row in exact_assignment.tolist():
        assert len(set(row)) == k  # injective


def test_exact_tie_break_is_first_permutation():
    losses, assignment = pit_from_cost(torch.ones(1, 3, 2), "exact")
    assert_close(losses, _scalar(2.0))
    assert assignment.tolist() == [[0, 1]]


def test_exact_search_builds_its_permutations_once_per_device(monkeypatch):
    monkeypatch.setattr(device_constants, "_CACHE", {})
    cost = _video(2, 4, 2, seed=25).to("meta")  # meta stands for CUDA: a copy per call before
    pit_from_cost(cost, "exact")
    made = []
    tensor = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or tensor(*a, **k))
    losses, assignment = pit_from_cost(cost, "exact")
    assert made == [] and assignment.shape == (2, 2) and assignment.device.type == "meta"
    pit_from_cost(_video(2, 3, 2, seed=26), "exact")  # another n, on the CPU: a new table
    assert len(made) == 1


def test_auto_method_and_errors():
    assert resolve_method("auto", 4, 2) == "exact"
    assert resolve_method("auto", 10, 5) == "hungarian"  # 30240 permutations
    with pytest.raises(ValueError, match="n >= k"):
        resolve_method("exact", 1, 2)
    with pytest.raises(ValueError, match="unknown PIT method"):
        PITLoss(method="greedy")
    with pytest.raises(ValueError, match="NaN or inf"):
        pit_from_cost(torch.full((1, 3, 2), float("nan")), "hungarian")


@pytest.mark.parametrize("method", ["exact", "hungarian"])
def test_pil_gradient_flows_to_matched_outputs_only(method):
    targets = _video(2, 2, 3, 2, 4, 4, seed=11)
    outputs = _video(2, 4, 3, 2, 4, 4, seed=12).requires_grad_(True)
    result = PITLoss(method=method).match(outputs, targets)
    result.losses.mean().backward()
    grad_norm = outputs.grad.abs().sum(dim=(2, 3, 4, 5))  # (B, n)
    for b, row in enumerate(result.assignment.tolist()):
        for i in range(4):
            assert (grad_norm[b, i] > 0) == (i in row)


def test_gather_assigned_reorders_outputs():
    outputs = (
        torch.arange(2 * 3, dtype=torch.float32).view(2, 3, 1, 1, 1, 1).expand(2, 3, 1, 1, 2, 2)
    )
    picked = gather_assigned(outputs, torch.tensor([[2, 0], [1, 2]]))
    assert picked.shape == (2, 2, 1, 1, 2, 2)
    assert picked[:, :, 0, 0, 0, 0].tolist() == [[2.0, 0.0], [4.0, 5.0]]


# --- control losses --------------------------------------------------------------------------


def test_deterministic_loss_is_equation_5():
    v1, v2 = _video(2, 3, 2, 4, 4, seed=13), _video(2, 3, 2, 4, 4, seed=14)
    assert deterministic_loss(torch.stack([v1, v2], dim=1), v1, v2).item() == 0.0
    swapped = deterministic_loss(torch.stack([v2, v1], dim=1), v1, v2)
    assert_close(swapped, 2 * video_loss(v1, v2).mean())
    with pytest.raises(ValueError, match="deterministic control needs"):
        deterministic_loss(torch.stack([v1, v2, v1, v2], dim=1), v1, v2)


def test_regression_loss_value_and_stop_gradient():
    v1 = torch.zeros(2, 3, 1, 2, 2)
    outputs = torch.zeros(2, 3, 3, 1, 2, 2)
    outputs[:, 1] = 0.5  # l = 0.25
    outputs[:, 2] = 1.0  # l = 0.5
    outputs.requires_grad_(True)
    scores = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.25, 1.0]], requires_grad=True)
    loss = regression_loss(scores, outputs, v1)
    # per sample: |0.5-0| + |0-0.25| + |0.5-0.5| = 0.75 and 0 + 0 + 0.5 = 0.5
    assert_close(loss, torch.tensor(0.625))
    loss.backward()
    assert outputs.grad is None  # sg: nothing reaches the outputs
    expected = torch.sign(scores.detach() - torch.tensor([[0.0, 0.25, 0.5]])) / 2
    assert torch.equal(scores.grad, expected)


def test_regression_loss_from_losses_detaches_targets():
    losses_to_v1 = torch.tensor([[0.1, 0.4]], requires_grad=True)
    scores = torch.tensor([[0.3, 0.2]], requires_grad=True)
    loss = regression_loss_from_losses(scores, losses_to_v1)
    loss.backward()
    assert losses_to_v1.grad is None
    assert torch.equal(scores.grad, torch.tensor([[1.0, -1.0]]))
