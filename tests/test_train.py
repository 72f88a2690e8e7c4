"""trainer.train / objective / checkpoint: one CPU step per model kind, exact resume, DDP on gloo.

Tiny shapes throughout: T=8 frames of 32x32, width 1/16 networks, 16 mel bands.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import socket
from itertools import islice
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import webdataset as wds

from blendkit.codec import decode_video, encode_alpha, encode_audio, encode_video
from blendkit.format import SHARD_FORMAT, Geometry
from trainer import checkpoint as ckpt
from trainer.config import ConfigError, TrainConfig, apply_overrides, load_config
from trainer.data.device import prepare
from trainer.logger import DEVICE_KEYS
from trainer.losses import video_loss
from trainer.metrics import identity_loss
from trainer.models import ModelOutput, build_model
from trainer.models.registry import MODEL_NAMES
from trainer.objective import compute_loss, model_inputs
from trainer.optim import make_optimizer
from trainer.pixels import UNIT
from trainer.run_record import TrainedOn, read_record
from trainer.train import train
from trainer.train_state import params_digest

torch.set_num_threads(1)

T, S, N_MELS, FRAMES = 8, 32, 16, 16


def synthetic_batches(n: int, batch: int, seed: int) -> list[dict]:
    """``n`` batches of transparent blends of random smooth clips, with random log-mels."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        base = torch.rand(2 * batch, 3, T, S // 4, S // 4, generator=g)
        clips = torch.nn.functional.interpolate(base, size=(T, S, S), mode="trilinear")
        v1, v2 = clips[:batch], clips[batch:]
        out.append(
            {
                "mix": 0.5 * v1 + 0.5 * v2,
                "v1": v1,
                "v2": v2,
                "alpha": torch.full((batch, 1, T, S, S), 0.5),
                "a1": torch.randn(batch, 1, N_MELS, FRAMES, generator=g),
                "a2": torch.randn(batch, 1, N_MELS, FRAMES, generator=g),
                "has_a1": torch.ones(batch, dtype=torch.bool),
                "has_a2": torch.ones(batch, dtype=torch.bool),
                "blend": ["transparent"] * batch,
                "key": [f"{i:09d}" for i in range(batch)],
            }
        )
    return out


def small_cfg(run: Path, kind: str = "c2", *overrides: str) -> TrainConfig:
    base = [
        f"model_name={kind}",
        f"run_dir={run}",
        "model.width=0.0625",
        f"model.n_mels={N_MELS}",
        f"data.n_mels={N_MELS}",
        "progress=false",
        "log_every=1",
        "video_every=1",
        "device=cpu",
        "data.frame_stride=1",
        "pixel_pool=1",
    ]
    return load_config("tiny", [*base, *overrides])


