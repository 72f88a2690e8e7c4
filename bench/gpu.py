"""``make bench-gpu``: paper-size training steps and the loader on one GPU, in under ten minutes.

Each part runs in a process of its own (``steps`` and ``compile`` one per model) under a time
limit (``PARTS``, and never past the run's ``--budget``, 540 s by default); a part that runs out of
time or fails is recorded so, with whatever it measured before, and the next one starts:

* ``env``: the GPU and its memory, torch, CUDA and cuDNN versions, the CPU cores.
* ``steps``: for paper C2 and C3 internal (64x128x128 clips, n = m = 4), optimiser steps of the
  paper's batch of 128 on a synthetic batch, through the trainer's own code: the model, SGD
  and schedule of ``trainer.train_state.build``, the stepper of ``trainer.step`` (bf16 autocast,
  gradient accumulation, the optimiser step), ``trainer.data.device.prepare`` (channels_last_3d)
  and ``optim.grad_accum=auto`` (``trainer.run_cost``: the micro-batch that fits this GPU by
  the trainer's estimate). Variants: ``eager`` (bf16, contiguous tensors), ``channels_last_3d``,
  ``checkpointing`` (channels_last_3d and activation checkpointing).
* ``bf16``: C2's loss and gradient norm after one forward and backward pass in bf16 autocast
  against float32 (TF32 off), from the same weights and batch, within ``BF16_TOLERANCE``. (On
  the CPU of a dry run the gradient norms do not agree: CPU bf16 Conv3d weight gradients are
  inexact, oneDNN's badly so on maps of 2x2x2: 8.7 off in 10 with torch 2.11. The trainer
  autocasts on CUDA only.)
* ``loader``: demo data (``blendkit.demo``) -> small shards of paper clips (make-shards) -> the
  training loader with 16 worker processes, batches pinned as the trainer pins them on a GPU.
* ``e2e``: the paper preset through the command lines a user runs (``bench.gpu_e2e``): paper-size
  shards of both kinds, ``blendkit-train train --config paper`` for a few steps, a resume onto the
  GPU, ``blendkit-eval eval``.
* ``profile``: C2's ``channels_last_3d`` step on one micro-batch under ``torch.profiler``: the
  operators that take the device's time (the first GPU run measured 4.4% MFU).
* ``compile``: the ``channels_last_3d`` step under ``torch.compile`` (inductor), per model; last,
  because compiling may take minutes.

Per variant: median seconds per optimiser step over the timed steps (after ``warmup`` steps,
which include cuDNN's autotuning and compilation), samples/s, peak memory allocated
(``torch.cuda.max_memory_allocated``, warm-up included) and MFU: samples/s times the model's
FLOPs per sample (``trainer.cost.train_flops``, recomputation not counted) over the GPU's dense
bf16 peak (``trainer.devices``, or ``--peak-tflops``).

Without CUDA the GPU parts are skipped with a message (the loader still runs) and BENCHMARKS.md
is left alone. ``--dry-run`` runs every part on whatever device there is at tiny sizes (a
width-1/16 network on 8x32x32 clips, a batch of 4, ``aot_eager`` instead of inductor, 2
loader workers): it shows that the script works, and its figures mean nothing.

Output: ``OUT/bench-gpu.jsonl`` (a record per measurement), the section of BENCHMARKS.md between
the markers of ``bench.gpu_report`` (replaced, or appended; ``make bench`` keeps it) and a copy of
that file in ``OUT``.

    python -m bench.gpu [--out-dir DIR] [--budget S] [--parts steps,bf16,...] [--dry-run]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.gpu_e2e import E2ESizes, part_e2e
from bench.gpu_report import markdown, replace_section
from blendkit.format import Geometry
from trainer import cost, devices, run_cost, step, train_state
from trainer.config import AUTO, TrainConfig, paper
from trainer.data.device import prepare
from trainer.distributed import Dist
from trainer.models.registry import DEFAULT_MODEL, INTERNAL, MODEL_NAMES, variant
from trainer.run_record import TrainedOn

MODELS = (DEFAULT_MODEL, next(n for n in MODEL_NAMES if variant(n).control == INTERNAL))
# Relative to float32. bf16 keeps 8 significant bits (0.4% a rounding); the loss, a mean over
# millions of values, and the gradient norm, over 26M gradients, average their roundings out, so
# these bounds flag a cast gone wrong (a softmax or a loss reduced in bf16), not rounding.
BF16_TOLERANCE = {"loss": 0.01, "grad_norm": 0.05}
# (part, time limit in seconds: per model for PER_MODEL), in the order they run; no part runs
# past the budget
PARTS = (
    ("env", 60), ("steps", 150), ("bf16", 100), ("loader", 90), ("e2e", 180), ("profile", 150),
    ("compile", 200),
)  # fmt: skip
GPU_PARTS = ("steps", "bf16", "e2e", "compile", "profile")
PER_MODEL = ("steps", "compile")  # run once per model, each under the part's limit
RESERVE_S = 15  # kept for writing the results
MIN_PART_S = 20  # a part with less time left is skipped


@dataclass(frozen=True)
class Variant:
    """How the trainer is set for one measured step."""

    name: str
    channels_last: bool = False
    compile: bool = False
    checkpointing: bool = False


EAGER = Variant("eager")
CHANNELS_LAST = Variant("channels_last_3d", channels_last=True)
CHECKPOINTING = Variant("checkpointing", channels_last=True, checkpointing=True)
COMPILED = Variant("compile", channels_last=True, compile=True)
STEP_VARIANTS = (EAGER, CHANNELS_LAST, CHECKPOINTING)


@dataclass(frozen=True)
class Sizes:
    """How much every part measures."""

    width: float = 1.0
    geometry: Geometry = Geometry(frames=64, fps=25.0, height=128, width=128, audio_rate=16000)
    batch: int = 128  # the paper's, per optimiser step
    warmup: int = 3
    timed_steps: int = 10
    timed_seconds: float = 10.0  # stop timing after this, whichever comes first
    check_batch: int = 8  # bf16 against float32
    device_memory_gb: float = 0.0  # 0: the GPU's
    compile_backend: str = "inductor"
    demo_per_class: int = 2
    demo_seconds: float = 4.0
    shard_samples: int = 32
    shard_config: tuple[tuple[str, object], ...] = ()  # ShardConfig overrides
    loader_workers: int = 16
    loader_batch: int = 16
    loader_batches: int = 24
    e2e: E2ESizes = E2ESizes()
    profile_batch: int = 16  # one micro-batch, no accumulation
    profile_top: int = 15  # operators listed


FULL = Sizes()
DRY = Sizes(width=0.0625, geometry=Geometry(8, 25.0, 32, 32, 16000), batch=4, warmup=1,
            timed_steps=1, timed_seconds=5.0, check_batch=2, device_memory_gb=0.5,
            compile_backend="aot_eager", demo_per_class=1, demo_seconds=2.0, shard_samples=4,
            shard_config=(("frames", 16), ("crop", 64), ("blend", "transparent")),
            loader_workers=2, loader_batch=2, loader_batches=2, profile_batch=2,
            e2e=E2ESizes(samples=4, batch=2, steps=1, resume_steps=2, workers=1,
                         overrides=("model.width=0.0625", "cpu_threads=1"),
                         shard_config=(("frames", 16), ("crop", 64))))  # fmt: skip


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


# ----------------------------------------------------------------------------- one step


def bench_config(name: str, v: Variant, sizes: Sizes, device: torch.device) -> TrainConfig:
    """The paper config for model ``name`` at ``sizes``, set as variant ``v`` asks, with the
    gradient accumulation that ``optim.grad_accum=auto`` picks for this device."""
    cfg = _config(name, v, sizes, device)
    accum = _auto_accum(name, v.checkpointing, sizes, device)
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, grad_accum=accum))


def _config(name: str, v: Variant, sizes: Sizes, device: torch.device) -> TrainConfig:
    base = paper()
    model = dataclasses.replace(cost.paper_model_config(name), width=sizes.width)
    return dataclasses.replace(
        base, model_name=name, model=model, device=device.type, bf16=True,
        channels_last=v.channels_last, compile=v.compile, activation_checkpointing=v.checkpointing,
        device_memory_gb=sizes.device_memory_gb,
        optim=dataclasses.replace(base.optim, batch=sizes.batch, grad_accum=AUTO),
    )  # fmt: skip


@functools.cache
def _auto_accum(name: str, checkpointing: bool, sizes: Sizes, device: torch.device) -> int:
    """What the trainer's ``optim.grad_accum=auto`` picks (``trainer.run_cost``), once per model
    and checkpointing policy: the estimate takes seconds."""
    cfg = _config(name, Variant("auto", checkpointing=checkpointing), sizes, device)
    resolved = run_cost.resolve_grad_accum(cfg, _record(sizes), device, world_size=1)
    return resolved.optim.grad_accum


@functools.cache
def _flops(name: str, sizes: Sizes) -> float:
    """The model's FLOPs per training sample (``trainer.cost.train_flops``), once per model."""
    cfg = _config(name, EAGER, sizes, torch.device("cpu"))
    return cost.train_flops(name, cfg.model, run_cost.clip_of(_record(sizes), cfg))[1]


