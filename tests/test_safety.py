"""Unit tests of what keeps bad input from ending a run or escaping its folder (issue 14, the
trainer, evaluation and shard-list half); ``tests/test_hostile.py`` runs the same cases against
the command lines.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from blendkit import codec
from blendkit.confine import OutsideError, inside, safe_name, unique_names
from blendkit.format import Geometry
from blendkit.format.layout import PipeRefused, list_shards
from blendkit.limits import DEFAULT_LIMITS, Limits
from tests.media import zip_bomb_npz
from tests.tiny_shards import FPS, RATE, sample_members
from trainer import checkpoint as ckpt
from trainer.config import ConfigError, apply_overrides, load_config, save_config, tiny
from trainer.data.decoding import SampleError, decode, decode_sample
from trainer.data.stats import LoaderStats
from trainer.eval.runs import resolve_device
from trainer.run_dir import RunDir
from trainer.run_record import TrainedOn, check_model_input

CLIP = (16, 32, 32)
GEOMETRY = Geometry(frames=16, fps=FPS, height=32, width=32, audio_rate=RATE)


# ----------------------------------------------------------------------------- shard lists


def test_pipe_lines_and_specs_need_the_opt_in(tmp_path):
    shard = tmp_path / "shard-000000.tar"
    shard.write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# shards\n{shard}\n  pipe:touch {tmp_path}/mark; cat {shard}\n")
    with pytest.raises(PipeRefused, match=r"list\.txt:3: 'pipe:touch .*--allow-pipe"):
        list_shards(listing)
    with pytest.raises(PipeRefused, match="shard spec: 'pipe:cat x' would run a shell command"):
        list_shards("pipe:cat x")
    assert list_shards(listing, allow_pipe=True)[1] == f"pipe:touch {tmp_path}/mark; cat {shard}"
    assert not (tmp_path / "mark").exists()  # listing runs nothing, allowed or not
    (tmp_path / "binary.txt").write_bytes(bytes(range(128, 256)))
    with pytest.raises(ValueError, match="binary.txt: not a shard list"):
        list_shards(tmp_path / "binary.txt")


def test_the_loader_refuses_pipes_unless_the_config_allows_them(tmp_path):
    from trainer.data import DataConfig, make_loader

    (tmp_path / "list.txt").write_text("pipe:cat /dev/null\n")
    data = DataConfig(shards=str(tmp_path / "list.txt"))
    with pytest.raises(PipeRefused, match="list.txt:1"):
        make_loader(data)
    assert make_loader(DataConfig(shards=data.shards, allow_pipe=True)).dataset.shard_list == [
        "pipe:cat /dev/null"
    ]


# ----------------------------------------------------------------------------- output folders


def test_inside_keeps_every_path_under_its_folder(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    assert inside(root, "videos", "example-1.mp4") == root / "videos" / "example-1.mp4"
    for parts in (("..", "x"), ("a", "..", "..", "x"), ("/abs/x",), ("a/../../x",)):
        with pytest.raises(OutsideError, match="outside the output folder"):
            inside(root, *parts)
    (root / "link").symlink_to(tmp_path)  # a link planted in the folder, pointing out of it
    with pytest.raises(OutsideError):
        inside(root, "link", "x")


def test_safe_names_are_plain_and_distinct():
    assert safe_name("c3_internal-tiny.2", "run") == "c3_internal-tiny.2"
    assert safe_name("../../x", "run") == "x"
    assert safe_name("..", "run") == safe_name("", "run") == safe_name("<>", "run") == "run"
    assert safe_name('<img src=x onerror="a()">', "run") == "img_src_x_onerror_a_"
    assert len(safe_name("a" * 500, "run")) == 64
    assert unique_names(["c2", "..", "c2", "a b", "a_b"], "run") == [
        "c2", "run-2", "c2-2", "a_b", "a_b-2",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- checkpoints


class _Evil:
    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (os.system, (f"touch {self.mark}",))


def test_checkpoints_that_do_not_load_are_one_line_errors_and_skipped(tmp_path, caplog):
    for step in (1, 2, 3):
        ckpt.save(ckpt.checkpoint_path(tmp_path, step), {"step": step, "x": torch.ones(2)})
    mark = tmp_path / "PWNED"
    torch.save({"step": 3, "model": _Evil(mark)}, ckpt.checkpoint_path(tmp_path, 3))
    cut = ckpt.checkpoint_path(tmp_path, 2)
    cut.write_bytes(cut.read_bytes()[:200])
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load(ckpt.checkpoint_path(tmp_path, 3))
    message = str(info.value)
    assert "\n" not in message and "step-000000003.pt: not a loadable checkpoint" in message
    assert "refused unread" in message and "posix.system" in message and not mark.exists()
    with caplog.at_level(logging.WARNING, logger="trainer.checkpoint"):
        path, payload = ckpt.newest_loadable(tmp_path)
    assert path == ckpt.checkpoint_path(tmp_path, 1) and payload["step"] == 1
    said = [r.getMessage() for r in caplog.records]
    assert any("step-000000003.pt" in m for m in said) and any(
        "step-000000002.pt" in m for m in said
    )

    def needs_a_model(payload):
        if "model" not in payload:
            raise ckpt.CheckpointError("not a training checkpoint")

    with pytest.raises(ckpt.CheckpointError, match="none of its 3 checkpoints loads"):
        ckpt.newest_loadable(tmp_path, check=needs_a_model)
    torch.save([1, 2], ckpt.checkpoint_path(tmp_path, 1))
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint \\(holds a list\\)"):
        ckpt.load(ckpt.checkpoint_path(tmp_path, 1))
    assert ckpt.newest_loadable(tmp_path / "none") is None


# ----------------------------------------------------------------------------- run folders


def _log(path, rows: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def test_a_torn_last_log_line_is_dropped_other_damage_refused(tmp_path):
    run = RunDir(tmp_path)
    rows = [{"step": s, "loss": 1.0 / s} for s in (1, 2, 3)]
    _log(run.metrics, rows, tail='{"step": 4, "lo')  # killed mid-write
    _log(run.val, rows[:1], tail="\0\0\0")  # a block of zeros after a crash
    run.truncate_logs(2)
    assert run.metrics.read_text() == "".join(json.dumps(r) + "\n" for r in rows[:2])
    assert run.val.read_text() == json.dumps(rows[0]) + "\n"
    _log(run.metrics, rows[:1], tail='not json\n{"step": 2}\n')
    with pytest.raises(ConfigError, match="metrics.jsonl:2: not a log record"):
        run.truncate_logs(2)
    assert "not json" in run.metrics.read_text()  # nothing deleted


def test_a_moved_run_folder_is_the_same_run(tmp_path):
    cfg = apply_overrides(tiny(), [f"run_dir={tmp_path / 'a'}", "data.shards=x"])
    RunDir(tmp_path / "a").start(cfg, TrainedOn(GEOMETRY, "test", 1, 1, None))
    moved = apply_overrides(cfg, [f"run_dir={tmp_path / 'b'}", "data.allow_pipe=true"])
    RunDir(tmp_path / "a").check_resumable(moved)  # no error: where it lies is not its identity
    with pytest.raises(ConfigError, match="different config \\(optim.lr\\)"):
        RunDir(tmp_path / "a").check_resumable(apply_overrides(moved, ["optim.lr=0.1"]))
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="file exists and is not a folder"):
        RunDir(tmp_path / "file").resume_point(torch.device("cpu"))


def test_clips_the_model_cannot_take_are_refused_before_training():
    check_model_input(TrainedOn(GEOMETRY, "test", frame_stride=2, pixel_pool=1, shard_format=4))
    with pytest.raises(ConfigError, match="reach the model as 4x32x32 .*T % 8 == 0"):
        check_model_input(TrainedOn(GEOMETRY, "test", 4, 1, 4))


# ----------------------------------------------------------------------------- configs


def test_a_partial_config_file_starts_from_its_preset_or_says_which(tmp_path):
    said: list[str] = []
    few = tmp_path / "few.json"
    few.write_text(json.dumps({"optim": {"lr": 0.01}}))
    cfg = load_config(str(few), notice=said.append)
    assert (cfg.preset, cfg.optim.batch, cfg.optim.lr, cfg.model.width) == ("paper", 128, 0.01, 1)
    assert len(said) == 1 and "few.json names no preset" in said[0] and "\n" not in said[0]
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"preset": "tiny", "optim": {"lr": 0.01}}))
    cfg = load_config(str(named), notice=said.append)
    assert cfg == apply_overrides(tiny(), ["optim.lr=0.01"]) and len(said) == 1
    save_config(cfg, tmp_path / "saved.json")  # a complete file: nothing to say
    assert load_config(str(tmp_path / "saved.json"), notice=said.append) == cfg and len(said) == 1
    with pytest.raises(ConfigError, match="preset is set by --config"):
        apply_overrides(cfg, ["preset=paper"])
    for content, message in (
        (b"\xff\xfe{}", "bad.json: not a JSON config"),
        (b'{"preset": 3}', "bad.json: preset: expected one of"),
        (b'{"optim": {"lr": Infinity}}', "bad.json: optim.lr: expected a finite number"),
    ):
        (tmp_path / "bad.json").write_bytes(content)
        with pytest.raises(ConfigError, match=message):
            load_config(str(tmp_path / "bad.json"), notice=said.append)
    assert len(said) == 1


# ----------------------------------------------------------------------------- decoding


def _raw(index: int = 0, geometry: tuple[int, int, int] = CLIP, **members: bytes) -> dict:
    key, made = sample_members(index, False, *geometry)
    raw = {"__key__": key, "__url__": "test.tar", **made, **members}
    raw["__meta__"] = json.loads(raw["json"])
    return raw


def _decode(raw: dict, geometry: Geometry | None = GEOMETRY, limits: Limits = DEFAULT_LIMITS):
    return decode_sample(raw, need_mix=False, n_mels=16, n_fft=512, hop_length=160,
                         geometry=geometry, limits=limits)  # fmt: skip


def _reason(raw: dict, **kwargs) -> tuple[str, str]:
    try:
        _decode(raw, **kwargs)
    except SampleError as e:
        return e.reason, str(e)
    except ValueError as e:  # a codec's refusal (the stage counts it as decode_error)
        return "decode_error", str(e)
    raise AssertionError("decoded")


def test_members_are_held_to_the_sizes_their_json_states():
    assert _decode(_raw()).v1.shape == (3, *CLIP)
    longer = sample_members(0, False, 32, 32, 32)[1]["v1.mp4"]  # 32 frames where json says 16
    assert _reason(_raw(**{"v1.mp4": longer})) == (
        "decode_error", "over 16 frames (limits.max_frames)",
    )  # fmt: skip
    wider = sample_members(0, False, 16, 32, 64)[1]["v2.mp4"]
    assert (
        "frames of 64x32 are over the cap of 1024 pixels" in _reason(_raw(**{"v2.mp4": wider}))[1]
    )
    bomb = zip_bomb_npz(1 << 20)  # 1 MiB: under the 64 MiB cap, over this clip's alpha
    assert (
        "over the cap of 69632 (limits.max_alpha_bytes)" in _reason(_raw(**{"alpha.npz": bomb}))[1]
    )
    raw = _raw()
    raw["__meta__"] |= {"frames": 10**6, "audio_samples": 10**6 // 25 * 8000}
    assert _reason(raw, geometry=None)[0] == "over_cap"
    assert _reason(raw)[0] == "geometry_mismatch"  # the run's geometry is checked first
    raw = _raw()
    del raw["a1.m4a"]
    raw["__meta__"] |= {"audio_samples": 10**9}  # an absent track would be 10**9 zeros
    assert _reason(raw) == ("decode_error", "json says 1000000000 audio samples, its clip has 5120")
    raw = _raw()
    raw["__meta__"] |= {"fps": float("nan")}
    assert _reason(raw, geometry=None)[0] == "decode_error"


def test_the_stage_skips_other_geometries_and_counts_them():
    stats = LoaderStats()
    raws = [_raw(0), _raw(1, (16, 32, 64)), _raw(2), _raw(3, (8, 32, 32))]
    kept = [s.key for s in decode(raws, need_mix=False, n_mels=16, n_fft=512, hop_length=160,
                                   stats=stats)]  # fmt: skip
    assert kept == ["000000000", "000000002"]  # the first sample set the geometry
    assert stats.snapshot()["geometry_mismatch"] == 2
    stats = LoaderStats()
    with pytest.raises(RuntimeError, match="the last 2 samples read were all skipped"):
        list(decode([_raw(1, (16, 32, 64))] * 3, need_mix=False, n_mels=16, n_fft=512,
                    hop_length=160, stats=stats, geometry=GEOMETRY,
                    max_skipped_in_a_row=2))  # fmt: skip


def test_codec_caps():
    video = sample_members(0, False, *CLIP)[1]["v1.mp4"]
    assert codec.decode_video_yuv(video, limits=Limits(32 * 32, 16, 1)).shape == (3, *CLIP)
    with pytest.raises(ValueError, match="over the cap of 1000 pixels"):
        codec.decode_video(video, limits=Limits(1000, 16, 1))
    with pytest.raises(ValueError, match="over 15 frames"):
        codec.decode_video_yuv(video, 2, limits=Limits(1024, 15, 1))
    audio = codec.encode_audio(np.zeros(5120, np.float32), RATE)
    assert len(codec.decode_audio(audio, max_samples=5120)[0]) == 5120
    with pytest.raises(ValueError, match="more than 5000 samples"):
        codec.decode_audio(audio, max_samples=5000)
    assert DEFAULT_LIMITS.for_clip(*CLIP) == Limits(1024, 16, 4 * 16 * 1024 + 4096)
    with pytest.raises(ValueError, match="over the caps"):
        DEFAULT_LIMITS.for_clip(10, 100_000, 100_000)


# ----------------------------------------------------------------------------- evaluation


def test_unknown_devices_are_one_line_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    for name, message in (("tpu", "'tpu' is not a device"), ("cuda:99", "'cuda:99', but")):
        with pytest.raises(ValueError, match=message):
            resolve_device(name)


@pytest.mark.parametrize(
    ("app", "command"),
    [("cli", "inspect"), ("train", "train"), ("train", "config"), ("train", "record"),
     ("eval", "eval"), ("eval", "classifier")],
)  # fmt: skip
def test_every_command_that_reads_shards_says_what_allow_pipe_does(app, command):
    from typer.testing import CliRunner

    from cli import app as blendkit_app
    from trainer.cli import app as train_app
    from trainer.eval_cli import app as eval_app

    apps = {"cli": blendkit_app, "train": train_app, "eval": eval_app}
    result = CliRunner().invoke(apps[app], [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--allow-pipe" in result.output
    assert "Run the shell commands of pipe: shard specs" in " ".join(result.output.split())