def metrics(run: Path) -> list[dict]:
    """The rows of metrics.jsonl without the device's timings (``DEVICE_KEYS``)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in DEVICE_KEYS} for row in rows]


# ----------------------------------------------------------------------------- objective


def test_objective_terms_are_the_papers_equations():
    (batch,) = synthetic_batches(1, 2, seed=3)
    v1, v2 = batch["v1"], batch["v2"]
    swapped = torch.stack([v2, v1], dim=1)  # (B, 2, 3, T, H, W): perfect, in the other order
    l12 = video_loss(v1, v2).mean()  # l(V1, V2) > 0

    loss, terms = compute_loss("c2", batch, ModelOutput(swapped))
    assert loss.item() == 0.0 and set(terms) == {"loss", "pil"}  # eq. 4 is order free

    loss, terms = compute_loss("c3_det", batch, ModelOutput(swapped))  # eq. 5 is not
    torch.testing.assert_close(loss, 2 * l12)
    assert terms["control_acc"].item() == 0.0  # O_1 holds V2, not V1

    scores = torch.stack([video_loss(v2, v1), torch.zeros(2)], dim=1)  # exact l(V1, O_i)
    loss, terms = compute_loss("c3_internal", batch, ModelOutput(swapped, scores=scores))
    assert loss.item() == 0.0 and terms["reg"].item() == 0.0  # eq. 4 + eq. 6
    assert terms["control_acc"].item() == 1.0  # argmin s points at O_2 = V1

    loss, terms = compute_loss("c3_internal", batch, ModelOutput(swapped, scores=scores + 0.25))
    torch.testing.assert_close(terms["reg"], torch.tensor(0.5))  # sum over n = 2 of |0.25|

    pred = torch.stack([batch["mix"], batch["mix"]], dim=1)  # identity predictor
    loss, terms = compute_loss("centrifuge_pc", batch, ModelOutput(swapped, predictor=pred))
    torch.testing.assert_close(loss, identity_loss(batch["mix"], v1, v2).mean())
    assert terms["pil"].item() == 0.0

    assert model_inputs("c2", batch)[1] is None
    assert model_inputs("c3_det", batch)[1] is batch["a1"]


def test_prepare_pools_pixels():
    video = torch.arange(2 * 3 * 4 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4, 4)
    batch = {"mix": video, "v1": video + 1, "a1": torch.ones(2, 1, 8, 5), "key": ["a", "b"]}
    out = prepare(batch, torch.device("cpu"), pixel_pool=2, pixel_range=UNIT, channels_last=False)
    assert out["mix"].shape == (2, 3, 4, 2, 2) and out["key"] == ["a", "b"]
    # frame 2 of channel 0 of sample 0: values 32..47; its top-left 2x2 block is 32, 33, 36, 37
    assert out["mix"][0, 0, 2, 0, 0].item() == (32 + 33 + 36 + 37) / 4
    torch.testing.assert_close(out["v1"], out["mix"] + 1, rtol=0, atol=0)
    assert torch.equal(out["a1"], batch["a1"])  # audio untouched


# ----------------------------------------------------------------------------- one step per kind

EXPECTED_TERMS = {
    "centrifuge": {"pil"},
    "centrifuge_pc": {"pil", "pil_predictor"},
    "c2_nomask": {"pil"},
    "c2": {"pil"},
    "c3_det": {"det", "control_acc"},
    "c3_internal": {"pil", "reg", "control_acc"},
}


@pytest.mark.parametrize("kind", MODEL_NAMES)
def test_one_cpu_step_per_model_kind(tmp_path, kind):
    cfg = small_cfg(tmp_path / kind, kind, "optim.batch=8", "optim.steps=1")
    torch.manual_seed(cfg.seed)
    initial = params_digest(build_model(kind, cfg.model))
    summary = train(cfg, batches=synthetic_batches(1, 8, seed=0))
    (row,) = metrics(tmp_path / kind)
    assert set(row) == {"step", "lr", "loss", "identity", "loss_unit"} | EXPECTED_TERMS[kind]
    assert math.isfinite(summary["final_loss"]) and summary["final_loss"] == row["loss"]
    assert summary["steps"] == 1 and summary["params_sha256"] != initial
    parts = sum(row[k] for k in EXPECTED_TERMS[kind] if k != "control_acc")
    assert row["loss"] == pytest.approx(parts, rel=1e-6)
    assert ckpt.latest(tmp_path / kind) == ckpt.checkpoint_path(tmp_path / kind, 1)
    assert list((tmp_path / kind / "tb").glob("events.out.tfevents.*"))


# ----------------------------------------------------------------------------- resume


class Interrupted(Exception):
    pass


def interrupted_after(batches: list[dict], n: int):
    yield from batches[:n]
    raise Interrupted(f"killed after {n} batches")


def test_resume_continues_the_exact_same_run(tmp_path):
    # Paper optimiser (SGD + momentum, a milestone inside the run), 2 accumulation micro-steps.
    opts = ["optim.name=sgd", "optim.lr=0.05", "optim.milestones=2,5", "optim.batch=4"]
    opts += ["optim.grad_accum=2", "optim.steps=6", "ckpt_every=3"]
    data = synthetic_batches(12, 2, seed=1)
    full = train(small_cfg(tmp_path / "full", "c2", *opts), batches=data)

    cfg = small_cfg(tmp_path / "cut", "c2", *opts)
    with pytest.raises(Interrupted):
        train(cfg, batches=interrupted_after(data, 7))  # dies in step 4, checkpoint at 3
    assert [r["step"] for r in metrics(tmp_path / "cut")] == [1, 2, 3]
    resumed = train(cfg, batches=data)

    assert resumed["start_step"] == 3 and resumed["steps"] == 6
    full_rows, cut_rows = metrics(tmp_path / "full"), metrics(tmp_path / "cut")
    lrs = [r["lr"] for r in full_rows]
    assert lrs == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.005, 0.0005], rel=1e-12)
    curve = torch.tensor([[r["loss"], r["pil"]] for r in full_rows], dtype=torch.float64)
    cut = torch.tensor([[r["loss"], r["pil"]] for r in cut_rows], dtype=torch.float64)
    torch.testing.assert_close(cut, curve, rtol=0, atol=0)
    assert full_rows == cut_rows
    assert resumed["params_sha256"] == full["params_sha256"]

    with pytest.raises(ConfigError, match="different config \\(optim.lr\\)"):
        train(small_cfg(tmp_path / "cut", "c2", *opts, "optim.lr=0.1"), batches=data)


def test_activation_checkpointing_changes_nothing_but_memory(tmp_path):
    data = synthetic_batches(2, 2, seed=4)
    runs = {}
    for flag in ("false", "true"):
        cfg = small_cfg(tmp_path / flag, "c2", "optim.batch=2", "optim.steps=2")
        runs[flag] = train(apply_overrides(cfg, [f"activation_checkpointing={flag}"]), batches=data)
    assert metrics(tmp_path / "true") == metrics(tmp_path / "false")
    assert runs["true"]["params_sha256"] == runs["false"]["params_sha256"]
    with_ckpt, without = (ckpt.load(ckpt.latest(tmp_path / f))["model"] for f in ("true", "false"))
    torch.testing.assert_close(with_ckpt, without, rtol=0, atol=0)  # BN stats updated once


def test_compile_with_activation_checkpointing_trains_like_eager(tmp_path, monkeypatch):
    # The crash was in AOTAutograd, before code generation: "aot_eager" reproduces it without
    # inductor's minutes of C++ compilation on this CPU. By hand with inductor (8 min here): after
    # one step the running means equal those of compile without checkpointing exactly.
    import torch._dynamo

    import trainer.step

    monkeypatch.setattr(trainer.step, "COMPILE_BACKEND", "aot_eager")
    data = synthetic_batches(3, 2, seed=4)
    opts = ["optim.batch=2", "optim.steps=3", "model.norm=batch"]
    eager = small_cfg(tmp_path / "eager", "centrifuge", *opts)
    both = apply_overrides(eager, [f"run_dir={tmp_path / 'both'}", "compile=true"])
    both = apply_overrides(both, ["activation_checkpointing=true"])
    try:
        train(eager, batches=data)
        train(both, batches=data)
    finally:
        torch._dynamo.reset()
    rows = [torch.tensor([r["loss"] for r in metrics(tmp_path / f)]) for f in ("both", "eager")]
    torch.testing.assert_close(*rows, rtol=1e-5, atol=0)
    compiled, plain = (ckpt.load(ckpt.latest(tmp_path / f))["model"] for f in ("both", "eager"))
    stats = [k for k in plain if "running_" in k or "num_batches_tracked" in k]
    assert stats and all(compiled[k].equal(plain[k]) for k in stats if "num_batches" in k)
    for k in stats:  # BatchNorm's running stats updated once per forward, not per recomputation
        torch.testing.assert_close(compiled[k], plain[k], rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- checkpoints


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")


def test_checkpoint_save_load_round_trip(tmp_path):
    cfg = small_cfg(tmp_path, "c2", "optim.name=sgd")
    torch.manual_seed(0)
    model = build_model("c2", cfg.model)
    optimizer = make_optimizer(cfg.optim, model)
    (batch,) = synthetic_batches(1, 2, seed=0)
    compute_loss("c2", batch, model(batch["mix"]))[0].backward()
    optimizer.step()  # momentum buffers exist now
    payload = {
        "step": 7,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": [ckpt.rng_state()],
    }
    for step in (3, 7, 5):
        ckpt.save(ckpt.checkpoint_path(tmp_path, step), payload | {"step": step})
    expected_draws = (np.random.rand(3), torch.rand(3))

    path = ckpt.latest(tmp_path)
    assert path == ckpt.checkpoint_path(tmp_path, 7)
    state = ckpt.load(path)
    ckpt.set_rng_state(state["rng"][0])
    torch.testing.assert_close((np.random.rand(3), torch.rand(3)), expected_draws, rtol=0, atol=0)

    torch.manual_seed(1)
    fresh = build_model("c2", cfg.model)
    fresh_opt = make_optimizer(cfg.optim, fresh)
    fresh.load_state_dict(state["model"])
    fresh_opt.load_state_dict(state["optimizer"])
    torch.testing.assert_close(fresh.state_dict(), model.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(
        fresh_opt.state_dict()["state"], optimizer.state_dict()["state"], rtol=0, atol=0
    )

    assert ckpt.prune(tmp_path, keep=2) == [ckpt.checkpoint_path(tmp_path, 3)]
    with pytest.raises(RuntimeError, match="disk full"):  # nothing half-written remains
        ckpt.save(ckpt.checkpoint_path(tmp_path, 9), {"step": 9, "bad": Unpicklable()})
    names = sorted(p.name for p in (tmp_path / ckpt.CHECKPOINT_DIR).iterdir())
    assert names == ["step-000000005.pt", "step-000000007.pt"]


# ----------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, run: str, out: str) -> None:
    import os

    torch.set_num_threads(1)
    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    cfg = small_cfg(Path(run), "c2", "optim.batch=4", "optim.steps=2")
    summary = train(cfg, batches=synthetic_batches(2, 2, seed=10 + rank))  # rank's own data
    Path(out, f"rank{rank}.json").write_text(json.dumps(summary))


def test_ddp_two_ranks_on_gloo_end_with_identical_weights(tmp_path):
    run = tmp_path / "run"
    args = (_free_port(), str(run), str(tmp_path))
    # fork: the children inherit the imported modules (torch.optim alone imports for seconds)
    mp.start_processes(_ddp_worker, args=args, nprocs=2, join=True, start_method="fork")
    s0, s1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert s0["params_sha256"] == s1["params_sha256"]
    assert s0["final_loss"] == s1["final_loss"]  # logged terms are averaged over ranks
    state = ckpt.load(ckpt.latest(run))
    assert len(state["rng"]) == 2 and state["data"]["batches"] == 2
    cfg = small_cfg(run, "c2")
    model = build_model("c2", cfg.model)
    model.load_state_dict(state["model"])
    assert params_digest(model) == s0["params_sha256"]
    assert json.loads((run / "config.json").read_text())["data"]["batch_size"] == 2  # 4 / 2 ranks
    assert [r["step"] for r in metrics(run)] == [1, 2]


# ----------------------------------------------------------------------------- real shards

RATE, FPS = 16000, 25.0


def _shard_sample(index: int, rng: np.random.Generator) -> dict[str, bytes]:
    base = rng.integers(0, 256, (2, T, S // 8, S // 8, 3)).astype(np.uint8)
    clips = base.repeat(8, axis=2).repeat(8, axis=3)  # blocky clips survive H.264 well
    v1_bytes, v2_bytes = (encode_video(c, FPS, 10, preset="ultrafast") for c in clips)
    v1, v2 = (decode_video(b).astype(np.float32) for b in (v1_bytes, v2_bytes))
    mix = np.round(0.5 * v1 + 0.5 * v2).astype(np.uint8)
    n_audio = round(T / FPS * RATE)
    tone = (0.3 * np.sin(np.arange(n_audio) * 0.01 * (index + 1))).astype(np.float32)
    meta = {"key": f"{index:09d}", "index": index, "blend": "transparent", "fps": FPS}
    meta |= {"frames": T, "height": S, "width": S, "audio_rate": RATE, "audio_samples": n_audio}
    return {
        "__key__": f"{index:09d}",
        "json": json.dumps(meta).encode(),
        "mix.mp4": encode_video(mix, FPS, 4, preset="ultrafast"),
        "v1.mp4": v1_bytes,
        "v2.mp4": v2_bytes,
        "alpha.npz": encode_alpha(np.full((T, S, S), 0.5, np.float32)),
        "a1.flac": encode_audio(tone, RATE, codec="flac"),
    }


def _write_shards(shards: Path, n_shards: int = 2, per_shard: int = 3) -> Path:
    rng = np.random.default_rng(0)
    shards.mkdir()
    for s in range(n_shards):
        with wds.TarWriter(str(shards / f"shard-{s:06d}.tar")) as sink:
            for i in range(per_shard):
                sink.write(_shard_sample(per_shard * s + i, rng))
    return shards


def test_resumed_stream_starts_at_its_segment_and_replays_nothing(tmp_path, monkeypatch):
    from trainer.config import segment_batches
    from trainer.data.loader import Loader
    from trainer.data.stream import data_stream

    shards = _write_shards(tmp_path / "shards")
    opts = [f"data.shards={shards}", "data.workers=0", "data.shuffle_buffer=4", "optim.batch=2"]
    cfg = small_cfg(tmp_path / "run", "c2", *opts, "ckpt_every=3")
    assert segment_batches(cfg) == 3
    rank = {"rank": 0, "world_size": 1, "segment": segment_batches(cfg)}
    whole = [b["key"] for b in islice(data_stream(cfg.data, **rank), 10)]
    started = []
    real = Loader.iter_epoch
    monkeypatch.setattr(Loader, "iter_epoch", lambda self, e: (started.append(e), real(self, e))[1])
    resumed = [b["key"] for b in islice(data_stream(cfg.data, **rank, start=6), 4)]
    assert resumed == whole[6:]  # the same micro-batches as the uninterrupted stream
    assert started == [2, 3]  # segments 0 and 1 (batches 0-5) were never decoded again
    assert len({tuple(k) for k in whole}) > 3  # segments differ: not one pass repeated


def test_train_from_shards_through_make_loader(tmp_path):
    from trainer.data import make_loader

    shards = _write_shards(tmp_path / "shards")
    opts = [f"data.shards={shards}", f"val_shards={shards}", "val_batches=1", "data.workers=0"]
    opts += ["data.shuffle_buffer=4", "optim.batch=2", "eval_every=2", "ckpt_every=2"]
    full = train(small_cfg(tmp_path / "full", "c3_internal", *opts, "optim.steps=4"))
    # the same run in two calls: 2 steps, then extended to 4 (optim.steps may change on resume)
    train(small_cfg(tmp_path / "split", "c3_internal", *opts, "optim.steps=2"))
    split = train(small_cfg(tmp_path / "split", "c3_internal", *opts, "optim.steps=4"))

    assert full["steps"] == split["steps"] == 4 and split["start_step"] == 2
    assert math.isfinite(full["final_loss"])
    assert metrics(tmp_path / "full") == metrics(tmp_path / "split")  # exact, through the loader
    assert full["params_sha256"] == split["params_sha256"]

    val_cfg = dataclasses.replace(full_cfg_data(shards), batch_size=2)
    raw = next(iter(make_loader(val_cfg)))
    first = prepare(raw, torch.device("cpu"), pixel_pool=1, pixel_range=UNIT, channels_last=False)
    expected = identity_loss(first["mix"], first["v1"], first["v2"]).mean().item()
    # computed in [0, 1], reported in the paper's unit (trainer.pixels): twice as much
    assert full["val"]["identity"] == pytest.approx(2 * expected, rel=1e-6)
    assert first["a1"].shape == (2, 1, N_MELS, 5120 // 160 + 1) and bool(first["has_a1"].all())
    rows = [json.loads(x) for x in (tmp_path / "full" / "val.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    # the run records what it was trained on, read from its first shard, in every checkpoint too
    record = json.loads((tmp_path / "full" / "trained_on.json").read_text())
    assert record == {
        "geometry": {"frames": T, "fps": FPS, "height": S, "width": S, "audio_rate": RATE},
        "geometry_source": f"read from {shards / 'shard-000000.tar'}",
        "frame_stride": 1,
        "pixel_pool": 1,
        "shard_format": SHARD_FORMAT,
        "pixel_range": UNIT,
    }
    assert ckpt.load(ckpt.latest(tmp_path / "full"))["trained_on"] == record


def test_injected_batches_record_the_geometry_given_or_say_it_is_unknown(tmp_path):
    data = synthetic_batches(2, 2, seed=5)
    cfg = small_cfg(tmp_path / "none", "c2", "optim.batch=2", "optim.steps=1")
    train(cfg, batches=data)
    record = TrainedOn.from_dict(json.loads((tmp_path / "none" / "trained_on.json").read_text()))
    assert record.geometry is None and record.geometry_source.startswith("unknown: injected")
    assert (record.frame_stride, record.pixel_pool, record.shard_format) == (1, 1, None)
    with pytest.raises(ValueError, match="the clip geometry is unknown: injected batches"):
        read_record(tmp_path / "none")  # what evaluation calls: refused, saying why

    given = Geometry(frames=T, fps=FPS, height=S, width=S, audio_rate=RATE)
    cfg = small_cfg(tmp_path / "given", "c2", "optim.batch=2", "optim.steps=1")
    train(cfg, batches=data, geometry=given)
    record = read_record(tmp_path / "given")
    assert record.geometry == given and record.geometry_source.startswith("given by the caller")
    assert record.model_input == given
    tiny_seen = TrainedOn(Geometry(64, 25.0, 128, 128, RATE), "x", 8, 4, 4).model_input
    assert tiny_seen == Geometry(8, 3.125, 32, 32, RATE)  # every 8th frame, 4x4 pixels pooled
    other = dataclasses.replace(given, fps=12.5)
    longer = apply_overrides(cfg, ["optim.steps=2"])
    with pytest.raises(ConfigError, match="was trained on clips of"):
        train(longer, batches=data, geometry=other)  # a resume on other clips is refused


def full_cfg_data(shards: Path):
    """The validation stream the trainer reads: one pass, in order."""
    from trainer.data import DataConfig

    return DataConfig(
        shards=str(shards), n_mels=N_MELS, workers=0, resampled=False, shuffle_buffer=0
    )


def test_training_step_benchmark_covers_every_model():
    from bench.train import markdown, step_times

    rows = step_times(repeats=1)
    assert [r["model"] for r in rows] == list(MODEL_NAMES)
    assert all(r["step_s"] > 0 and r["params"] > 0 for r in rows)
    assert markdown(rows).count("\n| ") == len(MODEL_NAMES) + 1  # header + one row per model


def _ddp_shard_worker(rank: int, port: int, run: str, shards: str, out: str) -> None:
    import os

    import trainer.data.stream

    torch.set_num_threads(1)
    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    real, seen = trainer.data.stream.make_loader, []

    def recording_loader(cfg, rank=0, world_size=1, **kwargs):  # the trainer's, keys written down
        loader = real(cfg, rank=rank, world_size=world_size, **kwargs)

        class Recorded:
            def __iter__(self):
                for batch in loader:
                    seen.extend(batch["key"])
                    yield batch

            def __getattr__(self, name):
                return getattr(loader, name)

        return Recorded()

    trainer.data.stream.make_loader = recording_loader
    opts = [f"data.shards={shards}", "data.workers=0", "data.resampled=false", "data.remix=false"]
    opts += ["data.augment=false", "data.shuffle_buffer=0", "optim.batch=4", "optim.steps=2"]
    summary = train(small_cfg(Path(run), "c2", *opts))
    Path(out, f"rank{rank}.json").write_text(json.dumps({"summary": summary, "keys": seen}))


def test_ddp_ranks_read_disjoint_shards_and_end_with_identical_weights(tmp_path):
    rng = np.random.default_rng(1)
    shards = tmp_path / "shards"
    shards.mkdir()
    for s in range(4):  # 4 shards of 2 samples: key index // 2 is the shard
        with wds.TarWriter(str(shards / f"shard-{s:06d}.tar")) as sink:
            for i in range(2):
                sink.write(_shard_sample(2 * s + i, rng))
    args = (_free_port(), str(tmp_path / "run"), str(shards), str(tmp_path))
    mp.start_processes(_ddp_shard_worker, args=args, nprocs=2, join=True, start_method="fork")
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    shards_of = [{int(k) // 2 for k in r["keys"]} for r in (r0, r1)]
    assert shards_of == [{0, 2}, {1, 3}]  # split_by_node: every other shard, disjoint
    assert sorted(r0["keys"] + r1["keys"]) == [f"{i:09d}" for i in range(8)]
    assert r0["summary"]["params_sha256"] == r1["summary"]["params_sha256"]


def test_schedule_blends_stretches_the_run_and_its_saved_config_resumes(tmp_path):
    shards = _write_shards(tmp_path / "shards")  # 6 blends
    opts = [f"data.shards={shards}", "data.workers=0", "optim.batch=2", "ckpt_every=1"]
    opts += ["optim.schedule_blends=3", "optim.steps=1", "optim.milestones=1"]
    first = train(small_cfg(tmp_path / "run", "c2", *opts))
    assert (first["start_step"], first["steps"]) == (0, 2)  # 1 step for 3 blends: 2 for 6
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["optim"]
    assert (saved["steps"], saved["milestones"], saved["schedule_blends"]) == (2, [2], 0)
    again = train(small_cfg(tmp_path / "run", "c2", *opts))  # resolved the same: it is finished
    assert (again["start_step"], again["steps"]) == (2, 2)
    longer = train(
        small_cfg(tmp_path / "run", "c2", *opts[:-2], "optim.steps=2", "optim.milestones=1")
    )
    assert (longer["start_step"], longer["steps"]) == (2, 4)


# ----------------------------------------------------------------------------- object stores


def _to_memory(shards: Path, root: str) -> str:
    """Copy a shard folder into fsspec's in-process memory filesystem; its folder URL."""
    fs = fsspec.filesystem("memory")
    for path in sorted(shards.glob("*.tar")):
        fs.pipe(f"{root}/{path.name}", path.read_bytes())
    return f"memory://{root}"


