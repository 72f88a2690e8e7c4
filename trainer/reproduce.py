"""``make reproduce-tiny``: the paper's Tables 1 and 2 in miniature, on the demo shards.

Every model of the registry (Centrifuge, CentrifugePC, C2 without masking, C2, C3 with
deterministic control, C3 with internal prediction) is trained with the ``tiny`` preset, as it
is, on the same training shards, once per seed (``seed`` and ``data.seed``), C3 models on
samples whose V1 has audio (``data.require_audio``, as ``make demo`` does). Runs go two at a time
(one torch thread each), the longest first (``registry.TINY_RUN_MINUTES``: on two slots this
keeps the last run short). Each finished run is evaluated on the validation shards
(``blendkit-eval eval``), then ``OUT/report.md`` gathers Table 1 (loss per blend kind and model
size) and Table 2 (loss and control accuracy) with the mean and the min-max over the seeds,
next to the paper's figures (``trainer.paper``). Losses are in the paper's unit
(``trainer.pixels``).

Steps: tiny's schedule (or ``--steps``), stretched for training shards of more blends than the
demo's (``trainer.schedule``); every run is given the resolved steps and milestones.

Ablations: ``--set KEY=VALUE`` (repeatable) gives every run one more config override, e.g.
``--set model.mask_rescale=true``; ``--models c2,c3_internal`` trains only those. The keys the
reproduction sets per run (seeds, steps, shards, run folder, model) are refused.
``OUT/settings.json`` records the steps and overrides; rerunning into the same ``OUT`` with
others is refused in one line, so a report never mixes runs of two settings.

Resume: rerunning the command skips the runs whose newest checkpoint is at the final step and
the evaluations whose ``eval.json`` is at their run's step; a run stopped midway continues from
its checkpoint (the trainer resumes a run folder). Stopping it (Ctrl-C, SIGTERM) stops the runs
it started.

    OUT/runs/MODEL-sSEED/     the training runs      OUT/logs/NAME.{train,eval}.log
    OUT/eval/MODEL-sSEED/     their evaluations      OUT/timings.json   seconds per run and eval
    OUT/report.md             OUT/settings.json         steps and overrides

    python -m trainer.reproduce --train shards/demo/train --val shards/demo/validate \\
        --out runs/reproduce-tiny [--seeds 0,1] [--steps N] [--parallel 2] \\
        [--models c2,c3_internal] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from blendkit import typed_config
from blendkit.typed_config import ConfigError
from trainer import checkpoint as ckpt
from trainer.config import DERIVED_KEYS, OptimConfig, apply_overrides, tiny
from trainer.models.registry import MODEL_NAMES, TINY_RUN_MINUTES, is_controlled
from trainer.reproduce_report import report
from trainer.schedule import resolve_schedule

FIG10_OFFSETS = "0,0.64,1.28"  # a few offsets of the control audio: evaluation stays quick
# config keys the reproduction sets for every run itself: not for --set
PER_RUN_KEYS = (
    "seed", "data.seed", "val_shards", "progress", "data.shards", "run_dir", "model_name",
    "optim.steps", "optim.milestones", "optim.schedule_blends",
)  # fmt: skip
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # two runs on two cores


@dataclass(frozen=True)
class Job:
    """One model trained with one seed, and its evaluation."""

    model: str
    seed: int
    out: Path

    @property
    def name(self) -> str:
        return f"{self.model}-s{self.seed}"

    @property
    def run(self) -> Path:
        return self.out / "runs" / self.name

    @property
    def eval_dir(self) -> Path:
        return self.out / "eval" / self.name

    @property
    def minutes(self) -> float:
        return TINY_RUN_MINUTES[self.model]


def plan(out: Path, seeds: Sequence[int], models: Sequence[str] = MODEL_NAMES) -> list[Job]:
    """Every (model, seed), longest run first (ties: seed, then the registry's order)."""
    jobs = [Job(m, s, out) for s in seeds for m in models]
    return sorted(jobs, key=lambda j: (-j.minutes, j.seed, models.index(j.model)))


def makespan(jobs: Sequence[Job], parallel: int, scale: float = 1.0) -> float:
    """Estimated minutes to train ``jobs`` in this order on ``parallel`` slots (each job goes to
    the slot that frees first, as the pool hands them out)."""
    slots = [0.0] * parallel
    for job in jobs:
        slots[slots.index(min(slots))] += job.minutes * scale
    return max(slots)


def trained_step(job: Job) -> int:
    """The step of the run's newest checkpoint (0: none)."""
    found = ckpt.checkpoints(job.run)
    return found[-1][0] if found else 0


def evaluated(job: Job) -> bool:
    """Its eval.json exists, scores the run's newest checkpoint and was written after it."""
    path = job.eval_dir / "eval.json"
    found = ckpt.checkpoints(job.run)
    if not path.is_file() or not found:
        return False
    step, newest = found[-1]
    try:
        scored = json.loads(path.read_text()).get("step")
    except (json.JSONDecodeError, AttributeError):
        return False
    return scored == step and path.stat().st_mtime >= newest.stat().st_mtime


class Runner(Protocol):
    """What trains and evaluates a job (``Subprocesses``; tests pass a fake)."""

    def train(self, job: Job, steps: int) -> None: ...

    def evaluate(self, job: Job) -> None: ...

    def stop(self) -> None: ...


class Stopped(RuntimeError):
    """The reproduction was asked to stop."""


class Subprocesses:
    """Runs ``blendkit-train train`` and ``blendkit-eval eval`` as child processes, one torch
    thread each, their output in ``OUT/logs``."""

    def __init__(self, train_shards: str, val_shards: str, extra: Sequence[str] = ()) -> None:
        self.train_shards, self.val_shards, self.extra = train_shards, val_shards, tuple(extra)
        self.live: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def train(self, job: Job, steps: int) -> None:
        overrides = [f"seed={job.seed}", f"data.seed={job.seed}", f"val_shards={self.val_shards}",
                     "progress=false"]  # fmt: skip
        if is_controlled(job.model):
            overrides.append("data.require_audio=true")  # C3 is conditioned on V1's audio
        command = ["trainer.cli", "train", "--config", "tiny", "--shards", self.train_shards,
                   "--run", str(job.run), "--model", job.model, "--steps", str(steps),
                   *overrides, *self.extra]  # fmt: skip
        self._run(command, job.out / "logs" / f"{job.name}.train.log")

    def evaluate(self, job: Job) -> None:
        command = ["trainer.eval_cli", "eval", str(job.run), "--shards", self.val_shards,
                   "--out", str(job.eval_dir), "--offsets", FIG10_OFFSETS,
                   "--device", "cpu"]  # fmt: skip
        self._run(command, job.out / "logs" / f"{job.name}.eval.log")

    def _run(self, command: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **ONE_THREAD}
        with open(log, "ab") as sink:
            with self.lock:
                if self.stopping:
                    raise Stopped("stopped")
                proc = subprocess.Popen([sys.executable, "-m", *command], stdout=sink,
                                        stderr=subprocess.STDOUT, env=env)  # fmt: skip
                self.live.add(proc)
            code = proc.wait()
            with self.lock:
                self.live.discard(proc)
        if self.stopping:
            raise Stopped("stopped")
        if code:
            raise RuntimeError(f"{' '.join(command[:2])} exited with {code}; see {log}")

    def stop(self) -> None:
        """Terminate the children (their checkpoints are atomic: a rerun resumes)."""
        with self.lock:
            self.stopping = True
            for proc in self.live:
                proc.terminate()


def run_job(job: Job, runner: Runner, steps: int) -> dict[str, float]:
    """Train the job unless its run is finished, evaluate it unless done -> seconds of each."""
    seconds: dict[str, float] = {}
    if trained_step(job) < steps:
        t0 = time.perf_counter()
        runner.train(job, steps)
        seconds["train_s"] = time.perf_counter() - t0
    if "train_s" in seconds or not evaluated(job):
        t0 = time.perf_counter()
        runner.evaluate(job)
        seconds["eval_s"] = time.perf_counter() - t0
    return seconds


def run_all(
    jobs: Sequence[Job],
    runner: Runner,
    steps: int,
    parallel: int,
    progress: bool = True,
    on_done: Callable[[str, dict[str, float]], None] | None = None,
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Every job not yet done, ``parallel`` at a time in the given order -> (seconds per job
    that ran something, one-line failures). A failed job does not stop the others;
    ``on_done(name, seconds)`` is called as each job finishes."""
    todo = [j for j in jobs if not (trained_step(j) >= steps and evaluated(j))]
    timings: dict[str, dict[str, float]] = {}
    failures: list[str] = []
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="reproduce", unit="run",
               disable=not progress)  # fmt: skip
    pool = ThreadPoolExecutor(max_workers=parallel)
    try:
        futures = {pool.submit(run_job, job, runner, steps): job for job in todo}
        for future in as_completed(futures):
            job = futures[future]
            try:
                timings[job.name] = future.result()
                if on_done is not None:
                    on_done(job.name, timings[job.name])
            except Stopped:
                continue
            except Exception as e:  # noqa: BLE001 -- one line per failed job, the rest go on
                failures.append(f"{job.name}: {e}")
            bar.set_postfix_str(job.name, refresh=False)
            bar.update(1)
    except BaseException:
        runner.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return timings, failures


def reproduce(
    out: Path,
    train_shards: str,
    val_shards: str,
    seeds: Sequence[int] = (0, 1),
    *,
    steps: int | None = None,
    parallel: int = 2,
    runner: Runner | None = None,
    progress: bool = True,
    models: Sequence[str] = MODEL_NAMES,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and evaluate every job (``models`` x ``seeds``), each with ``overrides`` too, then
    write ``OUT/report.md``; returns a summary (report, steps, jobs, estimated minutes, timings
    of this call, failures). Raises ``ConfigError`` on a bad override and ``ValueError`` when
    ``out`` holds runs of other steps or overrides."""
    out = Path(out)
    overrides = check_overrides(overrides)
    optim = tiny_schedule(train_shards, steps)
    steps = optim.steps
    claim_settings(out, {"steps": steps, "overrides": overrides})
    jobs = plan(out, seeds, models)
    estimate = makespan(jobs, parallel, steps / tiny().optim.steps)
    if progress:
        order = ", ".join(j.name for j in jobs)
        print(f"{len(jobs)} runs of {steps} steps, {parallel} at a time, longest first: {order}; "
              f"~{estimate:.0f} min of training on an idle 2-core machine (an estimate; "
              "evaluations and start-up add to it)")  # fmt: skip
    pinned = [f"optim.milestones={','.join(map(str, optim.milestones))}", "optim.schedule_blends=0"]
    runner = runner or Subprocesses(train_shards, val_shards, [*pinned, *overrides])
    timings, failures = run_all(
        jobs, runner, steps, parallel, progress, lambda name, t: _save_timings(out, {name: t})
    )
    path = out / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report(jobs, steps, val_shards, _load_timings(out), overrides))
    return {"report": str(path), "steps": steps, "jobs": [j.name for j in jobs],
            "estimated_minutes": estimate, "timings": timings, "failures": failures}  # fmt: skip


def check_overrides(overrides: Sequence[str]) -> list[str]:
    """``overrides`` as a list once ``tiny`` takes them (``ConfigError`` otherwise, or when one
    sets a key of ``PER_RUN_KEYS``: the config's own refusal of keys not to set directly)."""
    overrides = list(overrides)
    per_run = {key: "is set per run by the reproduction (use --seeds / --steps)"
               for key in PER_RUN_KEYS}  # fmt: skip
    typed_config.apply_overrides(tiny(), overrides, {**DERIVED_KEYS, **per_run})
    return overrides


def claim_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in ``OUT/settings.json``; ``ValueError`` when it records others."""
    path = out / "settings.json"
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise ValueError(f"{path}: not JSON; remove it or use another --out") from None
        if before != settings:
            raise ValueError(
                f"{out}: its runs were made with {json.dumps(before)}, this call asks for "
                f"{json.dumps(settings)}; use another --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1) + "\n")


def model_list(text: str) -> list[str]:
    """``c2,c3_internal`` -> those names; ``argparse.ArgumentTypeError`` for unknown or repeated
    ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        bad = unknown or names
        raise argparse.ArgumentTypeError(
            f"--models {text!r}: expected distinct names from {', '.join(MODEL_NAMES)} (got {bad})"
        )
    return names


def tiny_schedule(train_shards: str, steps: int | None) -> OptimConfig:
    """The ``tiny`` schedule of ``steps`` (None: tiny's own) stretched for the blends of
    ``train_shards`` (``trainer.schedule``): every run gets these numbers, and is finished at
    their last step."""
    overrides = [f"data.shards={train_shards}"] + ([f"optim.steps={steps}"] if steps else [])
    return resolve_schedule(apply_overrides(tiny(), overrides)).optim


def _load_timings(out: Path) -> dict[str, dict[str, float]]:
    path = out / "timings.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_timings(out: Path, timings: dict[str, dict[str, float]]) -> None:
    merged = _load_timings(out)
    for name, seconds in timings.items():
        merged[name] = {**merged.get(name, {}), **seconds}
    out.mkdir(parents=True, exist_ok=True)
    (out / "timings.json").write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")


def distinct_ints(text: str, name: str = "--seeds") -> list[int]:
    """``0,1,2`` -> [0, 1, 2]; ``argparse.ArgumentTypeError`` naming ``name`` unless they are
    distinct integers >= 0."""
    problem = f"{name} must be distinct integers >= 0 like 0,1, got {text!r}"
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(problem)
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="training shards (both blend kinds)")
    parser.add_argument("--val", required=True, help="validation shards")
    parser.add_argument("--out", type=Path, default=Path("runs/reproduce-tiny"))
    parser.add_argument("--seeds", type=distinct_ints, default=[0, 1], help="comma-separated [0,1]")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per run [tiny's], for 512 training blends (more on more)",
    )
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time [2]")
    parser.add_argument(
        "--models", type=model_list, default=list(MODEL_NAMES), help="comma-separated [all six]"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every run (repeatable), e.g. model.mask_rescale=true",
    )
    args = parser.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or args.parallel < 1:
        parser.error("--steps and --parallel must be at least 1")
    for spec in (args.train, args.val):
        if not Path(spec).exists():
            parser.error(f"{spec}: no such shards (make demo-shards makes the demo's)")
    signal.signal(signal.SIGTERM, raise_interrupt)  # stop the children as Ctrl-C does
    try:
        summary = reproduce(args.out, args.train, args.val, args.seeds, steps=args.steps,
                            parallel=args.parallel, models=args.models,
                            overrides=args.overrides)  # fmt: skip
    except (ConfigError, ValueError) as e:
        parser.error(str(e))
    except KeyboardInterrupt:
        print("stopped; rerun the same command to resume", file=sys.stderr)
        return 130
    print(f"report: {summary['report']}")
    for line in summary["failures"]:
        print(f"error: {line}", file=sys.stderr)
    return 1 if summary["failures"] else 0


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler that stops the command as Ctrl-C does (for SIGTERM)."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
