"""The trainer on its device, checked on the CPU: the device choice, pinned batches, DDP on
CUDA (device_id, SyncBatchNorm), no host reads inside a step, the logged samples/s, MFU and
memory, and ``optim.grad_accum=auto`` on a stated device memory."""

from __future__ import annotations

import json

import pytest
import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm
from typer.testing import CliRunner

import trainer.distributed
import trainer.train
from blendkit.format import Geometry
from tests.test_train import N_MELS, S, T, _write_shards, metrics, small_cfg, synthetic_batches
from trainer import cost
from trainer.cli import app
from trainer.config import ConfigError, apply_overrides, load_config, paper
from trainer.data import DataConfig, make_loader
from trainer.devices import micro_batch_that_fits, training_state_bytes
from trainer.distributed import pick_device, setup_distributed
from trainer.logger import DEVICE_KEYS
from trainer.models import build_model, count_parameters
from trainer.run_cost import Throughput
from trainer.step import sync_batchnorm
from trainer.train import train

torch.set_num_threads(1)

RATE, FPS = 16000, 25.0
GEOMETRY = Geometry(frames=T, fps=FPS, height=S, width=S, audio_rate=RATE)


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- device choice


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_asked_for_and_unusable_is_a_one_line_error(no_cuda, monkeypatch, tmp_path):
    monkeypatch.setattr(trainer.distributed, "gpu_device_files", lambda: [])
    with pytest.raises(ConfigError, match="^device=cuda: no GPU on this machine; set device=cpu"):
        pick_device("cuda")
    cfg = small_cfg(tmp_path / "run", "c2", "device=cuda", "optim.steps=1", "optim.batch=2")
    with pytest.raises(ConfigError, match="device=cuda"):
        train(cfg, batches=synthetic_batches(1, 2, seed=0))
    shards = _write_shards(tmp_path / "shards", n_shards=1, per_shard=1)
    args = ["train", "--shards", str(shards), "--run", str(tmp_path / "cli"), "device=cuda"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: device=cuda: no GPU on this machine; set device=cpu to train on the CPU"
    ]


def test_auto_falls_back_to_the_cpu_only_where_there_is_no_gpu(no_cuda, monkeypatch):
    monkeypatch.setattr(trainer.distributed, "gpu_device_files", lambda: [])
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(trainer.distributed, "gpu_device_files", lambda: ["/dev/nvidia0"])
    with pytest.raises(ConfigError, match="^device=auto: a GPU is there \\(/dev/nvidia0\\) but"):
        pick_device("auto")  # present but unusable: no silent training on the CPU
    assert pick_device("cpu") == torch.device("cpu")  # asked for explicitly


def test_nccl_is_bound_to_the_ranks_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set", device)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d, started = setup_distributed("auto")
    gpu = torch.device("cuda", 1)
    assert started and d.device == gpu and (d.rank, d.world_size) == (1, 2)
    assert calls == [("set", gpu), (("nccl",), {"rank": 1, "world_size": 2, "device_id": gpu})]
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ConfigError, match="LOCAL_RANK 2 but only 2 GPU"):
        pick_device("cuda", 2)


# ----------------------------------------------------------------------------- loader, DDP


def test_the_loader_pins_its_batches_when_asked(tmp_path, monkeypatch):
    shards = _write_shards(tmp_path / "shards", n_shards=1, per_shard=1)
    cfg = DataConfig(shards=str(shards), n_mels=N_MELS, workers=0)
    assert make_loader(cfg).data_loader(0).pin_memory is False
    assert make_loader(cfg, pin_memory=True).data_loader(0).pin_memory is True
    asked = []  # the trainer asks for pinned batches exactly when it trains on CUDA
    real = trainer.train.data_stream
    monkeypatch.setattr(
        trainer.train,
        "data_stream",
        lambda *a, **kw: (asked.append(kw["pin_memory"]), real(*a, **kw))[1],
    )
    train(small_cfg(tmp_path / "run", "c2", "optim.steps=1", "optim.batch=2"),
          batches=synthetic_batches(1, 2, seed=0))  # fmt: skip
    assert asked == [False]


def test_sync_batchnorm_converts_in_place_on_cuda_only():
    cfg = small_cfg(None, "c2", "model.norm=batch").model
    model = build_model("c2", cfg)
    params, keys = list(model.parameters()), list(model.state_dict())
    assert sync_batchnorm(model, cuda=False) is False
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert sync_batchnorm(model, cuda=True) is True
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert list(model.parameters()) == params  # the optimiser's tensors: the same objects
    assert list(model.state_dict()) == keys  # checkpoints load either way
    grouped = build_model("c2", small_cfg(None, "c2").model)  # tiny: GroupNorm, nothing to sync
    assert sync_batchnorm(grouped, cuda=True) is False
    assert paper().sync_batchnorm  # on by default (trainer.step says why)


# ----------------------------------------------------------------------------- host reads


