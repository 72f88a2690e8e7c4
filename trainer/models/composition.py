"""Layer generator head and the composition module (Sec. 3.1, "Imposing compositionality").

Paper: the layer generator outputs m layers L_j (T x H x W x 3) and n x m composing
coefficients beta_ij; the composition module forms the outputs O_i = sum_j beta_ij L_j (eq. 2).

Our choices:

* Layers go through a sigmoid, so L_j is in [0, 1]; beta goes through a softmax over the m
  layers (for each output i), so every O_i is a convex combination of layers and lies in [0, 1]
  with no clamp, and eq. 2 holds exactly on the returned tensors (``DecompositionNet`` maps
  layers and outputs affinely onto the run's pixel range, which keeps both).
* beta is per pixel by default (``beta_mode="pixel"``: beta (B, n, m, T, H, W), predicted by the
  layer generator's last features next to the layers): the poster writes beta_ij ⊙ L_j, Fig. 6
  visualises the beta_ij L_j terms as images, and a per-pixel convex combination can cut an
  occluded region out of one layer and fill it from another. ``beta_mode="scalar"`` follows the
  paper's "n x m composing coefficients" literally: beta (B, n, m), one number per output and
  layer for the whole clip, regressed from the globally pooled bottleneck by a small MLP.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.models.decoder import init_correction, input_logit


def compose(layers: Tensor, beta: Tensor) -> Tensor:
    """Equation 2: O_i = sum_j beta_ij L_j.

    layers (B, m, 3, T, H, W); beta (B, n, m) or (B, n, m, T, H, W) -> outputs (B, n, 3, T, H, W).
    On CUDA as m broadcast multiply-adds (``weighted_sum``), elsewhere as one einsum.
    """
    if layers.is_cuda:
        return weighted_sum(layers, beta)
    if beta.dim() == 3:
        return torch.einsum("bnm,bmcthw->bncthw", beta, layers)
    return torch.einsum("bnmthw,bmcthw->bncthw", beta, layers)


def weighted_sum(layers: Tensor, beta: Tensor) -> Tensor:
    """``compose`` as m broadcast multiply-adds, what CUDA runs.

    There the per-pixel einsum becomes one (n x m) by (m x 3) bf16 matrix product per pixel, B x T
    x H x W of them (16.8M at a micro-batch of 16 at paper size), which cuBLAS hands to a batched
    fallback kernel in launches of 65535: 200 of the ~450 ms of kernel time of a paper C2 step
    on an H200 (``make bench-gpu``'s profile, BENCHMARKS.md). This reads each layer once per
    output and saves only views of its inputs for the backward pass. On the CPU the einsum is
    about twice as fast at tiny sizes.
    """
    if beta.dim() == 3:
        beta = beta[..., None, None, None]  # (B, n, m, 1, 1, 1)
    out = beta[:, :, 0, None] * layers[:, None, 0]  # (B, n, 3, T, H, W)
    for j in range(1, layers.shape[1]):
        out = out + beta[:, :, j, None] * layers[:, None, j]
    return out


class LayerHead(nn.Module):
    """Decoder features -> m sigmoid layers and, in pixel mode, per-pixel beta logits."""

    def __init__(
        self, in_channels: int, n_layers: int, n_outputs: int, pixel_beta: bool,
        input_skip: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.m, self.n, self.input_skip = n_layers, n_outputs, input_skip
        self.layers = nn.Conv3d(in_channels, 3 * n_layers, 3, padding=1)
        if input_skip:  # layers start near copies of the input (see decoder.VideoHead)
            init_correction(self.layers)
        self.beta = (
            nn.Conv3d(in_channels, n_outputs * n_layers, 3, padding=1) if pixel_beta else None
        )

    def forward(
        self, x: Tensor, video: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:  # x: (B, C, T, H, W), video: (B, 3, T, H, W)
        size = x.shape[2:]
        layers = self.layers(x).reshape(x.shape[0], self.m, 3, *size)
        if self.input_skip:
            layers = layers + input_logit(video)
        layers = torch.sigmoid(layers)
        if self.beta is None:
            return layers, None  # (B, m, 3, T, H, W)
        logits = self.beta(x).reshape(x.shape[0], self.n, self.m, *size)  # (B, n, m, T, H, W)
        return layers, torch.softmax(logits, dim=2)


class ScalarBetaHead(nn.Module):
    """Bottleneck (B, C, T, H, W) -> per-clip beta (B, n, m), softmax over the m layers."""

    def __init__(self, in_channels: int, n_outputs: int, n_layers: int, hidden: int) -> None:
        super().__init__()
        self.n, self.m = n_outputs, n_layers
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_outputs * n_layers),
        )

    def forward(self, bottleneck: Tensor) -> Tensor:
        pooled = bottleneck.mean(dim=(2, 3, 4))  # (B, C)
        logits = self.mlp(pooled).reshape(-1, self.n, self.m)  # (B, n, m)
        return torch.softmax(logits, dim=2)


class Composition(nn.Module):
    """The composition module of Fig. 2b: a parameter-free wrapper of ``compose``."""

    def forward(self, layers: Tensor, beta: Tensor) -> Tensor:
        return compose(layers, beta)  # (B, n, 3, T, H, W)
