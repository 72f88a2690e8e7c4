"""Memory of the models: index-free max pools and mask broadcasting, same values as before."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from trainer.memory import SavedTensors
from trainer.models import ModelConfig, build_model
from trainer.models.i3d import I3DEncoder
from trainer.models.masking import ChannelGate, downsample_masks
from trainer.models.pooling import MaxPool2d, MaxPool3d

torch.set_num_threads(1)

POOLS_3D = [  # the I3D pools: Inception branch, stem, Mixed_4a, Mixed_5a (ceil mode)
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=2, stride=2, ceil_mode=True),
]


def _pool_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, shape, generator=g).float()  # four levels: many ties


def _value_and_grad(pool: nn.Module, x: torch.Tensor, upstream_seed: int):
    x = x.detach().requires_grad_(True)
    y = pool(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(upstream_seed))
    (grad,) = torch.autograd.grad(y, x, g.to(y.dtype))
    return y, grad


@pytest.mark.parametrize("kwargs", POOLS_3D)
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_3d_equals_nn_max_pool(kwargs, channels_last):
    x = _pool_input((2, 3, 5, 7, 9), seed=0)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    ours, expected = (
        _value_and_grad(MaxPool3d(**kwargs), x, 1),
        _value_and_grad(nn.MaxPool3d(**kwargs), x, 1),
    )
    for a, b in zip(ours, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        assert torch.equal(a, b)


def test_max_pool_2d_equals_nn_max_pool_in_bf16():
    x = _pool_input((2, 3, 8, 10), seed=2).bfloat16()
    ours, expected = _value_and_grad(MaxPool2d(2), x, 3), _value_and_grad(nn.MaxPool2d(2), x, 3)
    for a, b in zip(ours, expected, strict=True):
        assert torch.equal(a, b)


def test_max_pool_3d_under_cpu_autocast_equals_nn_max_pool():
    """CPU autocast pools bf16 in float32 (CUDA's does not): values and gradients as nn's."""
    x = _pool_input((2, 3, 4, 6, 6), seed=6).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = _value_and_grad(MaxPool3d(3, 1, 1), x, 7)
        expected = _value_and_grad(nn.MaxPool3d(3, 1, 1), x, 7)
    assert ours[0].dtype == torch.float32 and ours[1].dtype == torch.bfloat16
    for a, b in zip(ours, expected, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_encoder_saves_no_pooling_indices():
    torch.manual_seed(0)
    encoder = I3DEncoder(width=0.125)
    video = torch.rand(2, 3, 8, 32, 32)
    with SavedTensors(encoder) as saved:
        encoder(video)
    assert saved.by_dtype["float32"] > 0 and "int64" not in saved.by_dtype
    ref = I3DEncoder(width=0.125)
    for module in ref.modules():  # the same network with nn's pools
        for name, child in module.named_children():
            if isinstance(child, MaxPool3d):
                pool = nn.MaxPool3d(child.kernel_size, child.stride, child.padding)
                setattr(module, name, pool)
                pool.ceil_mode = child.ceil_mode
    with SavedTensors(ref) as saved_ref:
        ref(video)
    assert saved_ref.total - saved.total == saved_ref.by_dtype["int64"] > 0


def _gate_before(feature: torch.Tensor, masks: torch.Tensor, n_masks: int) -> torch.Tensor:
    """ChannelGate as it was: the mask copied to every channel of its group."""
    m_l = downsample_masks(masks, tuple(feature.shape[2:]))
    m_l = m_l.repeat_interleave(feature.shape[1] // n_masks, dim=1)
    return feature * m_l.to(feature.dtype)


def _gate_and_grads(gate, feature, logits):
    feature = feature.detach().requires_grad_(True)
    logits = logits.detach().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=feature.dtype == torch.bfloat16):
        masks = torch.softmax(logits, dim=1)  # (B, m, T, H, W)
        out = gate(feature, masks)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    return (out, *torch.autograd.grad(out, (feature, logits), upstream.to(out.dtype)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_gate_broadcasts_the_mask_with_the_same_values(dtype, channels_last):
    g = torch.Generator().manual_seed(4)
    feature = torch.randn(2, 12, 2, 4, 4, generator=g).to(dtype)  # m = 4 groups of d = 3
    if channels_last:
        feature = feature.contiguous(memory_format=torch.channels_last_3d)
    logits = torch.randn(2, 4, 4, 8, 8, generator=g)  # masks at twice the feature's size
    ours = _gate_and_grads(ChannelGate(4), feature, logits)
    before = _gate_and_grads(lambda f, m: _gate_before(f, m, 4), feature, logits)
    assert ours[0].is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    assert torch.equal(ours[0], before[0])  # the gated feature
    assert torch.equal(ours[1], before[1])  # its gradient to the feature
    assert_close(ours[2], before[2])  # to the mask logits (float32): summation order only


def test_channel_gate_saves_the_small_mask():
    feature = torch.randn(1, 64, 2, 4, 4, requires_grad=True)
    masks = torch.rand(1, 4, 4, 8, 8, requires_grad=True)  # pooled to (1, 4, 2, 4, 4)
    with SavedTensors() as ours:
        ChannelGate(4)(feature, masks)
    with SavedTensors() as before:
        _gate_before(feature, masks, 4)
    # the feature, the masks (by the pooling) and the pooled masks, not copied 16 times
    assert ours.total == feature.nbytes + masks.nbytes + masks.nbytes // 8
    assert before.total == 2 * feature.nbytes + masks.nbytes


def test_tiny_c3_trains_the_same_with_the_new_modules():
    """One forward and backward of a tiny C3: every gradient flows (pools, gates, audio)."""
    torch.manual_seed(0)
    model = build_model("c3_internal", ModelConfig(width=0.125, n_mels=16))
    out = model(torch.rand(2, 3, 8, 32, 32), torch.randn(2, 1, 16, 24))
    (out.outputs.sum() + out.scores.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
