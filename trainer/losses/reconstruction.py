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
"""

from __future__ import annotations

import torch
from torch import Tensor

_VIDEO_DIMS = (-4, -3, -2, -1)  # (C, T, H, W)


def video_loss(u: Tensor, v: Tensor) -> Tensor:
    """l(U, V) over the last four dims (C, T, H, W); leading dims broadcast.

    u, v: (..., C, T, H, W), e.g. (B, 3, T, H, W) -> (B,). Half-precision inputs are promoted
    to float32 before reducing so that means over millions of elements stay accurate.
    """
    if u.dim() < 4 or v.dim() < 4:
        raise ValueError(
            f"video_loss expects (..., C, T, H, W) tensors, got {tuple(u.shape)}, {tuple(v.shape)}"
        )
    if u.shape[-2] < 2 or u.shape[-1] < 2:
        raise ValueError(
            f"video_loss needs H >= 2 and W >= 2 for the spatial gradient, got {tuple(u.shape)}"
        )
    d = u - v  # (..., C, T, H, W), broadcast
    if d.dtype in (torch.float16, torch.bfloat16):
        d = d.float()
    l1 = d.abs().mean(dim=_VIDEO_DIMS)
    grad_x = (d[..., :, 1:] - d[..., :, :-1]).abs().mean(dim=_VIDEO_DIMS)
    grad_y = (d[..., 1:, :] - d[..., :-1, :]).abs().mean(dim=_VIDEO_DIMS)
    return 0.5 * (l1 + grad_x + grad_y)


def pairwise_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Matrix of l(O_i, V_j): outputs (B, n, C, T, H, W), targets (B, k, C, T, H, W) -> (B, n, k).

    Computed in one broadcast (B, n, k, C, T, H, W) difference, no Python loop: memory is
    n*k videos per sample, which is small for the paper's n = 4, k = 2.
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
