"""Video reconstruction loss l(U, V) of the paper (section 4, "Implementation details").

The paper defines, for videos U and V with T frames,

    l(U, V) = 1/(2T) * sum_t ( ||U_t - V_t||_1 + ||grad(U_t) - grad(V_t)||_1 )

with ||.||_1 the L1 norm and grad the spatial gradient operator. The paper is silent on two
points; what we chose:

* **Normalisation.** Each norm is a per-element MEAN over the frame (channels x height x width),
  not a sum. With sums the loss would scale with the resolution (128x128x3 = 49k elements per
  frame) and the paper's Table 1 values (identity baseline 0.364, models 0.12-0.26) could not
  be losses of videos in a bounded range. With means, l is in the units of a pixel value.
* **Spatial gradient.** Forward differences dx = D[..., :, 1:] - D[..., :, :-1] and
  dy = D[..., 1:, :] - D[..., :-1, :] of each frame, no padding. The gradient term is
  mean|dx(U_t) - dx(V_t)| + mean|dy(U_t) - dy(V_t)|, each mean over its own number of elements
  (C*H*(W-1) and C*(H-1)*W), i.e. the anisotropic total-variation style combination
  ||dx||_1 + ||dy||_1 rather than the isotropic sqrt(dx^2 + dy^2).

Since every frame has the same number of elements, 1/(2T) sum_t of per-frame means equals half
the mean over the whole clip, so with D = U - V (the gradient is linear, grad U - grad V = grad D):

    l(U, V) = 0.5 * ( mean|D| + mean|dx D| + mean|dy D| ).

Videos are float tensors (..., C, T, H, W); the paper's videos are in [0, 1] here. The loss is
symmetric, zero iff U == V, and 1-homogeneous: l(aU, aV) = |a| l(U, V), so for a transparent
blend V = (V1 + V2)/2 the identity baseline l(V1, V) + l(V2, V) equals l(V1, V2).

**Memory.** l is one autograd Function (``_VideoLoss``) that saves only its two inputs and
recomputes D and its gradients in the backward pass, a few frames at a time (``CHUNK_ELEMENTS``).
The plain autograd graph of the formula saved three float32 copies of D (|D|, dx D, dy D), which
for ``pairwise_loss`` at paper size (n = 4 outputs, k = 2 targets) are three (n, k, 3, 64, 128,
128) float32 tensors: 287 MiB a sample, more than any block of the network; the Function saves
the outputs and the targets (48 MiB in bf16 training). The values and gradients are those of the
formula (tests/test_losses.py checks them against it), including where the inputs are bf16: D is
taken in the inputs' promoted dtype before it is widened to float32, and its gradient is rounded
back to that dtype before it is summed over broadcast dimensions, as autograd did.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_VIDEO_DIMS = (-4, -3, -2, -1)  # (C, T, H, W)
_HALF = (torch.float16, torch.bfloat16)
# Elements of D handled at once: the Function's temporaries are three float32 tensors of at most
# this size (16 MiB each), or of one frame when a frame is bigger (one frame of a batch of 128
# clips broadcast against each other, n = 4 by k = 2, is 50M elements).
CHUNK_ELEMENTS = 1 << 22


def _frame_chunks(shape: torch.Size) -> list[slice]:
    """Slices of the frame dim (-3) so that each chunk of a tensor ``shape`` has at most
    ``CHUNK_ELEMENTS`` elements (at least one frame)."""
    frames = shape[-3]
    per_frame = max(1, math.prod(shape) // max(frames, 1))
    step = max(1, CHUNK_ELEMENTS // per_frame)
    return [slice(t, min(t + step, frames)) for t in range(0, frames, step)]


def _difference(u: Tensor, v: Tensor, frames: slice) -> Tensor:
    """D = U - V on ``frames``, in the promoted dtype, widened to float32 if half precision."""
    d = u[..., frames, :, :] - v[..., frames, :, :]  # (..., C, t, H, W), broadcast
    return d.float() if d.dtype in _HALF else d


def _counts(shape: torch.Size) -> tuple[int, int, int]:
    """Elements per video of D, dx D and dy D."""
    c, t, h, w = shape[-4:]
    return c * t * h * w, c * t * h * (w - 1), c * t * (h - 1) * w


def _l1_sums(d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """sum|D|, sum|dx D|, sum|dy D| over the last four dims of D (..., C, t, H, W)."""

    def l1(x: Tensor) -> Tensor:
        return torch.linalg.vector_norm(x, 1, dim=_VIDEO_DIMS)

    return l1(d), l1(d[..., :, 1:] - d[..., :, :-1]), l1(d[..., 1:, :] - d[..., :-1, :])


def _grad_difference(d: Tensor, grad: Tensor, counts: tuple[int, int, int]) -> Tensor:
    """dl/dD for D (..., C, t, H, W) and the incoming gradient of l (...), computed in D's
    storage (D is not needed afterwards): three D-sized tensors at most."""
    half = (grad * 0.5)[..., None, None, None, None]  # (..., 1, 1, 1, 1)
    n0, nx, ny = counts
    sx = (d[..., :, 1:] - d[..., :, :-1]).sign_().mul_(half / nx)
    sy = (d[..., 1:, :] - d[..., :-1, :]).sign_().mul_(half / ny)
    gd = d.sign_().mul_(half / n0)
    gd[..., :, 1:] += sx
    gd[..., :, :-1] -= sx
    gd[..., 1:, :] += sy
    gd[..., :-1, :] -= sy
    return gd


class _VideoLoss(torch.autograd.Function):
    """l(U, V) saving only U and V; D is recomputed chunk by chunk in the backward pass."""

    @staticmethod
    def forward(ctx, u: Tensor, v: Tensor) -> Tensor:  # type: ignore[override]
        shape = torch.broadcast_shapes(u.shape, v.shape)
        sums = [0.0, 0.0, 0.0]
        for frames in _frame_chunks(shape):
            chunk = _l1_sums(_difference(u, v, frames))  # 3 x (...)
            sums = [total + part for total, part in zip(sums, chunk, strict=True)]
        n0, nx, ny = _counts(shape)
        ctx.save_for_backward(u, v)
        return 0.5 * (sums[0] / n0 + sums[1] / nx + sums[2] / ny)  # (...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        u, v = ctx.saved_tensors
        need_u, need_v = ctx.needs_input_grad[:2]
        shape = torch.broadcast_shapes(u.shape, v.shape)
        counts = _counts(shape)
        promoted = torch.promote_types(u.dtype, v.dtype)  # D's dtype before widening
        grad_u = torch.empty_like(u) if need_u else None
        grad_v = torch.empty_like(v) if need_v else None
        for frames in _frame_chunks(shape):
            # the gradient of D in D's own dtype, as autograd rounds it before the broadcast sums
            gd = _grad_difference(_difference(u, v, frames), grad, counts).to(promoted)
            if grad_u is not None:
                part = gd.sum_to_size(u[..., frames, :, :].shape)
                grad_u[..., frames, :, :] = part
            if grad_v is not None:
                part = gd.sum_to_size(v[..., frames, :, :].shape)
                grad_v[..., frames, :, :] = part.neg_()
        return grad_u, grad_v


def video_loss(u: Tensor, v: Tensor) -> Tensor:
    """l(U, V) over the last four dims (C, T, H, W); leading dims broadcast.

    u, v: (..., C, T, H, W), e.g. (B, 3, T, H, W) -> (B,). Half-precision inputs are promoted
    to float32 before reducing so that means over millions of elements stay accurate.
    """
    if u.dim() < 4 or v.dim() < 4:
        raise ValueError(
            f"video_loss expects (..., C, T, H, W) tensors, got {tuple(u.shape)}, {tuple(v.shape)}"
        )
    if u.shape[-4:] != v.shape[-4:]:
        raise ValueError(f"video_loss: video shapes differ: {tuple(u.shape)}, {tuple(v.shape)}")
    if u.shape[-2] < 2 or u.shape[-1] < 2:
        raise ValueError(
            f"video_loss needs H >= 2 and W >= 2 for the spatial gradient, got {tuple(u.shape)}"
        )
    return _VideoLoss.apply(u, v)


def pairwise_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Matrix of l(O_i, V_j): outputs (B, n, C, T, H, W), targets (B, k, C, T, H, W) -> (B, n, k).

    One ``video_loss`` over the broadcast (B, n, k, C, T, H, W) difference, which is never
    stored: it is formed a few frames at a time, and the backward pass saves only the inputs.
    """
    if outputs.dim() != 6 or targets.dim() != 6:
        raise ValueError(
            f"pairwise_loss expects (B, n, C, T, H, W) and (B, k, C, T, H, W), "
            f"got {tuple(outputs.shape)} and {tuple(targets.shape)}"
        )
    if outputs.shape[0] != targets.shape[0] or outputs.shape[2:] != targets.shape[2:]:
        raise ValueError(
            f"pairwise_loss: batch or video shapes differ: "
            f"{tuple(outputs.shape)}, {tuple(targets.shape)}"
        )
    return video_loss(outputs.unsqueeze(2), targets.unsqueeze(1))  # (B, n, k)