def _record(sizes: Sizes) -> TrainedOn:
    return TrainedOn(sizes.geometry, "synthetic batches (bench.gpu)", 1, 1, None)


def _synthetic(cfg: TrainConfig, sizes: Sizes, device: torch.device, batch: int) -> dict:
    """A prepared micro-batch of random clips, as the trainer's device stage hands it over."""
    clip = run_cost.clip_of(_record(sizes), cfg)
    with torch.device(device):
        raw = cost.synthetic_batch(clip, batch)
    return prepare(
        raw,
        device,
        pixel_pool=1,
        pixel_range=cfg.model.pixel_range,
        channels_last=cfg.channels_last,
    )


def _ready(cfg: TrainConfig, sizes: Sizes, device: torch.device, batch: int):
    """(train state, stepper, a prepared synthetic micro-batch of ``batch``) for ``cfg``, set up as
    the trainer sets itself up."""
    step.configure_backends(cfg, device.type == "cuda")
    state = train_state.build(cfg, device, cfg.channels_last)
    stepper = step.make_stepper(cfg, state, Dist(0, 1, 0, device))
    return state, stepper, _synthetic(cfg, sizes, device, batch)


def measure_step(name: str, v: Variant, sizes: Sizes, peak: float | None) -> dict:
    """Timed optimiser steps of model ``name`` set as ``v`` (see the module docstring)."""
    device = _device()
    cuda = device.type == "cuda"
    cfg = bench_config(name, v, sizes, device)
    accum = cfg.optim.grad_accum
    micro = cfg.optim.batch // accum
    step.COMPILE_BACKEND = sizes.compile_backend
    _, stepper, batch = _ready(cfg, sizes, device, micro)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(sizes.warmup + sizes.timed_steps):
        start = time.perf_counter()
        _, _, terms = stepper.step(lambda: batch, accum)
        loss = float(terms["loss"])  # waits for the step
        times.append(time.perf_counter() - start)
        timed = times[sizes.warmup :]
        if timed and sum(timed) > sizes.timed_seconds:
            break
    timed = times[sizes.warmup :] or times[-1:]
    step_s = statistics.median(timed)
    flops = _flops(name, sizes)
    rate = cfg.optim.batch / step_s
    return {
        "part": "compile" if v.compile else "steps", "model": name, "variant": v.name,
        "batch": cfg.optim.batch, "micro_batch": micro, "grad_accum": accum,
        "warmup_s": sum(times[: sizes.warmup]), "steps_timed": len(timed), "step_s": step_s,
        "samples_per_s": rate,
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "gflop_per_sample": flops / 1e9,
        "mfu": devices.mfu(rate, flops, peak) if peak else None,
        "loss": loss, "finite": math.isfinite(loss),
    }  # fmt: skip


