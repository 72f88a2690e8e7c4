"""``make reproduce-tiny`` (``trainer.reproduce``): its schedule, resume, failures and report,
on a fake runner that writes what the trainer and the evaluation would."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from trainer import checkpoint as ckpt
from trainer import paper
from trainer.models.registry import MODEL_NAMES, TINY_RUN_MINUTES
from trainer.reproduce import Job, Subprocesses, evaluated, main, makespan, plan, reproduce
from trainer.reproduce_report import spread

STEPS = 20


class FakeRunner:
    """Writes a checkpoint name at the asked step and an eval.json whose losses encode the job:
    loss = identity * (0.5 + model index / 20 + seed / 100)."""

    def __init__(self, fail: str = "", interrupt: str = "") -> None:
        self.calls: list[str] = []
        self.fail, self.interrupt = fail, interrupt
        self.stopped = False
        self.lock = threading.Lock()

    def train(self, job: Job, steps: int) -> None:
        with self.lock:
            self.calls.append(f"train {job.name}")
        if job.name == self.interrupt:
            raise KeyboardInterrupt
        if job.name == self.fail:
            raise RuntimeError("trainer.cli train exited with 1; see the log")
        path = ckpt.checkpoint_path(job.run, steps)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")

    def evaluate(self, job: Job) -> None:
        with self.lock:
            self.calls.append(f"eval {job.name}")
        identity = {"transparent": 0.4, "occlusion": 0.36}
        factor = 0.5 + MODEL_NAMES.index(job.model) / 20 + job.seed / 100
        metrics = {
            "step": ckpt.checkpoints(job.run)[-1][0],
            "model": job.model,
            "params": 1_000_000 + MODEL_NAMES.index(job.model),
            "samples": {"transparent": 24, "occlusion": 24, "both": 48},
            "identity_loss": identity,
            "loss": {k: v * factor for k, v in identity.items()},
            "control_accuracy": {"transparent": 50.0 + job.seed, "occlusion": 60.0},
            "pixel_range": "[0,1]",
            "loss_unit": "paper: pixels in [-1, 1]",
        }
        job.eval_dir.mkdir(parents=True, exist_ok=True)
        (job.eval_dir / "eval.json").write_text(json.dumps(metrics))

    def stop(self) -> None:
        self.stopped = True


def test_the_plan_puts_the_longest_runs_first_and_estimates_two_slots():
    jobs = plan(Path("out"), [0, 1])
    assert len(jobs) == 2 * len(MODEL_NAMES) and set(TINY_RUN_MINUTES) == set(MODEL_NAMES)
    minutes = [j.minutes for j in jobs]
    assert minutes == sorted(minutes, reverse=True)
    longest = max(TINY_RUN_MINUTES, key=TINY_RUN_MINUTES.get)
    assert [j.name for j in jobs[:2]] == [f"{longest}-s0", f"{longest}-s1"]
    assert jobs[0].run == Path("out/runs") / jobs[0].name
    # greedy on two slots: 8, 2 | 5, 4 | ... by hand for a small list
    small = [Job(m, 0, Path("o")) for m in sorted(TINY_RUN_MINUTES, key=TINY_RUN_MINUTES.get)]
    ordered = sorted(small, key=lambda j: -j.minutes)
    slots = [0.0, 0.0]
    for j in ordered:
        slots[slots.index(min(slots))] += j.minutes
    assert makespan(ordered, 2) == max(slots)
    assert makespan(ordered, 1) == sum(j.minutes for j in ordered)


def test_a_rerun_skips_finished_runs_and_evaluations(tmp_path):
    fake = FakeRunner()
    summary = reproduce(tmp_path, "train", "val", [0, 1], steps=STEPS, runner=fake, progress=False)
    jobs = plan(tmp_path, [0, 1])
    assert sorted(fake.calls) == sorted(
        [f"train {j.name}" for j in jobs] + [f"eval {j.name}" for j in jobs]
    )
    assert summary["failures"] == [] and all(evaluated(j) for j in jobs)
    assert set(json.loads((tmp_path / "timings.json").read_text())) == {j.name for j in jobs}

    again = FakeRunner()
    reproduce(tmp_path, "train", "val", [0, 1], steps=STEPS, runner=again, progress=False)
    assert again.calls == []

    # an evaluation lost, a run stopped before its last checkpoint, a run never started
    a, b, c = jobs[0], jobs[3], jobs[5]
    (a.eval_dir / "eval.json").unlink()
    ckpt.checkpoint_path(b.run, STEPS).rename(ckpt.checkpoint_path(b.run, STEPS // 2))
    for path in c.run.rglob("*"):
        path.unlink() if path.is_file() else None
    third = FakeRunner()
    reproduce(tmp_path, "train", "val", [0, 1], steps=STEPS, runner=third, progress=False)
    assert sorted(third.calls) == sorted(
        [f"eval {a.name}", f"train {b.name}", f"eval {b.name}", f"train {c.name}", f"eval {c.name}"]
    )
    assert all(evaluated(j) for j in jobs)


def test_a_failed_run_is_one_line_and_the_others_go_on(tmp_path):
    jobs = plan(tmp_path, [0])
    fake = FakeRunner(fail=jobs[1].name)
    summary = reproduce(tmp_path, "train", "val", [0], steps=STEPS, runner=fake, progress=False)
    assert summary["failures"] == [f"{jobs[1].name}: trainer.cli train exited with 1; see the log"]
    assert [evaluated(j) for j in jobs] == [j != jobs[1] for j in jobs]
    report = (tmp_path / "report.md").read_text()
    assert f"| {paper.LABELS[jobs[1].model]} | - | - | - | 0 |" in report


def test_an_interrupt_stops_the_runner_and_keeps_what_finished(tmp_path):
    jobs = plan(tmp_path, [0])
    fake = FakeRunner(interrupt=jobs[-1].name)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tmp_path, "train", "val", [0], steps=STEPS, runner=fake, parallel=1,
                  progress=False)  # fmt: skip
    assert fake.stopped
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert set(timings) == {j.name for j in jobs[:-1]}  # saved as each job finished
    rerun = FakeRunner()
    reproduce(tmp_path, "train", "val", [0], steps=STEPS, runner=rerun, progress=False)
    assert rerun.calls == [f"train {jobs[-1].name}", f"eval {jobs[-1].name}"]


def test_the_report_has_both_tables_with_the_spread_over_seeds_and_the_papers_figures(tmp_path):
    reproduce(tmp_path, "train", "val", [0, 1], steps=STEPS, runner=FakeRunner(), progress=False)
    report = (tmp_path / "report.md").read_text()
    assert spread([0.2, 0.4]) == "0.300 (0.200-0.400)" and spread([0.25]) == "0.250"
    assert spread([]) == "-" and spread([50.0, 51.0], 1, "%") == "50.5% (50.0-51.0%)"
    c2 = [line for line in report.splitlines() if line.startswith(f"| {paper.LABELS['c2']} |")]
    t = [0.4 * (0.5 + MODEL_NAMES.index("c2") / 20 + s / 100) for s in (0, 1)]
    o = [0.36 * (0.5 + MODEL_NAMES.index("c2") / 20 + s / 100) for s in (0, 1)]
    assert c2[0] == (f"| C2 | {spread(t)} | {spread(o)} | 1.00M | 2 | 0.120 | 0.190 | 27.1M |")
    assert c2[1] == (
        f"| C2 | {spread(t)} | 50.5% (50.0-51.0%) (chance) | 60.0% (chance) | 2 "
        "| 0.120 | 50.0% (chance) |"
    )
    identity = "| Identity | 0.400 | 0.360 | - | - | 0.364 | 0.362 | - |"
    assert identity in report
    assert "Every loss is in the paper's unit" in report
    # the fake's losses grow with the registry's order: of the paper's Table 1 ranking
    # (C2 < C2 w/o masking < CentrifugePC < Centrifuge on transparent) no pair holds; of
    # Table 2's (C3 internal < C2 < C3 det) one does, C2 < C3 det
    assert "- Table 1, transparent: 0 of 6 pairs as in the paper; not: C2 < C2 w/o" in report
    assert "- Table 2, transparent: 1 of 3 pairs as in the paper; not: " in report
    assert spread([0.4, 0.4]) == "0.400"


def test_subprocess_failures_name_the_log_and_bad_options_exit_2(tmp_path):
    runner = Subprocesses("train", "val")
    log = tmp_path / "x.log"
    with pytest.raises(RuntimeError, match=f"no_such_module exited with 1; see {log}"):
        runner._run(["no_such_module"], log)
    assert "No module named no_such_module" in log.read_text()
    for argv in (["--train", "t", "--val", "v", "--seeds", "0,0"], ["--seeds", "0"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2


def test_shards_of_more_blends_than_the_demos_give_every_run_the_stretched_schedule(
    tmp_path, monkeypatch
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainer.config import load_config
    from trainer.reproduce import tiny_schedule

    shards = tmp_path / "big"  # a manifest of 1024 blends, twice the demo's
    shards.mkdir()
    pq.write_table(
        pa.table({"blend": ["transparent", "occlusion"] * 512}), shards / "manifest.parquet"
    )
    assert (
        tiny_schedule(str(shards), None).steps,
        tiny_schedule(str(shards), None).milestones,
    ) == (
        1800,
        [1200],
    )
    assert tiny_schedule(str(shards), 300).steps == 600
    commands: list[list[str]] = []
    monkeypatch.setattr(Subprocesses, "_run", lambda self, command, log: commands.append(command))
    summary = reproduce(tmp_path / "out", str(shards), "val", [0], progress=False)
    assert summary["steps"] == 1800
    trains = [c for c in commands if c[:2] == ["trainer.cli", "train"]]
    assert len(trains) == len(MODEL_NAMES)
    for command in trains:
        at = command.index("--steps")
        assert command[at + 1] == "1800"
        assert command[-2:] == ["optim.milestones=1200", "optim.schedule_blends=0"]
        overrides = [arg for arg in command if "=" in arg and not arg.startswith("val_shards")]
        optim = load_config("tiny", [*overrides, "optim.steps=1800"]).optim
        assert (optim.steps, optim.milestones, optim.schedule_blends) == (1800, [1200], 0)


def test_set_gives_every_run_an_override_and_the_report_says_so(tmp_path, monkeypatch):
    from trainer.config import load_config

    commands: list[list[str]] = []
    monkeypatch.setattr(Subprocesses, "_run", lambda self, command, log: commands.append(command))
    reproduce(tmp_path / "sub", "train", "val", [0], steps=STEPS, progress=False,
              models=["c2", "c3_internal"], overrides=["model.mask_rescale=true"])  # fmt: skip
    trains = [c for c in commands if c[:2] == ["trainer.cli", "train"]]
    assert sorted(c[c.index("--model") + 1] for c in trains) == ["c2", "c3_internal"]
    for command in trains:
        assert command[-1] == "model.mask_rescale=true"
        overrides = [arg for arg in command if "=" in arg and not arg.startswith("val_shards")]
        assert load_config("tiny", overrides).model.mask_rescale is True

    fake = FakeRunner()
    reproduce(tmp_path / "fake", "train", "val", [0], steps=STEPS, runner=fake, progress=False,
              models=["c2"], overrides=["model.mask_rescale=true"])  # fmt: skip
    assert fake.calls == ["train c2-s0", "eval c2-s0"]
    report = (tmp_path / "fake" / "report.md").read_text()
    assert "Set on every run: `model.mask_rescale=true`." in report
    assert json.loads((tmp_path / "fake" / "settings.json").read_text()) == {
        "steps": STEPS,
        "overrides": ["model.mask_rescale=true"],
    }


def test_a_rerun_with_other_steps_or_overrides_is_refused_and_bad_options_exit_2(tmp_path):
    reproduce(tmp_path, "train", "val", [0], steps=STEPS, runner=FakeRunner(), progress=False,
              models=["c2"])  # fmt: skip
    for kwargs in ({"steps": STEPS + 1}, {"steps": STEPS, "overrides": ["optim.lr=0.001"]}):
        again = FakeRunner()
        with pytest.raises(
            ValueError, match=f"^{tmp_path}: its runs were made with .*another --out"
        ):
            reproduce(tmp_path, "train", "val", [0], runner=again, progress=False, **kwargs)
        assert again.calls == []
    shards = tmp_path / "shards"
    shards.mkdir()
    common = ["--train", str(shards), "--val", str(shards), "--out", str(tmp_path / "o")]
    for extra in (["--set", "seed=3"], ["--set", "model.nope=1"], ["--models", "c2,c9"],
                  ["--models", "c2,c2"]):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main([*common, *extra])
        assert e.value.code == 2
    assert not (tmp_path / "o").exists()