def test_train_from_file_and_memory_urls_reads_the_same_batches(tmp_path):
    """``data.shards`` and ``val_shards`` as a ``file://`` folder URL, a ``memory://`` folder
    URL and brace ranges of them: the same stream as the local path, read by a forked loader
    worker (``data.workers=1``: the memory store is filled before the loader forks)."""
    shards = _write_shards(tmp_path / "shards")
    memory = _to_memory(shards, f"/blendkit-train-{tmp_path.name}")
    opts = ["val_batches=1", "data.workers=1", "data.shuffle_buffer=4", "optim.batch=2"]
    opts += ["eval_every=2", "ckpt_every=2", "optim.steps=2"]
    specs = {
        "local": (str(shards), str(shards)),
        "file": (f"file://{shards}", f"file://{shards}/shard-{{000000..000001}}.tar"),
        "memory": (memory, f"{memory}/shard-{{000000..000001}}.tar"),
    }
    try:
        for name, (train_spec, val_spec) in specs.items():
            cfg = small_cfg(tmp_path / name, "c2", f"data.shards={train_spec}", *opts)
            train(apply_overrides(cfg, [f"val_shards={val_spec}"]))
        assert metrics(tmp_path / "file") == metrics(tmp_path / "local")
        assert metrics(tmp_path / "memory") == metrics(tmp_path / "local")
        val = [(tmp_path / n / "val.jsonl").read_text() for n in specs]
        assert val[0] == val[1] == val[2] and val[0]
        assert read_record(tmp_path / "memory").geometry_source == (
            f"read from {memory}/shard-000000.tar"
        )
        with pytest.raises(
            ConfigError, match=r"data.shards: shard memory://.*002.tar does not exist and 1 more"
        ):
            train(
                small_cfg(
                    tmp_path / "bad", "c2", f"data.shards={memory}/shard-{{000000..000003}}.tar"
                )
            )
    finally:
        fsspec.filesystem("memory").rm(memory.removeprefix("memory://"), recursive=True)


def test_check_shards_names_missing_shards_and_missing_protocol_packages(tmp_path, monkeypatch):
    from trainer.data.stream import check_shards

    shards = _write_shards(tmp_path / "shards", n_shards=1, per_shard=1)
    check_shards("data.shards", f"file://{shards}/shard-{{000000..000000}}.tar")
    with pytest.raises(ConfigError, match=r"val_shards: shard file://.*001.tar does not exist and"):
        check_shards("val_shards", f"file://{shards}/shard-{{000000..000002}}.tar")
    with pytest.raises(ConfigError, match="data.shards: no shards found for .*no such file"):
        check_shards("data.shards", str(tmp_path / "absent"))
    monkeypatch.setitem(  # a protocol whose package is not installed (as s3fs, gcsfs may not be)
        importlib.import_module("fsspec.registry").known_implementations,
        "nosuchfs",
        {"class": "nosuchfs_package.FileSystem", "err": "Install nosuchfs_package to read it"},
    )
    with pytest.raises(ConfigError) as info:
        check_shards("data.shards", "nosuchfs://bucket/k600/shard-{000000..000009}.tar")
    assert str(info.value) == (
        "data.shards: nosuchfs://bucket/k600/shard-000000.tar: Install nosuchfs_package to read it"
    )
