"""YUV to RGB on the device: the loader ships the stored Y, U, V planes, not RGB.

Shards store v1 / v2 / mix as H.264 4:4:4 (``blendkit.codec``), which swscale converted from RGB
with its default matrix, BT.601 at limited range (Y in 16-235, U and V in 16-240 around 128). The
loader copies the decoded planes as they are (``blendkit.codec.decode_video_yuv``), which saves
the CPU a third of its decoding time, and ``yuv_to_rgb`` applies the inverse matrix here, where
it is one small matrix product per batch (its constants are copied to the device once,
``trainer.device_constants``). It agrees with swscale's own integer conversion to
within one level of 255 (tests/test_train.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer.device_constants import device_constant

KR, KB = 0.299, 0.114  # BT.601 luma weights of red and blue
KG = 1.0 - KR - KB
Y_SCALE, C_SCALE = 255.0 / 219.0, 255.0 / 224.0  # limited range: Y 16-235, chroma 16-240


def _matrix() -> Tensor:
    """(3, 3) map from (Y - 16, U - 128, V - 128) to RGB on the 0-255 scale."""
    r_v = 2 * (1 - KR) * C_SCALE
    b_u = 2 * (1 - KB) * C_SCALE
    g_u, g_v = -b_u * KB / KG, -r_v * KR / KG
    return torch.tensor(
        [[Y_SCALE, 0.0, r_v], [Y_SCALE, g_u, g_v], [Y_SCALE, b_u, 0.0]], dtype=torch.float32
    )


YUV_TO_RGB = _matrix()
YUV_OFFSET = torch.tensor([16.0, 128.0, 128.0])


def _constants(device: torch.device) -> tuple[Tensor, Tensor]:
    """``YUV_OFFSET`` and ``YUV_TO_RGB / 255`` on ``device``."""
    return YUV_OFFSET.to(device), (YUV_TO_RGB / 255.0).to(device)


def yuv_to_rgb(yuv: Tensor) -> Tensor:
    """(B, 3, ...) Y, U, V planes on the 0-255 scale (uint8 or float) -> float RGB in [0, 1]."""
    if yuv.dim() < 2 or yuv.shape[1] != 3:
        raise ValueError(f"expected (B, 3, ...) planes, got {tuple(yuv.shape)}")
    offset, m = device_constant("yuv_to_rgb", yuv, _constants)  # (3,), (3, 3)
    shape = (1, 3) + (1,) * (yuv.dim() - 2)
    x = yuv.float() - offset.view(shape)
    rgb = torch.einsum("ij,bj...->bi...", m, x)  # (B, 3, ...)
    return rgb.clamp_(0.0, 1.0)