def test_a_step_reads_nothing_back_and_the_identity_once_per_interval(tmp_path, monkeypatch):
    reads, identities = [], []
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, _name=name, **kw):
            frame = __import__("sys")._getframe(1)
            if "/trainer/" in frame.f_code.co_filename:  # the trainer's own reads
                reads.append((_name, frame.f_code.co_filename, frame.f_lineno))
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_identity = trainer.train.identity_term
    monkeypatch.setattr(
        trainer.train,
        "identity_term",
        lambda batch: (identities.append(1), real_identity(batch))[1],
    )
    counts = {}
    for steps in (2, 6):  # one log interval, one checkpoint either way
        opts = [f"optim.steps={steps}", f"log_every={steps}", "optim.batch=4", "optim.grad_accum=2"]
        cfg = small_cfg(
            tmp_path / str(steps), "c3_internal", *opts, "optim.name=sgd", "video_every=1000"
        )
        reads.clear()
        train(cfg, batches=synthetic_batches(2 * steps, 2, seed=1))
        counts[steps] = len(reads)
    assert counts[6] == counts[2]  # no read per step or micro-step
    assert identities == [1, 1]  # once per log interval, not per micro-step (it was 4 and 12)
    last = metrics(tmp_path / "6")
    assert "identity" in last[-1] and all("identity" not in r for r in last[:-1])


# ----------------------------------------------------------------------------- logged measures


def test_samples_per_s_and_mfu_are_logged_at_each_interval(tmp_path):
    opts = ["optim.steps=4", "log_every=2", "optim.batch=2", "peak_tflops=0.5"]
    cfg = small_cfg(tmp_path / "run", "c2", *opts)
    train(cfg, batches=synthetic_batches(4, 2, seed=2), geometry=GEOMETRY)
    logged = rows(tmp_path / "run")
    closing = [r for r in logged if r["step"] % 2 == 0]
    assert all(set(DEVICE_KEYS) & set(r) == set() for r in logged if r["step"] % 2)
    assert [sorted(set(DEVICE_KEYS) & set(r)) for r in closing] == [["mfu", "samples_per_s"]] * 2
    clip = cost.Clip(frames=T, size=S, n_mels=N_MELS, audio_frames=round(T / FPS * RATE) // 160 + 1)
    _, flops = cost.train_flops("c2", cfg.model, clip)
    for r in closing:  # the model's FLOPs per sample against the stated peak
        assert r["samples_per_s"] > 0
        assert r["mfu"] == pytest.approx(r["samples_per_s"] * flops / 0.5e12, rel=1e-9)
    assert Throughput(flops, 0.5, world_size=2).mfu(10.0) == pytest.approx(5 * flops / 0.5e12)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/samples_per_s", "train/mfu", "train/identity", "train/loss"} <= tags
    train(apply_overrides(cfg, [f"run_dir={tmp_path / 'cpu'}", "peak_tflops=0"]),
          batches=synthetic_batches(4, 2, seed=2), geometry=GEOMETRY)  # fmt: skip
    assert all("mfu" not in r for r in rows(tmp_path / "cpu"))  # a CPU has no known peak


# ----------------------------------------------------------------------------- grad_accum=auto


def test_grad_accum_auto_picks_the_micro_batch_that_fits(tmp_path):
    base = small_cfg(tmp_path / "run", "c2", "optim.batch=8", "optim.steps=2", "ckpt_every=2")
    clip = cost.Clip(frames=T, size=S, n_mels=N_MELS, audio_frames=round(T / FPS * RATE) // 160 + 1)
    per_sample = 2 * cost.peak_per_sample("c2", base.model, clip, cost.NO_CHECKPOINTING)  # fp32
    with torch.device("meta"):
        fixed = training_state_bytes(count_parameters(build_model("c2", base.model)), 2)  # Adam
    memory_gb = (fixed + 2.5 * per_sample) / 0.9 / 1e9  # room for 2 samples, not 4
    assert micro_batch_that_fits(8, per_sample, fixed, memory_gb * 1e9) == 2
    cfg = apply_overrides(base, ["optim.grad_accum=auto", f"device_memory_gb={memory_gb}"])
    train(cfg, batches=synthetic_batches(8, 2, seed=3), geometry=GEOMETRY)
    saved = load_config(str(tmp_path / "run" / "config.json"))
    assert (saved.optim.grad_accum, saved.data.batch_size) == (4, 2)  # 8 = 4 micro-batches of 2
    more = apply_overrides(cfg, ["optim.steps=3", "device_memory_gb=100"])  # would fit all 8
    summary = train(more, batches=synthetic_batches(12, 2, seed=3), geometry=GEOMETRY)
    assert summary["start_step"] == 2  # resumed, keeping its accumulation (and data position)
    assert load_config(str(tmp_path / "run" / "config.json")).optim.grad_accum == 4

    cpu = apply_overrides(base, ["optim.grad_accum=auto", f"run_dir={tmp_path / 'cpu'}"])
    with pytest.raises(ConfigError, match="grad_accum=auto on the CPU needs device_memory_gb"):
        train(cpu, batches=synthetic_batches(1, 2, seed=0), geometry=GEOMETRY)
    unknown = apply_overrides(cpu, ["device_memory_gb=1"])
    with pytest.raises(ConfigError, match="grad_accum=auto: the clip geometry is unknown"):
        train(unknown, batches=synthetic_batches(1, 2, seed=0))
