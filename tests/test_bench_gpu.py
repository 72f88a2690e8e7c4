"""``make bench-gpu`` and ``make device-wheels`` on the CPU: the script's dry run end to end,
its time limits, the GPU section of BENCHMARKS.md, and the wheels it asks for."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu, gpu_report, wheels
from trainer.models.registry import MODEL_NAMES

ROOT = Path(__file__).resolve().parent.parent
OLD = "# Benchmarks\n\nCPU figures.\n\n"


def test_dry_run_measures_every_part_and_rewrites_only_its_section(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the children run ``python -m bench.gpu`` from the repository
    markdown = tmp_path / "BENCHMARKS.md"
    stale = f"{gpu_report.SECTION_START}\nold GPU figures\n{gpu_report.SECTION_END}\n"
    markdown.write_text(OLD + stale + "\n## After\n")
    out = tmp_path / "out"
    args = ["--dry-run", "--out-dir", str(out), "--markdown", str(markdown), "--peak-tflops", "2"]
    assert gpu.main(args) == 0

    records = [json.loads(x) for x in (out / "bench-gpu.jsonl").read_text().splitlines()]
    run, *rest = records
    assert run["dry_run"] and run["parts"] == [p for p, _ in gpu.PARTS]
    assert run["parts"] == ["env", "steps", "bf16", "loader", "e2e", "profile", "compile"]
    assert [r["status"] for r in rest] == ["ok"] * len(rest), rest
    steps = [(r["model"], r["variant"]) for r in rest if r["part"] in ("steps", "compile")]
    assert steps == [(m, v.name) for m in gpu.MODELS for v in gpu.STEP_VARIANTS] + [
        (m, gpu.COMPILED.name) for m in gpu.MODELS
    ]
    assert set(gpu.MODELS) < set(MODEL_NAMES)
    for r in (r for r in rest if "variant" in r):
        assert r["finite"] and r["samples_per_s"] > 0 and r["micro_batch"] * r["grad_accum"] == 4
        assert r["mfu"] == pytest.approx(r["samples_per_s"] * r["gflop_per_sample"] / 2000)
    (env,) = [r for r in rest if r["part"] == "env"]
    assert env["torch"] == torch.__version__ and env["peak_tflops"] == 2.0
    (check,) = [r for r in rest if r["part"] == "bf16"]
    assert check["relative_difference"]["loss"] < 0.01  # the forward pass agrees on the CPU too
    (loader,) = [r for r in rest if r["part"] == "loader"]
    assert loader["workers"] == 2 and loader["samples_per_s"] > 0 and loader["shard_samples"] == 4

    (profile,) = [r for r in rest if r["part"] == "profile"]
    assert profile["batch"] == 2 and profile["clock"] == "cpu" and len(profile["top"]) == 15
    shares = [op["self_ms"] for op in profile["top"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= profile["self_total_ms"]
    assert any("convolution" in op["op"] for op in profile["top"])
    e2e = {r["command"]: r for r in rest if r["part"] == "e2e"}
    assert list(e2e) == ["make-shards", "train", "resume", "eval"]
    assert e2e["make-shards"]["samples"] == 4
    assert (e2e["train"]["start_step"], e2e["train"]["steps"]) == (0, 1)
    assert (e2e["resume"]["start_step"], e2e["resume"]["steps"]) == (1, 2)
    for r in (e2e["train"], e2e["resume"]):
        assert r["returncode"] == 0 and r["pixel_range"] == "[-1,1]"  # the paper's pixels
        assert r["loss_unit"].startswith("paper") and r["final_loss"] > 0
    assert e2e["eval"]["returncode"] == 0 and e2e["eval"]["samples"]["both"] == 4
    assert set(e2e["eval"]["loss"]) >= {"transparent", "occlusion"}  # both kinds were made

    text = markdown.read_text()
    assert text.startswith(OLD) and text.endswith("\n## After\n") and "old GPU" not in text
    section = gpu_report.section_of(text)
    assert section is not None and "A dry run" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and " x " in line]
    assert len(rows) == 1 + len(steps)  # the header and one row per measured step
    assert "bf16 autocast against float32" in section and "Loader: 2 worker" in section
    assert "- resume (`--config paper`, exit 0): steps 1 -> 2" in section
    assert "Profile of one c2 step, channels_last_3d, batch 2" in section
    assert (out / "BENCHMARKS.md").read_text() == text


def test_a_part_past_its_limit_is_stopped_and_recorded(monkeypatch):
    monkeypatch.chdir(ROOT)
    args = argparse.Namespace(dry_run=True, peak_tflops=0.0)
    model = gpu.MODELS[0]
    records = gpu.spawn_part("steps", 1.0, args, model)  # importing torch alone takes longer
    assert records[-1] == {"part": "steps", "model": model, "status": "timeout", "limit_s": 1.0}


def test_without_cuda_the_gpu_parts_are_skipped_and_benchmarks_md_left_alone(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main(["--parts", "env,steps,compile", "--out-dir", "out"]) == 0
    lines = (tmp_path / "out" / "bench-gpu.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [(r["part"], r["status"]) for r in records[1:]] == [
        ("env", "ok"), ("steps", "skipped"), ("compile", "skipped")
    ]  # fmt: skip
    assert "no CUDA on this machine: steps skipped" in capsys.readouterr().err
    assert not (tmp_path / "BENCHMARKS.md").exists()


def test_the_gpu_section_is_replaced_appended_and_kept():
    section = f"{gpu_report.SECTION_START}\nnew\n{gpu_report.SECTION_END}\n"
    assert gpu_report.replace_section("", section) == section
    assert gpu_report.replace_section(OLD, section) == OLD.rstrip("\n") + "\n\n" + section
    both = gpu_report.replace_section(OLD, section)
    assert gpu_report.section_of(both) == section.rstrip("\n")
    newer = section.replace("new", "newer")
    assert gpu_report.replace_section(both, newer).count("newer") == 1
    assert gpu_report.section_of(OLD) is None
    run_source = (ROOT / "bench" / "run.py").read_text()  # `make bench` keeps the section
    assert "gpu_report.section_of(old)" in run_source


def test_device_wheels_are_the_projects_pins_and_their_missing_dependencies():
    pins = wheels.wheel_pins()
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name in wheels.GPU_HOST_LACKS:
        (version,) = re.findall(rf'"{name}==([^"]+)"', pyproject)
        assert f"{name}=={version}" in pins
    names = [p.split("==")[0] for p in pins]
    assert "braceexpand" in names  # webdataset needs it, the GPU image lacks it
    assert not {"numpy", "pyyaml", "torch"} & set(names)  # the image has them
    cmd = wheels.download_command(Path(".whl"), pins)
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:"} <= set(cmd) and cmd[-len(pins) :] == pins
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert "manylinux_2_28_x86_64" in cmd and "manylinux2014_x86_64" in cmd
    assert ".whl/" in (ROOT / ".gitignore").read_text().split()
