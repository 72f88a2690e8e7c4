"""Max pooling that saves no indices for the backward pass.

``nn.MaxPool3d`` saves the argmax of every output as int64, four times the bytes of a bf16
activation: 82 MiB a sample in the I3D encoder at paper size, for pools whose input is saved
anyway (it is the output of a ReLU, or of an Inception block that the next convolutions save).
``MaxPool3d`` and ``MaxPool2d`` here are drop-in subclasses that save only the input (the same
storage, so no new bytes) and recompute the indices in the backward pass, one pooling per pool:
cheap next to the convolutions. The recomputed indices are the forward pass's, so values and
gradients are exactly those of the ``nn`` modules (tests/test_models.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair, _triple

_POOL = {2: F.max_pool2d, 3: F.max_pool3d}
_BACKWARD = {
    2: torch.ops.aten.max_pool2d_with_indices_backward,
    3: torch.ops.aten.max_pool3d_with_indices_backward,
}


class _MaxPoolNoIndices(torch.autograd.Function):
    """Max pooling over the last ``dims`` dims; saves the input, recomputes the indices."""

    @staticmethod
    def forward(ctx, x: Tensor, dims: int, kernel, stride, padding, dilation, ceil_mode: bool):  # type: ignore[no-untyped-def,override]
        ctx.args = (dims, kernel, stride, padding, dilation, ceil_mode)
        ctx.save_for_backward(x)
        out = _POOL[dims](x, kernel, stride, padding, dilation, ceil_mode)
        ctx.pool_dtype = out.dtype  # CPU autocast pools bf16 inputs in float32
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def,override]
        (x,) = ctx.saved_tensors
        dims, kernel, stride, padding, dilation, ceil_mode = ctx.args
        pooled = x.to(ctx.pool_dtype)  # x itself, unless autocast cast it in the forward pass
        _, indices = _POOL[dims](pooled, kernel, stride, padding, dilation, ceil_mode, True)
        grad_x = _BACKWARD[dims](
            grad, pooled, kernel, stride, padding, dilation, ceil_mode, indices
        )
        return grad_x.to(x.dtype), None, None, None, None, None, None


class MaxPool3d(nn.MaxPool3d):
    """``nn.MaxPool3d`` without saved indices: (B, C, T, H, W) -> (B, C, T', H', W')."""

    def forward(self, x: Tensor) -> Tensor:
        if self.return_indices:
            return super().forward(x)
        kernel, stride = _triple(self.kernel_size), _triple(self.stride)
        padding, dilation = _triple(self.padding), _triple(self.dilation)
        return _MaxPoolNoIndices.apply(x, 3, kernel, stride, padding, dilation, self.ceil_mode)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` without saved indices: (B, C, H, W) -> (B, C, H', W')."""

    def forward(self, x: Tensor) -> Tensor:
        if self.return_indices:
            return super().forward(x)
        kernel, stride = _pair(self.kernel_size), _pair(self.stride)
        padding, dilation = _pair(self.padding), _pair(self.dilation)
        return _MaxPoolNoIndices.apply(x, 2, kernel, stride, padding, dilation, self.ceil_mode)
