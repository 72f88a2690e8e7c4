"""Tests of trainer.models: shapes, eq. 1 and 2, masks, stop-gradient, sizes, bf16."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.testing import assert_close

from trainer.models import (
    ModelConfig,
    build_model,
    count_parameters,
    resolve_config,
    to_channels_last,
)
from trainer.models.audio import audio_to_video_grid
from trainer.models.composition import compose, weighted_sum
from trainer.models.i3d import I3DEncoder
from trainer.models.masking import ChannelGate
from trainer.models.registry import MODEL_NAMES
from trainer.paper import TABLE1_MILLIONS
from trainer.params import parameter_table

torch.set_num_threads(1)

B, N, M, T, H, W, N_MELS, FRAMES = 2, 4, 4, 8, 32, 32, 16, 24
TINY = ModelConfig(n_outputs=N, n_layers=M, width=0.125, n_mels=N_MELS)
AUDIO_MODELS = ("c3_det", "c3_internal")


def inputs(name: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(B, 3, T, H, W, generator=g)
    audio = torch.randn(B, 1, N_MELS, FRAMES, generator=g) if name in AUDIO_MODELS else None
    return video, audio


def tiny(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**vars(TINY), **overrides})
    return build_model(name, cfg)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes(name: str) -> None:
    out = tiny(name)(*inputs(name))
    video_shape = (B, N, 3, T, H, W)
    assert out.outputs.shape == video_shape
    assert out.outputs.min() >= 0 and out.outputs.max() <= 1
    has_layers = name.startswith("c2") or name.startswith("c3")
    assert (out.layers is not None) == has_layers
    if has_layers:
        assert out.layers.shape == (B, M, 3, T, H, W)
        assert out.beta.shape == (B, N, M, T, H, W)
    has_masks = name in ("c2", "c3_det", "c3_internal")
    assert (out.masks is not None) == has_masks
    if has_masks:
        assert out.masks.shape == (B, M, T, H, W)
    assert (out.scores is not None) == (name == "c3_internal")
    if out.scores is not None:
        assert out.scores.shape == (B, N)
    assert (out.predictor is not None) == (name == "centrifuge_pc")
    if out.predictor is not None:
        assert out.predictor.shape == video_shape


@pytest.mark.parametrize("beta_mode", ["pixel", "scalar"])
def test_c2_outputs_are_composition_of_layers(beta_mode: str) -> None:
    out = tiny("c2", beta_mode=beta_mode)(*inputs("c2"))
    expected = torch.zeros_like(out.outputs)
    for i in range(N):
        for j in range(M):
            beta_ij = out.beta[:, i, j]  # (B,) or (B, T, H, W)
            beta_ij = beta_ij.reshape(B, 1, 1, 1, 1) if beta_mode == "scalar" else beta_ij[:, None]
            expected[:, i] += beta_ij * out.layers[:, j]
    assert out.beta.shape == ((B, N, M) if beta_mode == "scalar" else (B, N, M, T, H, W))
    assert_close(out.outputs, expected, rtol=1e-6, atol=1e-6)
    assert_close(out.beta.sum(dim=2), torch.ones_like(out.beta.sum(dim=2)))


@pytest.mark.parametrize("beta_shape", [(B, N, M), (B, N, M, T, H, W)])
def test_the_cuda_composition_is_the_einsum_values_and_gradients(beta_shape) -> None:
    gen = torch.Generator().manual_seed(0)
    layers = torch.rand(B, M, 3, T, H, W, generator=gen, requires_grad=True)
    beta = torch.rand(beta_shape, generator=gen, requires_grad=True)
    einsum, summed = compose(layers, beta), weighted_sum(layers, beta)  # the CPU's, CUDA's
    assert summed.shape == (B, N, 3, T, H, W)
    assert_close(summed, einsum, rtol=1e-6, atol=1e-6)
    grad = torch.rand(summed.shape, generator=gen)
    for a, b in zip(torch.autograd.grad(einsum, (layers, beta), grad),
                    torch.autograd.grad(summed, (layers, beta), grad), strict=True):  # fmt: skip
        assert_close(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask_widths", [(16, 16, 8, 8, 8), (16, 16, 8)])
def test_masks_sum_to_one(mask_widths: tuple[int, ...]) -> None:
    out = tiny("c2", mask_widths=mask_widths)(*inputs("c2"))  # full or Conv3d_2c resolution
    assert out.masks.shape == (B, M, T, H, W)
    assert out.masks.min() >= 0
    assert_close(out.masks.sum(dim=1), torch.ones(B, T, H, W))
    assert out.masks.std(dim=1).max() > 0  # not a constant 1/m


def test_channel_gate_is_equation_1() -> None:
    d = 3
    feature = torch.arange(2 * M * d * 2 * 2 * 2, dtype=torch.float32).reshape(2, M * d, 2, 2, 2)
    masks = torch.softmax(torch.randn(2, M, 4, 4, 4), dim=1)
    gated = ChannelGate(M)(feature, masks)
    pooled = torch.nn.functional.avg_pool3d(masks, 2)  # (2, M, 2, 2, 2)
    for c in range(M):
        group = slice(c * d, (c + 1) * d)
        assert_close(gated[:, group], feature[:, group] * pooled[:, c : c + 1])


def test_mask_rescale_gates_with_m_times_the_mask_so_a_uniform_mask_passes_features() -> None:
    feature = torch.arange(2 * M * 3 * 8, dtype=torch.float32).reshape(2, M * 3, 2, 2, 2)
    uniform = torch.full((2, M, 4, 4, 4), 1 / M)
    assert_close(ChannelGate(M, gain=M)(feature, uniform), feature, rtol=0, atol=0)
    assert_close(ChannelGate(M)(feature, uniform), feature / M, rtol=0, atol=0)
    masks = torch.softmax(torch.randn(2, M, 4, 4, 4), dim=1)
    assert_close(ChannelGate(M, gain=M)(feature, masks), M * ChannelGate(M)(feature, masks))


def test_mask_rescale_reaches_every_gated_level_of_c2() -> None:
    plain, rescaled = tiny("c2"), tiny("c2", mask_rescale=True)
    assert plain.gating.gate.gain == 1.0
    assert rescaled.gating.gate.gain == M
    assert rescaled.gating.levels == plain.gating.levels
    video, _ = inputs("c2")
    assert not torch.equal(plain(video).outputs, rescaled(video).outputs)  # same weights otherwise


def test_audio_fusion_grid() -> None:
    feats = torch.randn(2, 5, 3, 4)  # (B, C_a, F', T')
    grid = audio_to_video_grid(feats, (4, 2, 3))
    assert grid.shape == (2, 5, 4, 2, 3)
    assert_close(grid[:, :, :, 1, 2], feats.mean(dim=2))  # same T: identity in time
    down = audio_to_video_grid(feats, (2, 1, 1))[..., 0, 0]
    assert_close(down, feats.mean(dim=2).reshape(2, 5, 2, 2).mean(dim=3))  # linear, 2 -> 1


def test_paper_size_encoder_shapes_on_meta() -> None:
    with torch.device("meta"):
        features = I3DEncoder()(torch.empty(1, 3, 64, 128, 128))
    shapes = {name: tuple(f.shape) for name, f in features.items()}
    assert shapes == {
        "Conv3d_2c": (1, 192, 32, 32, 32),
        "Mixed_3c": (1, 480, 32, 16, 16),
        "Mixed_4f": (1, 832, 16, 8, 8),
        "Mixed_5c": (1, 1024, 8, 4, 4),
    }


def test_paper_size_parameter_counts_match_table1() -> None:
    rows = {row.name: row for row in parameter_table()}
    assert set(rows) == set(MODEL_NAMES)
    for name, paper in TABLE1_MILLIONS.items():
        assert abs(rows[name].params / 1e6 - paper) / paper < 0.10, (name, rows[name].params)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_reaches_every_parameter(name: str) -> None:
    model = tiny(name)
    out = model(*inputs(name))
    loss = out.outputs.mean() + (out.scores.mean() if out.scores is not None else 0)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def _output_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    names = ("control.", "control_audio_net.")
    return [p for n, p in model.named_parameters() if not n.startswith(names)]


def test_c3_internal_scores_do_not_reach_output_parameters() -> None:
    model = tiny("c3_internal")
    out = model(*inputs("c3_internal"))
    output_params = _output_parameters(model)
    grads = torch.autograd.grad(out.scores.sum(), output_params, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    own = [p for n, p in model.named_parameters() if n.startswith("control")]
    own_grads = torch.autograd.grad(out.scores.sum(), own, allow_unused=True)
    assert all(g is not None for g in own_grads)
    # the outputs themselves depend on those parameters, so the check above is not vacuous
    out_grads = torch.autograd.grad(out.outputs.sum(), output_params, allow_unused=True)
    assert sum(g is not None for g in out_grads) == len(output_params)


def test_c3_internal_shared_audio_is_not_isolated() -> None:
    model = tiny("c3_internal", control_audio="shared")
    out = model(*inputs("c3_internal"))
    audio_params = list(model.audio_net.parameters())
    grads = torch.autograd.grad(out.scores.sum(), audio_params, allow_unused=True)
    assert any(g is not None and g.any() for g in grads)


def test_predictor_corrector_feeds_first_stage_to_second() -> None:
    model = tiny("centrifuge_pc")
    assert model.corrector.encoder.in_channels == 3 + 3 * N
    video, _ = inputs("centrifuge_pc")
    out = model(video)
    assert_close(out.predictor, model.predictor(video).outputs)


@pytest.mark.parametrize("name", ["c2", "c3_internal", "centrifuge_pc"])
def test_bf16_autocast_channels_last_forward(name: str) -> None:
    model = to_channels_last(tiny(name))
    video, audio = inputs(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video.contiguous(memory_format=torch.channels_last_3d), audio)
    assert out.outputs.shape == (B, N, 3, T, H, W)
    assert torch.isfinite(out.outputs.float()).all()


def test_config_resolution_and_errors() -> None:
    resolved = resolve_config("c3_internal", TINY)
    assert resolved.audio is True and resolved.control == "internal"
    assert resolve_config("c2", TINY).audio is False
    with pytest.raises(ValueError, match="unknown model"):
        build_model("c4", TINY)
    with pytest.raises(ValueError, match="has control"):
        build_model("c2", ModelConfig(**{**vars(TINY), "control": "internal"}))
    with pytest.raises(ValueError, match="not a multiple of m=3"):
        build_model("c2", ModelConfig(**{**vars(TINY), "n_layers": 3}))
    with pytest.raises(ValueError, match="needs the audio"):
        tiny("c3_det")(inputs("c3_det")[0])
    with pytest.raises(ValueError, match="T % 8"):
        tiny("centrifuge")(torch.rand(1, 3, 6, 32, 32))


@pytest.mark.parametrize("name", ["centrifuge", "c2"])
def test_input_skip_starts_every_output_near_the_input_and_no_two_alike(name):
    cfg = ModelConfig(n_outputs=2, n_layers=2, width=0.125, input_skip=True, norm="group")
    model = build_model(name, cfg).eval()
    video = torch.rand(1, 3, 8, 32, 32) * 0.9 + 0.05
    with torch.no_grad():
        out = model(video).outputs  # (1, 2, 3, 8, 32, 32)
    assert (out - video.unsqueeze(1)).abs().mean() < 0.01  # near the identity baseline
    # but not exactly on it: identical outputs are a saddle of the PIT loss (init_correction)
    assert (out[:, 0] - out[:, 1]).abs().max() > 1e-4


def test_group_norm_replaces_every_batch_norm_and_is_batch_independent():
    cfg = ModelConfig(n_outputs=2, n_layers=2, width=0.125, n_mels=16, norm="group")
    model = build_model("c3_internal", cfg).eval()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms == [] and any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    video, audio = torch.rand(2, 3, 8, 32, 32), torch.randn(2, 1, 16, 40)
    with torch.no_grad():
        both = model(video, audio).outputs
        first = model(video[:1], audio[:1]).outputs
    assert_close(first, both[:1], atol=1e-5, rtol=0)
    assert count_parameters(model) == count_parameters(
        build_model("c3_internal", replace(cfg, norm="batch"))
    )
