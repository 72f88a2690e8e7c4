"""I3D encoder: Inception-v1 inflated to 3D (Carreira & Zisserman, 2017), trained from scratch.

The paper (Sec. 3.1) takes the Centrifuge encoder: an I3D whose features at several levels feed a
U-Net decoder. We keep the standard I3D layout and drop the classifier (no Mixed_5c pooling or
logits). Every convolution is Conv3d (no bias) + BatchNorm3d + ReLU. Symmetric PyTorch padding of
k // 2 (and ``ceil_mode`` on the last pool) gives TF-'same' output sizes ceil(size / stride).

For an input (B, 3, 64, 128, 128) the returned levels are::

    Conv3d_2c  (B,  192, 32, 32, 32)
    Mixed_3c   (B,  480, 32, 16, 16)
    Mixed_4f   (B,  832, 16,  8,  8)
    Mixed_5c   (B, 1024,  8,  4,  4)

Max pools save no indices for the backward pass (``trainer.models.pooling``).

``width`` multiplies every channel count (rounded to a multiple of 8, at least 8) for tiny test
and debug configurations; ``width=1.0`` is the standard network (12.3M parameters).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.models.pooling import MaxPool3d

FEATURE_LEVELS: tuple[str, ...] = ("Conv3d_2c", "Mixed_3c", "Mixed_4f", "Mixed_5c")

# Inception branch widths (b0 1x1, b1 1x1 -> 3x3, b2 1x1 -> 3x3, b3 pool -> 1x1) of Inception-v1.
INCEPTION_SPECS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def scale_channels(channels: int, width: float) -> int:
    """Channel count ``channels * width`` rounded to a multiple of 8 (at least 8)."""
    if width == 1.0:
        return channels
    return max(8, int(round(channels * width / 8)) * 8)


def input_problem(frames: int, height: int, width: int) -> str | None:
    """What makes clips of this size unfit for the encoder (four 2x poolings in time after the
    stem, five in space), or None."""
    if frames % 8 or height % 32 or width % 32:
        return f"I3D input needs T % 8 == 0 and H, W % 32 == 0, got {(frames, height, width)}"
    return None


class Unit3d(nn.Module):
    """Conv3d (no bias, 'same' padding) + BatchNorm3d + ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in kernel)
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, T, H, W) -> (B, C_out, T/s, H/s, W/s)
        return self.relu(self.bn(self.conv(x)))


class InceptionBlock(nn.Module):
    """Inflated Inception module: four parallel branches concatenated on channels."""

    def __init__(self, in_channels: int, spec: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = spec
        self.branch0 = Unit3d(in_channels, b0)
        self.branch1 = nn.Sequential(Unit3d(in_channels, b1a), Unit3d(b1a, b1b, (3, 3, 3)))
        self.branch2 = nn.Sequential(Unit3d(in_channels, b2a), Unit3d(b2a, b2b, (3, 3, 3)))
        self.branch3 = nn.Sequential(MaxPool3d(3, stride=1, padding=1), Unit3d(in_channels, b3))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, T, H, W) -> (B, C_out, T, H, W)
        branches = (self.branch0, self.branch1, self.branch2, self.branch3)
        return torch.cat([branch(x) for branch in branches], dim=1)


class I3DEncoder(nn.Module):
    """I3D trunk returning the features of ``FEATURE_LEVELS`` in a dict (shallow to deep).

    ``channels`` maps each level name to its channel count. Inputs must have T divisible by 8
    and H, W divisible by 32 so that the decoder's up-convolutions land exactly on the skips.
    """

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.in_channels = in_channels

        def ch(c: int) -> int:
            return scale_channels(c, width)

        self.stem = nn.Sequential(  # -> Conv3d_2c
            Unit3d(in_channels, ch(64), (7, 7, 7), (2, 2, 2)),  # Conv3d_1a_7x7
            MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # MaxPool3d_2a_3x3
            Unit3d(ch(64), ch(64)),  # Conv3d_2b_1x1
            Unit3d(ch(64), ch(192), (3, 3, 3)),  # Conv3d_2c_3x3
        )
        blocks: dict[str, nn.Module] = {}
        c = ch(192)
        for name, spec in INCEPTION_SPECS.items():
            block = InceptionBlock(c, tuple(ch(s) for s in spec))  # type: ignore[arg-type]
            blocks[name] = block
            c = block.out_channels
        self.mixed_3 = nn.Sequential(
            MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # MaxPool3d_3a_3x3
            blocks["Mixed_3b"],
            blocks["Mixed_3c"],
        )
        self.mixed_4 = nn.Sequential(
            MaxPool3d(3, stride=2, padding=1),  # MaxPool3d_4a_3x3
            *(blocks[f"Mixed_4{k}"] for k in "bcdef"),
        )
        self.mixed_5 = nn.Sequential(
            MaxPool3d(2, stride=2, ceil_mode=True),  # MaxPool3d_5a_2x2
            blocks["Mixed_5b"],
            blocks["Mixed_5c"],
        )
        self.channels: dict[str, int] = {
            "Conv3d_2c": ch(192),
            "Mixed_3c": blocks["Mixed_3c"].out_channels,
            "Mixed_4f": blocks["Mixed_4f"].out_channels,
            "Mixed_5c": blocks["Mixed_5c"].out_channels,
        }

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # x: (B, C_in, T, H, W)
        _, _, t, h, w = x.shape
        problem = input_problem(t, h, w)
        if problem:
            raise ValueError(problem)
        conv2c = self.stem(x)  # (B, 192, T/2, H/4, W/4)
        mixed3c = self.mixed_3(conv2c)  # (B, 480, T/2, H/8, W/8)
        mixed4f = self.mixed_4(mixed3c)  # (B, 832, T/4, H/16, W/16)
        mixed5c = self.mixed_5(mixed4f)  # (B, 1024, T/8, H/32, W/32)
        return {"Conv3d_2c": conv2c, "Mixed_3c": mixed3c, "Mixed_4f": mixed4f, "Mixed_5c": mixed5c}
