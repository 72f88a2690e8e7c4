"""trainer.memory, trainer.cost, trainer.devices and the tables of trainer.params."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from trainer import cost
from trainer.devices import (
    DEVICES,
    device_spec,
    mfu,
    micro_batch_that_fits,
    training_state_bytes,
)
from trainer.losses import video_loss
from trainer.memory import LivePeak, SavedTensors, fake_cuda_autocast
from trainer.models import ModelConfig, build_model, count_parameters
from trainer.params import format_cost_table, format_device_table, format_policy_table

torch.set_num_threads(1)

TINY = ModelConfig(width=0.125, n_mels=16)
TINY_CLIP = cost.Clip(frames=16, size=64, n_mels=16, audio_frames=24)  # 2x2x2 bottleneck


# ----------------------------------------------------------------------------- memory


def test_saved_tensors_counts_each_storage_once_and_no_weights():
    x = torch.ones(10, requires_grad=True)
    linear = torch.nn.Linear(10, 3)
    with SavedTensors(linear) as saved:
        y = x.exp()  # saves its result y
        z = y * y  # saves y twice: one storage
        z[:5].sum()  # a view: nothing saved
        linear(y[None])  # saves its input (y again) and the weight (a parameter: not counted)
    assert saved.total == y.nbytes == 40
    assert saved.by_dtype == {"float32": 40}
    with SavedTensors(linear) as cast, torch.autocast("cpu", dtype=torch.bfloat16):
        linear(x[None])  # autocast's bf16 weight copy is counted apart
    assert cast.weight_copies == 30 * 2 and cast.total == 10 * 2  # and the bf16 copy of x


def test_saved_tensors_names_the_module_that_saved():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Sigmoid())
    with SavedTensors(model) as saved:
        model(torch.ones(2, 4, requires_grad=True))
    assert saved.by_module == {"0": 2 * 4 * 4, "1": 2 * 4 * 4}  # input of 0, output of 1
    assert saved.module_totals(0) == {"": 64}


def test_live_peak_follows_allocations_and_frees():
    before = torch.ones(1000)  # made outside: not counted, even when written in place
    with LivePeak() as live:
        a = before * 2  # 4000 bytes
        b = a + 1  # 8000 live
        a.mul_(3)  # in place: nothing new
        before.add_(1)
        del a  # 4000 live
        c = torch.empty(500)  # 6000 live
    assert (live.peak, live.live) == (8000, 6000)
    del b, c
    assert live.live == 0


def test_fake_cuda_autocast_casts_like_cuda():
    with fake_cuda_autocast():
        conv = torch.nn.Conv3d(3, 4, 3)
        x = torch.empty(2, 3, 8, 8, 8)  # fake: no memory
        y = conv(x)
        assert (y.device.type, y.dtype) == ("cuda", torch.bfloat16)
        assert torch.softmax(y, dim=1).dtype == torch.float32  # as on a GPU, unlike on the CPU


# ----------------------------------------------------------------------------- cost


PAPER_FLOPS = {"c2": (425.5e9, 1259e9), "c3_internal": (452.7e9, 1338e9)}  # issue 12


def test_flops_at_paper_size_match_the_issue_counts():
    clip = cost.paper_clip()
    assert clip == cost.Clip(frames=64, size=128, n_mels=64, audio_frames=257)
    flops = {n: cost.train_flops(n, cost.paper_model_config(n), clip) for n in PAPER_FLOPS}
    for name, (forward, train) in PAPER_FLOPS.items():
        assert flops[name][0] == pytest.approx(forward, rel=1e-3)
        assert flops[name][1] == pytest.approx(train, rel=1e-3)
    # activation checkpointing recomputes the blocks: 26% more FLOPs
    blocks = cost.trainer_checkpointing()
    recomputed = cost.train_flops("c2", cost.paper_model_config("c2"), clip, blocks)
    assert recomputed[1] / flops["c2"][1] == pytest.approx(1.263, abs=1e-3)
    with torch.device("meta"):
        model = build_model("c2", cost.paper_model_config("c2"))
        video = torch.empty(1, 3, 64, 128, 128)
    with FlopCounterMode(display=False) as counter:
        model(video)
    decoder = sum(counter.get_flop_counts()["DecompositionNet.decoder"].values())
    assert decoder == pytest.approx(219e9, rel=2e-3)


def test_model_cost_of_a_tiny_model():
    policies = (cost.NO_CHECKPOINTING, cost.trainer_checkpointing(), cost.BOUNDARIES)
    c = cost.model_cost("c3_internal", TINY, TINY_CLIP, policies)
    with torch.device("meta"):
        assert c.params == count_parameters(build_model("c3_internal", TINY))
    assert 0 < c.forward_flops < c.train_flops < 3 * c.forward_flops
    saved = c.saved
    assert saved["none"] > saved["blocks"] > saved["boundaries"] > 0
    one = cost.saved_bytes("c3_internal", TINY, TINY_CLIP, 2, cost.NO_CHECKPOINTING)
    assert saved["none"] == one.total // 2
    assert one.by_dtype["int64"] < 1024  # the PIT's permutation indices; no pooling indices
    peak = cost.peak_per_sample("c2", TINY, TINY_CLIP, cost.NO_CHECKPOINTING)
    assert peak > cost.saved_per_sample("c2", TINY, TINY_CLIP, (cost.NO_CHECKPOINTING,))["none"]


def test_loss_costs_measure_what_the_loss_saves():
    clip = cost.Clip(frames=4, size=8, n_mels=8, audio_frames=8)

    def pairwise(outputs, targets):
        return video_loss(outputs.unsqueeze(2), targets.unsqueeze(1))

    def keeps_differences(outputs, targets):  # the plain formula saved |D| three times
        d = (outputs.unsqueeze(2) - targets.unsqueeze(1)).float()
        dx = d[..., 1:] - d[..., :-1]
        dy = d[..., 1:, :] - d[..., :-1, :]
        dims = (-4, -3, -2, -1)
        return 0.5 * (d.abs().mean(dims) + dx.abs().mean(dims) + dy.abs().mean(dims))

    costs = cost.loss_costs(
        {"new": pairwise, "old": keeps_differences}, clip, torch.bfloat16, repeats=2
    )
    video = 3 * 4 * 8 * 8
    assert costs["new"].saved_bytes == 4 * video * 2 + 2 * video * 4  # bf16 outputs, fp32 targets
    assert costs["old"].saved_bytes == 8 * video * 4 + 2 * 8 * 3 * 4 * 8 * 7 * 4
    assert costs["new"].peak_bytes < costs["old"].peak_bytes


# ----------------------------------------------------------------------------- devices


def test_device_spec_by_name_and_overrides():
    assert device_spec("NVIDIA H100 80GB HBM3").name == "H100 SXM"
    assert device_spec("NVIDIA H100 PCIe").name == "H100 PCIe"
    assert device_spec("NVIDIA A100-SXM4-40GB").memory_gb == 40
    assert device_spec("NVIDIA L40S").name == "L40S"
    assert device_spec("h200").bf16_tflops == 989.4
    assert device_spec("H200", bf16_tflops=900.0).bf16_tflops == 900.0
    with pytest.raises(ValueError, match="unknown device 'NVIDIA L40'"):
        device_spec("NVIDIA L40")  # not an L4, not an L40S
    assert device_spec("NVIDIA L40", bf16_tflops=181.0, memory_gb=48).memory_bytes == 48e9
    assert len({d.name for d in DEVICES}) == len(DEVICES)


def test_mfu_and_the_micro_batch_that_fits():
    assert mfu(samples_per_s=100, flops_per_sample=1e12, peak_tflops=1000) == pytest.approx(0.1)
    assert training_state_bytes(1000, optimizer_states=1) == 14_000
    # 90% of 100 GB minus 10 GB leaves 80 samples of 1 GB: the largest divisor of 128 is 64
    assert micro_batch_that_fits(128, 1e9, 10e9, 100e9) == 64
    assert micro_batch_that_fits(128, 1e9, 10e9, 200e9) == 128
    assert micro_batch_that_fits(96, 1e9, 10e9, 100e9) == 48
    with pytest.raises(ValueError, match="one sample needs 10.2 GiB"):
        micro_batch_that_fits(128, 1e9, 10e9, 11e9)


def test_params_tables_read_the_costs():
    c2 = cost.ModelCost("c2", 26_000_000, 425.5e9, 1259e9, {"none": 2**30, "blocks": 2**29})
    table = format_cost_table([c2])
    assert table.splitlines()[1].split() == [
        "c2", "26.00M", "27.1M", "425.5", "1259.0", "1024.0", "512.0"
    ]  # fmt: skip
    devices = format_device_table(c2, {"none": 2**30, "blocks": 2**29}, 128, 1)
    h200 = next(line for line in devices.splitlines() if line.split()[:2] == ["H200", "989"])
    assert h200.split() == ["H200", "989", "141", "354", "64", "128"]
    saved = {"none": 2**30, "blocks": 2**29, "boundaries": 2**28}
    peaks = {"none": 2**31, "blocks": 2**30, "boundaries": 2**29}
    flops = {"none": 1259e9, "blocks": 1259e9 * 1.25, "boundaries": 1259e9 * 1.5}
    rows = format_policy_table(c2, saved, peaks, flops).splitlines()[2:]
    assert [r.split() for r in rows] == [
        ["none", "1024", "2048", "1259.0", "+0.0%"],
        ["blocks", "512", "1024", "1573.8", "+25.0%"],
        ["boundaries", "256", "512", "1888.5", "+50.0%"],
    ]
