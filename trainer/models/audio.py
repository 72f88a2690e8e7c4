"""Audio network and audio-visual fusion (Sec. 3.2).

Paper: following [4] (Arandjelovic & Zisserman, "Objects that sound"), the log spectrogram is
treated as an image and a VGG-like network, trained from scratch with the rest, extracts audio
features. Fusion: (1) average-pool the audio features over frequency, (2) sample them in time
to the number of temporal samples of the visual features, (3) broadcast over space, then
concatenate with the encoder output on channels before the decoder.

Our choices: 4 VGG blocks of two 3x3 Conv2d + BN + ReLU each, widths (64, 128, 256, 512) as in
[4], 2x2 max-pooling after all but the last block. The time resampling is linear interpolation
(``F.interpolate``, ``align_corners=False``). The input is a log-mel spectrogram
(B, 1, n_mels, frames); n_mels must be at least 8 (three 2x poolings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.models.pooling import MaxPool2d


class ConvBlock2d(nn.Module):
    """Two 3x3 Conv2d + BN + ReLU, optionally followed by 2x2 max-pooling."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                nn.Conv2d(c_in, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        if pool:
            layers.append(MaxPool2d(2))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, F, T) -> (B, C_out, F', T')
        return self.body(x)


class AudioNet(nn.Module):
    """VGG-like network: log-mel (B, 1, n_mels, frames) -> features (B, C_a, n_mels/8, frames/8)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        blocks = []
        c = 1
        for k, width in enumerate(widths):
            blocks.append(ConvBlock2d(c, width, pool=k < len(widths) - 1))
            c = width
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = c

    def forward(self, spec: Tensor) -> Tensor:
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise ValueError(f"audio must be (B, 1, n_mels, frames), got {tuple(spec.shape)}")
        return self.blocks(spec)  # (B, C_a, F', T')


def audio_to_video_grid(audio: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Fusion steps 1-3: (B, C_a, F', T') -> (B, C_a, T_v, H_v, W_v) for size (T_v, H_v, W_v)."""
    t, h, w = size
    a = audio.mean(dim=2)  # (B, C_a, T')  average over frequency
    a = F.interpolate(a, size=t, mode="linear", align_corners=False)  # (B, C_a, T_v)
    return a[:, :, :, None, None].expand(-1, -1, -1, h, w)  # (B, C_a, T_v, H_v, W_v)


class AudioVisualFusion(nn.Module):
    """Concatenates audio features, brought to the visual grid, to the visual features."""

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:
        grid = audio_to_video_grid(audio, tuple(visual.shape[2:]))  # (B, C_a, T, H, W)
        return torch.cat([visual, grid.to(visual.dtype)], dim=1)  # (B, C_v + C_a, T, H, W)
