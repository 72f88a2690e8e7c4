"""Mask generator and the grouped channel gating of equation 1 (Sec. 3.1, "Encoder").

Paper: the encoder produces m spatio-temporal masks M in [0, 1]^(T x H x W x m), made to sum to
1 over the m masks by a softmax. The channels of the I3D feature F_l at level l are split into
m mutually exclusive groups F_l^c (so C_l must be a multiple of m) and group c is multiplied by
mask c downsampled to level l's size: F~_l^c = M_l^c * F_l^c (eq. 1).

Our choices where the paper is silent (its Appendix B figure is not in the text):

* The mask generator is a second, narrower ``UNetDecoder`` over the *ungated* I3D features
  followed by a 3x3x3 convolution to m logits and a softmax over them. ``stages`` (3 to 5) sets
  its output resolution: 5 = full (T, H, W), 4 = (T, H/2, W/2), 3 = Conv3d_2c's (T/2, H/4, W/4).
* Gated levels: by default all four levels the decoder reads (Conv3d_2c, Mixed_3c and Mixed_4f
  skips and the Mixed_5c bottleneck), so every feature reaching the layer generator is gated;
  ``ModelConfig.mask_levels`` selects a subset.
* Downsampling M to a level is average pooling (``adaptive_avg_pool3d`` over exact multiples),
  which keeps the masks summing to 1. Group c is channels [c*d, (c+1)*d).

Not in the paper, off by default: ``ModelConfig.mask_rescale`` gates with m * M_l instead, so a
uniform mask (1/m everywhere, where a fresh mask generator starts) passes features unchanged
rather than dividing every gated level by m. On the tiny demo it took C2's occlusion loss below
C2 w/o masking's and narrowed, but did not close, the gap on transparent blends (README, "What
C2's masks cost at this scale").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.models.decoder import UNetDecoder


class MaskGenerator(nn.Module):
    """I3D features -> m softmax masks (B, m, T', H', W') summing to 1 over m."""

    def __init__(self, channels: dict[str, int], widths: tuple[int, ...], n_masks: int) -> None:
        super().__init__()
        self.decoder = UNetDecoder(channels["Mixed_5c"], channels, widths)
        self.logits = nn.Conv3d(self.decoder.out_channels, n_masks, 3, padding=1)

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        x = self.decoder(features["Mixed_5c"], features)  # (B, w, T', H', W')
        return torch.softmax(self.logits(x), dim=1)  # (B, m, T', H', W')


def downsample_masks(masks: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Average-pool masks (B, m, T', H', W') to (B, m, *size); each size must divide T', H', W'."""
    if any(s_in % s for s_in, s in zip(masks.shape[2:], size, strict=True)):
        raise ValueError(f"mask size {tuple(masks.shape[2:])} is not a multiple of {size}")
    return F.adaptive_avg_pool3d(masks, size)


class _GroupGate(torch.autograd.Function):
    """groups (B, m, d, ...) times mask (B, m, 1, ...) cast to the groups' dtype.

    Computes what multiplying by the mask copied to every channel did, and the same gradients:
    the mask's is the products grad * feature rounded to the feature's dtype, then summed over
    the d channels in the mask's dtype (float32 under bf16 autocast), as autograd summed the
    copy's gradient. Saves the groups (a view of the feature, which the network saves anyway)
    and the small cast mask.
    """

    @staticmethod
    def forward(ctx, groups: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        mask_low = mask.to(groups.dtype)  # (B, m, 1, T, H, W)
        ctx.mask_dtype = mask.dtype
        ctx.save_for_backward(groups, mask_low)
        return groups * mask_low  # (B, m, d, T, H, W)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        groups, mask_low = ctx.saved_tensors
        grad_groups = grad * mask_low if ctx.needs_input_grad[0] else None
        grad_mask = None
        if ctx.needs_input_grad[1]:
            grad_mask = (grad * groups).to(ctx.mask_dtype).sum(dim=2, keepdim=True)
        return grad_groups, grad_mask


class ChannelGate(nn.Module):
    """Equation 1: channel group c of a feature (B, m*d, T, H, W) times mask c at its size
    (times ``gain``: 1 in equation 1, m with ``mask_rescale``).

    The mask is broadcast over the d channels of its group (``_GroupGate``), never copied to
    all m*d channels, so the product saves the (B, m, T, H, W) mask, not a feature-sized one.
    """

    def __init__(self, n_masks: int, gain: float = 1.0) -> None:
        super().__init__()
        self.n_masks = n_masks
        self.gain = gain

    def forward(self, feature: Tensor, masks: Tensor) -> Tensor:
        # feature (B, m*d, T_l, H_l, W_l), masks (B, m, T', H', W') -> (B, m*d, T_l, H_l, W_l)
        channels = feature.shape[1]
        if channels % self.n_masks:
            raise ValueError(f"{channels} feature channels are not a multiple of m={self.n_masks}")
        m_l = downsample_masks(masks, tuple(feature.shape[2:]))  # (B, m, T_l, H_l, W_l)
        if self.gain != 1.0:
            m_l = m_l * self.gain
        groups = feature.unflatten(1, (self.n_masks, -1))  # (B, m, d, T_l, H_l, W_l), a view
        gated = _GroupGate.apply(groups, m_l.unsqueeze(2))  # mask broadcast over d
        return gated.flatten(1, 2)  # (B, m*d, T_l, H_l, W_l)


class FeatureGating(nn.Module):
    """Applies ``ChannelGate`` to the chosen levels of a feature dict; others pass through."""

    def __init__(self, n_masks: int, levels: tuple[str, ...], rescale: bool = False) -> None:
        super().__init__()
        self.gate = ChannelGate(n_masks, gain=float(n_masks) if rescale else 1.0)
        self.levels = levels

    def forward(self, features: dict[str, Tensor], masks: Tensor) -> dict[str, Tensor]:
        return {
            name: self.gate(f, masks) if name in self.levels else f for name, f in features.items()
        }
