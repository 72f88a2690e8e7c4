"""``make spread`` (``trainer.spread``): its sets, the table it writes from evaluated runs, and
its option errors (the runs themselves go through ``trainer.reproduce``, tested there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.spread import ShardSet, collect, main, plan_sets, write_report


def _evaluated(s: ShardSet, seed: int, step: int, transparent: float, occlusion: float) -> None:
    folder = s.out / "eval" / f"c2-s{seed}"
    folder.mkdir(parents=True)
    metrics = {
        "step": step,
        "loss": {"transparent": transparent, "occlusion": occlusion, "both": 0.0},
        "identity_loss": {"transparent": 0.5, "occlusion": 0.4, "both": 0.45},
        "loss_unit": "paper: pixels in [-1, 1]",
    }
    (folder / "eval.json").write_text(json.dumps(metrics))


def test_sets_go_largest_first_and_name_their_folders(tmp_path):
    sets = plan_sets(tmp_path, [(1, 512), (0, 1024), (2, 512), (1, 512)])
    assert [s.name for s in sets] == ["d0-b1024", "d1-b512", "d2-b512"]  # duplicates once
    s = sets[0]
    assert (s.data, s.shards("train"), s.shards("validate"), s.out) == (
        tmp_path / "data" / "d0",
        tmp_path / "shards" / "d0-b1024" / "train",
        tmp_path / "shards" / "d0" / "validate",
        tmp_path / "sets" / "d0-b1024",
    )


def test_the_table_has_every_evaluated_run_and_counts_those_within_the_target(tmp_path):
    big, small = plan_sets(tmp_path, [(0, 1024), (1, 512)])
    _evaluated(big, 0, 1800, 0.30, 0.38)
    _evaluated(big, 1, 1800, 0.36, 0.36)
    _evaluated(small, 0, 900, 0.35, 0.44)  # seed 1 of this set never finished: no row
    path = write_report(tmp_path, collect([big, small], [0, 1], "c2"), "c2", 0.7)
    assert path.read_text().splitlines()[2:] == [
        "Loss (and its ratio to the identity baseline's) on each set's 48 validation blends; "
        "loss unit: paper: pixels in [-1, 1].",
        "",
        "| Data seed | Training blends | Steps | Seed | Transparent | Occlusion |",
        "| --- | --- | --- | --- | --- | --- |",
        "| 1 | 512 | 900 | 0 | 0.350 (0.700x) | 0.440 (1.100x) |",
        "| 0 | 1024 | 1800 | 0 | 0.300 (0.600x) | 0.380 (0.950x) |",
        "| 0 | 1024 | 1800 | 1 | 0.360 (0.720x) | 0.360 (0.900x) |",
        "",
        "Transparent at or below 0.7x the identity: 2 of 3 runs (largest ratio 0.720x).",
    ]
    assert main(["--out", str(tmp_path), "--sets", "0:1024,1:512", "--report"]) == 0
    assert path.read_text().count("| 1800 |") == 2


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--sets", "0:1024,1"], "--sets must be DATA_SEED:BLENDS pairs"),
        (["--sets", "0:0"], "--sets must be DATA_SEED:BLENDS pairs"),
        (["--blends", "512,512"], "--blends must be distinct integers"),
        (["--parallel", "0"], "--parallel, --workers, --steps and --blends must be at least 1"),
    ],
)
def test_bad_options_are_one_line_errors(argv, said, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert said in last


def test_it_says_its_runs_and_each_sets_stretched_steps_and_resumes_through_reproduce(
    tmp_path, monkeypatch, capsys
):
    import trainer.spread as spread_module

    made, trained = [], []
    monkeypatch.setattr(spread_module, "make_set", lambda s, workers: made.append(s.name))
    monkeypatch.setattr(
        spread_module,
        "reproduce",
        lambda out, train, val, seeds, **kw: (
            trained.append((out.name, train, val, kw["steps"]))
            or {"failures": ["c2-s1: trainer.cli train exited with 1; see the log"]}
        ),
    )
    summary = spread_module.spread(tmp_path, [(1, 512), (0, 2048)], [0, 1], parallel=4)
    assert capsys.readouterr().out.splitlines()[0] == (
        "4 runs of tiny c2 (2 sets x seeds 0,1), 4 at a time; steps: d0-b2048 3600, d1-b512 900"
    )
    assert made == ["d0-b2048", "d1-b512"]  # largest first
    assert sorted(trained) == [
        (
            "d0-b2048",
            str(tmp_path / "shards/d0-b2048/train"),
            str(tmp_path / "shards/d0/validate"),
            None,
        ),
        (
            "d1-b512",
            str(tmp_path / "shards/d1-b512/train"),
            str(tmp_path / "shards/d1/validate"),
            None,
        ),
    ]
    assert sorted(summary["failures"]) == [
        "d0-b2048: c2-s1: trainer.cli train exited with 1; see the log",
        "d1-b512: c2-s1: trainer.cli train exited with 1; see the log",
    ]


def test_sets_are_made_as_make_demo_shards_makes_the_demos():
    import re

    from trainer.spread import VAL_BLENDS, VAL_SEED

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    validate = makefile[makefile.index("--out $(DEMO_SHARDS)/validate") :].split("\n\t$(BIN)")[0]
    numbers = dict(re.findall(r"--(num-samples|seed|samples-per-shard) (\d+)", validate))
    expected = {"num-samples": VAL_BLENDS, "seed": VAL_SEED, "samples-per-shard": 16}
    assert numbers == {k: str(v) for k, v in expected.items()}
