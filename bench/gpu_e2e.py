"""``make bench-gpu``'s ``e2e`` part: the paper preset through the real command lines on a GPU.

Where the ``steps`` part times the trainer's step on synthetic batches, this part runs what a user
runs, each command in a process of its own: demo data -> make-shards at the paper's clip size
(both blend kinds) -> ``blendkit-train train --config paper`` for a few steps (its loader, device
stage, pixels in [-1, 1], logging, checkpoint) -> the same command again with more steps (resume
from that checkpoint onto the GPU) -> ``blendkit-eval eval`` of the run on the same shards. One
record per command: its exit status, seconds, and what it reported (losses in the paper's unit,
samples/s, CUDA peak memory, the identity baseline and the model's loss per blend kind).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class E2ESizes:
    """How much the part runs (``bench.gpu.Sizes`` holds one)."""

    samples: int = 32  # both kinds
    batch: int = 16
    steps: int = 4
    resume_steps: int = 6
    workers: int = 8
    overrides: tuple[str, ...] = ()  # e.g. a narrow model for a dry run
    shard_config: tuple[tuple[str, object], ...] = ()  # ShardConfig overrides


def _run(cmd: list[str]) -> tuple[int, float, str, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, time.perf_counter() - start, proc.stdout, proc.stderr


def _tail(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no message)"


def _last_metrics(run: Path) -> dict:
    """The last record of ``run``'s metrics.jsonl that has a throughput, {} when none."""
    path = run / "metrics.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []
    timed = [r for r in rows if "samples_per_s" in r]
    return timed[-1] if timed else {}


def _train(shards: Path, run: Path, e: E2ESizes, steps: int, what: str) -> dict:
    cmd = [sys.executable, "-m", "trainer.cli", "train", "--config", "paper",
           "--shards", str(shards), "--run", str(run), "--steps", str(steps),
           f"optim.batch={e.batch}", f"data.workers={e.workers}", "log_every=1",
           f"ckpt_every={e.steps}", "eval_every=1000", "video_every=1000", "progress=false",
           *e.overrides]  # fmt: skip
    rc, seconds, out, err = _run(cmd)
    record = {"part": "e2e", "command": what, "returncode": rc, "seconds": seconds}
    if rc != 0:
        return {**record, "status": "failed", "error": _tail(err)}
    summary = json.loads(out[out.index("{") :])
    last = _last_metrics(run)
    return {
        **record, "start_step": summary["start_step"], "steps": summary["steps"],
        "final_loss": summary["final_loss"], "loss_unit": summary["loss_unit"],
        "samples_per_s": last.get("samples_per_s"), "cuda_peak_gib": last.get("cuda_peak_gib"),
        "identity": last.get("identity"),
        "pixel_range": json.loads((run / "trained_on.json").read_text()).get("pixel_range"),
    }  # fmt: skip


def _eval(shards: Path, run: Path, out_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "trainer.eval_cli", "eval", str(run), "--shards", str(shards),
           "--out", str(out_dir)]  # fmt: skip
    rc, seconds, _, err = _run(cmd)
    record = {"part": "e2e", "command": "eval", "returncode": rc, "seconds": seconds}
    if rc != 0:
        return {**record, "status": "failed", "error": _tail(err)}
    result = json.loads((out_dir / "eval.json").read_text())  # one run: its own eval.json
    return {**record, "loss": result["loss"], "identity_loss": result["identity_loss"],
            "loss_unit": result["loss_unit"], "samples": result["samples"]}  # fmt: skip


def part_e2e(e: E2ESizes, demo_per_class: int, demo_seconds: float) -> Iterator[dict]:
    """Make paper-size shards, train, resume and evaluate (see the module docstring)."""
    from blendkit.demo import DemoConfig, make_demo_data
    from blendkit.pipeline import make_shards
    from blendkit.shard_config import ShardConfig

    with tempfile.TemporaryDirectory(prefix="bench-gpu-e2e-") as tmp:
        demo, shards, run = Path(tmp, "demo"), Path(tmp, "shards"), Path(tmp, "run")
        make_demo_data(DemoConfig(str(demo), demo_per_class, 0, demo_seconds), progress=False)
        start = time.perf_counter()
        summary = make_shards(
            ShardConfig(source=str(demo), out=str(shards), split="train",
                        annotations=str(demo / "annotations" / "train.csv"),
                        num_samples=e.samples, samples_per_shard=4, workers=e.workers,
                        **dict(e.shard_config)),
            progress=False,
        )  # fmt: skip
        yield {"part": "e2e", "command": "make-shards", "samples": summary.samples,
               "seconds": time.perf_counter() - start}  # fmt: skip
        for steps, what in ((e.steps, "train"), (e.resume_steps, "resume")):
            record = _train(shards, run, e, steps, what)
            yield record
            if record.get("status") == "failed":
                return
        yield _eval(shards, run, Path(tmp, "eval"))