def part_steps(
    sizes: Sizes, variants: tuple[Variant, ...], peak: float | None, models: tuple[str, ...]
) -> Iterator[dict]:
    for name in models:
        for v in variants:
            try:
                yield measure_step(name, v, sizes, peak)
            except torch.cuda.OutOfMemoryError as e:
                yield {"part": "steps", "model": name, "variant": v.name, "status": "oom",
                       "error": str(e).splitlines()[0]}  # fmt: skip
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- other parts


def part_env(peak: float | None) -> Iterator[dict]:
    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    try:
        smi = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        driver = subprocess.run(smi, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        driver = None
    yield {
        "part": "env", "cuda": cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_gib": props.total_memory / 2**30 if props else None,
        "torch": torch.__version__, "cuda_version": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None, "driver": driver or None,
        "python": platform.python_version(), "cpu_cores": os.cpu_count(), "peak_tflops": peak,
    }  # fmt: skip


def part_bf16(sizes: Sizes) -> Iterator[dict]:
    """C2's loss and gradient norm in bf16 autocast against float32, same weights and batch."""
    device = _device()
    cfg = bench_config(DEFAULT_MODEL, CHANNELS_LAST, sizes, device)
    state, stepper, batch = _ready(cfg, sizes, device, sizes.check_batch)
    bf16 = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731 (CUDA: the trainer's)
    out = {}
    for name, autocast in (("fp32", contextlib.nullcontext), ("bf16", bf16)):
        stepper.autocast = autocast
        with _tf32(False):
            _, terms = stepper.forward_backward(batch, accum=1, reduce=True)
        grads = [p.grad.float().norm() for p in state.model.parameters() if p.grad is not None]
        out[name] = {"loss": float(terms["loss"]), "grad_norm": float(torch.stack(grads).norm())}
        state.optimizer.zero_grad(set_to_none=True)
    rel = {k: abs(out["bf16"][k] - out["fp32"][k]) / abs(out["fp32"][k]) for k in out["fp32"]}
    yield {
        "part": "bf16", "model": DEFAULT_MODEL, "batch": sizes.check_batch, "device": device.type,
        "fp32": out["fp32"], "bf16": out["bf16"], "relative_difference": rel,
        "tolerance": BF16_TOLERANCE, "agree": all(rel[k] <= BF16_TOLERANCE[k] for k in rel),
    }  # fmt: skip


def part_profile(sizes: Sizes) -> Iterator[dict]:
    """Where a step's time goes: C2's channels_last_3d step of one micro-batch under
    ``torch.profiler``, after ``sizes.warmup`` steps; the operators and kernels of most device time
    (CPU time without CUDA), each with its share of the kernels' total."""
    device = _device()
    cuda = device.type == "cuda"
    small = dataclasses.replace(sizes, batch=sizes.profile_batch)
    cfg = _config(DEFAULT_MODEL, CHANNELS_LAST, small, device)
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, grad_accum=1))
    _, stepper, batch = _ready(cfg, small, device, sizes.profile_batch)
    for _ in range(sizes.warmup):
        float(stepper.step(lambda: batch, 1)[2]["loss"])
    activities = [torch.profiler.ProfilerActivity.CPU]
    activities += [torch.profiler.ProfilerActivity.CUDA] if cuda else []
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        float(stepper.step(lambda: batch, 1)[2]["loss"])
    step_s = time.perf_counter() - start
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr) > 0]
    # on CUDA an operator's self device time is its kernels', which are listed too: the total
    # counts the kernels alone
    counted = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA] or events
    total = sum(getattr(e, attr) for e in (counted if cuda else events))
    top = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[: sizes.profile_top]
    yield {
        "part": "profile", "model": DEFAULT_MODEL, "batch": sizes.profile_batch,
        "clock": "device" if cuda else "cpu", "step_s": step_s, "self_total_ms": total / 1e3,
        "top": [{"op": e.key[:120], "self_ms": getattr(e, attr) / 1e3, "calls": e.count}
                for e in top],
    }  # fmt: skip


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def part_loader(sizes: Sizes) -> Iterator[dict]:
    """Demo data -> shards -> the loader with ``sizes.loader_workers`` workers."""
    from bench import loader
    from blendkit.demo import DemoConfig, make_demo_data
    from blendkit.pipeline import make_shards
    from blendkit.shard_config import ShardConfig

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        demo, shards = Path(tmp, "demo"), Path(tmp, "shards")
        demo_cfg = DemoConfig(str(demo), sizes.demo_per_class, 0, sizes.demo_seconds)
        make_demo_data(demo_cfg, progress=False)
        summary = make_shards(
            ShardConfig(source=str(demo), out=str(shards), split="train",
                        annotations=str(demo / "annotations" / "train.csv"),
                        num_samples=sizes.shard_samples, samples_per_shard=2,
                        workers=min(16, os.cpu_count() or 1), **dict(sizes.shard_config)),
            progress=False,
        )  # fmt: skip
        r = loader.measure(str(shards), sizes.loader_batch, sizes.loader_workers,
                           sizes.loader_batches, repeats=1, shuffle_buffer=16,
                           pin_memory=torch.cuda.is_available())  # fmt: skip
    yield {
        "part": "loader", "workers": sizes.loader_workers, "batch": sizes.loader_batch,
        "batches_timed": sizes.loader_batches, "shard_samples": summary.samples,
        "samples_per_s": r["samples_per_s"], "samples_per_cpu_s": r["samples_per_cpu_s"],
        "pinned": torch.cuda.is_available(), "skipped_samples": r["skipped"],
    }  # fmt: skip


