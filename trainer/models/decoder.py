"""U-Net decoder of 3D up-convolutions (the Centrifuge decoder, Sec. 3.1) and the video head.

The paper: "the decoder is composed by stacking 3D up convolutions" with U-Net skips from the
I3D encoder. Its widths are not given; ours are chosen to match the sizes of Table 1 (see
``trainer.models`` docstring). Each ``UpBlock`` is a ConvTranspose3d with kernel = stride = the
scale factor (no overlapping kernels, so no checkerboard pattern) + BN + ReLU, then, if the
level has a skip, concatenation with it, then a 3x3x3 Conv + BN + ReLU.

Stages for the four I3D levels (sizes for an input of (T, H, W)):

    Mixed_5c (T/8, H/32)  -x(2,2,2)->  + Mixed_4f   (T/4, H/16)
                          -x(2,2,2)->  + Mixed_3c   (T/2, H/8)
                          -x(1,2,2)->  + Conv3d_2c  (T/2, H/4)
                          -x(2,2,2)->               (T,   H/2)
                          -x(1,2,2)->               (T,   H)      full resolution
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.models.i3d import Unit3d

# Scale factor of each decoder stage and the encoder level it concatenates (None: no skip).
STAGE_SCALES: tuple[tuple[int, int, int], ...] = (
    (2, 2, 2),
    (2, 2, 2),
    (1, 2, 2),
    (2, 2, 2),
    (1, 2, 2),
)
STAGE_SKIPS: tuple[str | None, ...] = ("Mixed_4f", "Mixed_3c", "Conv3d_2c", None, None)
CORRECTION_INIT_SCALE = 0.1  # see init_correction


class UpBlock(nn.Module):
    """Up-convolution by ``scale``, optional skip concatenation, 3x3x3 convolution."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, scale: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, out_channels, scale, stride=scale, bias=False)
        self.up_bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = Unit3d(out_channels + skip_channels, out_channels, (3, 3, 3))

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = self.relu(self.up_bn(self.up(x)))  # (B, C_out, T*s_t, H*s_h, W*s_w)
        if skip is not None:
            if skip.shape[2:] != x.shape[2:]:
                raise ValueError(f"skip of size {tuple(skip.shape[2:])} != {tuple(x.shape[2:])}")
            x = torch.cat([x, skip], dim=1)  # (B, C_out + C_skip, T', H', W')
        return self.conv(x)  # (B, C_out, T', H', W')


class UNetDecoder(nn.Module):
    """Stacked ``UpBlock``s from the bottleneck up through the I3D skips.

    ``widths[k]`` is stage k's output width; ``len(widths)`` (3 to 5) is the number of stages run,
    so a 5-stage decoder ends at full resolution and a 3-stage one at Conv3d_2c's resolution.
    ``skip_channels`` maps level name to channels (``I3DEncoder.channels``).
    """

    def __init__(
        self, bottleneck_channels: int, skip_channels: dict[str, int], widths: tuple[int, ...]
    ) -> None:
        super().__init__()
        if not 3 <= len(widths) <= len(STAGE_SCALES):
            raise ValueError(f"decoder needs 3 to {len(STAGE_SCALES)} widths, got {widths}")
        blocks = []
        c = bottleneck_channels
        stages = zip(widths, STAGE_SCALES[: len(widths)], STAGE_SKIPS[: len(widths)], strict=True)
        for width, scale, skip in stages:
            blocks.append(UpBlock(c, skip_channels[skip] if skip else 0, width, scale))
            c = width
        self.blocks = nn.ModuleList(blocks)
        self.skips = STAGE_SKIPS[: len(widths)]
        self.out_channels = c

    def forward(self, bottleneck: Tensor, features: dict[str, Tensor]) -> Tensor:
        x = bottleneck  # (B, C_b, T/8, H/32, W/32)
        for block, skip in zip(self.blocks, self.skips, strict=True):
            x = block(x, features[skip] if skip else None)
        return x  # (B, widths[-1], T, H, W) for 5 stages


def input_logit(video: Tensor, eps: float = 1e-3) -> Tensor:
    """The input video in logit space, (B, 3, T, H, W) -> (B, 1, 3, T, H, W), for ``input_skip``."""
    return torch.logit(video.clamp(eps, 1 - eps)).unsqueeze(1)


def init_correction(conv: nn.Conv3d, scale: float = CORRECTION_INIT_SCALE) -> None:
    """Make ``conv`` predict a small correction: its default initialisation shrunk by ``scale``,
    no bias.

    Not zero: with all-zero weights every output is the same copy of the input, a symmetric
    point of the permutation-invariant loss. The two targets are exchangeable, so whichever
    output a target is assigned to, the expected gradient on each output's weights cancels there
    and only noise moves the outputs apart. Small random weights make them differ from the start.
    Measured on the demo (tiny C2, 600 steps): the training ratio to the identity baseline went
    from 0.94x flat (zero init) to 0.92x; validation stayed at ~1.0x either way.
    """
    with torch.no_grad():
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.zero_()


class VideoHead(nn.Module):
    """3x3x3 convolution to ``k`` RGB videos, sigmoid so they live in [0, 1] (``DecompositionNet``
    maps them onto the run's pixel range, ``trainer.pixels``).

    With ``input_skip`` the convolution predicts a correction to the input in logit space,
    O = sigmoid(conv(x) + logit(V)), and starts small (``init_correction``): every output begins
    near a copy of the input (the identity baseline) and training learns what to take away. Not
    in the paper; off in the ``paper`` config, on in ``tiny`` where it makes the first minutes
    count.
    """

    def __init__(self, in_channels: int, k: int, input_skip: bool = False) -> None:
        super().__init__()
        self.k, self.input_skip = k, input_skip
        self.conv = nn.Conv3d(in_channels, 3 * k, 3, padding=1)
        if input_skip:
            init_correction(self.conv)

    def forward(self, x: Tensor, video: Tensor | None = None) -> Tensor:
        # x: (B, C, T, H, W), video: (B, 3, T, H, W) -> (B, k, 3, T, H, W)
        y = self.conv(x)
        y = y.reshape(y.shape[0], self.k, 3, *y.shape[2:])
        if self.input_skip:
            y = y + input_logit(video)
        return torch.sigmoid(y)