def run_part(
    part: str, sizes: Sizes, peak: float | None, model: str | None = None
) -> Iterator[dict]:
    """The records of ``part`` (of ``model`` alone, for a part made per model), made in this
    process."""
    models = MODELS if model is None else (model,)
    if part == "env":
        return part_env(peak)
    if part == "steps":
        return part_steps(sizes, STEP_VARIANTS, peak, models)
    if part == "compile":
        return part_steps(sizes, (COMPILED,), peak, models)
    if part == "bf16":
        return part_bf16(sizes)
    if part == "loader":
        return part_loader(sizes)
    if part == "e2e":
        return part_e2e(sizes.e2e, sizes.demo_per_class, sizes.demo_seconds)
    if part == "profile":
        return part_profile(sizes)
    raise ValueError(f"unknown part {part!r}; expected one of {[p for p, _ in PARTS]}")


# ----------------------------------------------------------------------------- the driver


def spawn_part(
    part: str, limit_s: float, args: argparse.Namespace, model: str | None = None
) -> list[dict]:
    """Run ``part`` (of ``model``) in a child process (a session of its own, so that a timeout
    also ends the compile and loader workers it started) -> its records, and one saying how it
    ended if it did not end well."""
    cmd = [sys.executable, "-m", "bench.gpu", "--part", part]
    cmd += ["--model", model] if model else []
    cmd += ["--dry-run"] if args.dry_run else []
    cmd += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    ended = None
    try:
        out, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        ended = {"status": "timeout", "limit_s": limit_s}
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if ended is None and proc.returncode != 0:
        last = [line for line in err.splitlines() if line.strip()][-1:] or ["(no message)"]
        ended = {"status": "failed", "returncode": proc.returncode, "error": last[0][:300]}
        sys.stderr.write("\n".join(err.splitlines()[-20:]) + "\n")
    for r in records:
        r.setdefault("status", "ok")
    if ended is not None:
        records.append({"part": part, **({"model": model} if model else {}), **ended})
    name = f"{part} {model}" if model else part
    print(f"bench-gpu: {name} {ended['status'] if ended else 'done'} in {seconds:.0f} s",
          file=sys.stderr, flush=True)  # fmt: skip
    return records


def run(args: argparse.Namespace) -> list[dict]:
    """Every part asked for, within the budget -> the records (the first says how it ran)."""
    begin = time.perf_counter()
    cuda = torch.cuda.is_available()
    parts = [p for p, _ in PARTS if args.parts is None or p in args.parts]
    records = [{"part": "run", "dry_run": args.dry_run, "budget_s": args.budget,
                "date": time.strftime("%Y-%m-%d %H:%M"), "parts": parts}]  # fmt: skip
    limits = dict(PARTS)
    for part in parts:
        if part in GPU_PARTS and not (cuda or args.dry_run):
            print(f"bench-gpu: no CUDA on this machine: {part} skipped (GPU only; --dry-run "
                  "runs it on the CPU at tiny sizes)", file=sys.stderr)  # fmt: skip
            records.append({"part": part, "status": "skipped", "reason": "no CUDA"})
            continue
        for model in MODELS if part in PER_MODEL else (None,):
            left = args.budget - (time.perf_counter() - begin) - RESERVE_S
            if left < MIN_PART_S:
                skipped = {"part": part, **({"model": model} if model else {})}
                records.append({**skipped, "status": "skipped", "reason": "out of time"})
                continue
            records += spawn_part(part, min(limits[part], left), args, model)
    records[0]["seconds"] = time.perf_counter() - begin
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench-gpu"))
    parser.add_argument("--markdown", type=Path, default=None,
                        help="the file whose GPU section is rewritten [BENCHMARKS.md on a GPU; "
                        "with --dry-run OUT/BENCHMARKS.md; none without CUDA]")  # fmt: skip
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for every part")
    parser.add_argument("--parts", type=lambda s: s.split(","), default=None)
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="the GPU's dense bf16 peak")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, any device")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # a child process: one part
    parser.add_argument("--model", help=argparse.SUPPRESS)  # ... of one model
    args = parser.parse_args(argv)
    sizes = DRY if args.dry_run else FULL
    if args.part:
        if args.dry_run:
            torch.set_num_threads(1)  # tiny work: more threads only contend on a busy CPU
        peak = args.peak_tflops or (devices.device_spec().bf16_tflops if _is_known() else None)
        for record in run_part(args.part, sizes, peak, args.model):
            print(json.dumps(record), flush=True)
        return 0
    records = run(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(args.out_dir / "bench-gpu.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    command = " ".join(["python -m bench.gpu", *(sys.argv[1:] if argv is None else argv)])
    section = markdown(records, command, args.dry_run, sizes_line(sizes))
    print(section)
    target = args.markdown
    if target is None and (torch.cuda.is_available() or args.dry_run):
        target = args.out_dir / "BENCHMARKS.md" if args.dry_run else Path("BENCHMARKS.md")
    if target is not None:
        old = target.read_text() if target.is_file() else ""
        target.write_text(replace_section(old, section))
        if target.resolve() != (args.out_dir / "BENCHMARKS.md").resolve():
            (args.out_dir / "BENCHMARKS.md").write_text(target.read_text())
    return 0


def sizes_line(sizes: Sizes) -> str:
    """What the step table measured, in words."""
    g = sizes.geometry
    return (
        f"{' and '.join(MODELS)} at {g.frames}x{g.height}x{g.width} clips (n = m = 4, width "
        f"{sizes.width:g}), synthetic batches, {sizes.batch} samples per optimiser step (SGD "
        "with momentum), bf16 autocast on CUDA (float32 on a CPU); the micro-batch is what "
        "`optim.grad_accum=auto` picks "
        f"on this device. Median seconds per step over up to {sizes.timed_steps} timed steps "
        f"after {sizes.warmup} warm-up steps (cuDNN autotuning, compilation); peak memory "
        "allocated over all of them; MFU: samples/s times the model's FLOPs per sample over the "
        "dense bf16 peak. `eager`: contiguous tensors; `channels_last_3d`: the trainer's layout "
        "on CUDA; `checkpointing`: with activation checkpointing; `compile`: channels_last_3d "
        f"under torch.compile ({sizes.compile_backend})."
    )


def _is_known() -> bool:
    """Whether this machine's GPU is one ``trainer.devices`` knows (its peak, for the MFU)."""
    if not torch.cuda.is_available():
        return False
    try:
        devices.device_spec()
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
