"""Hostile and careless input against the command lines, run as subprocesses (issue 14).

Each row of ``CASES`` is what a hostile or careless user does: a setup of the case's folder, a
list of ``Step`` (a command line, the exit code it must end with, what its stderr must say) and,
optionally, a check of the outcome. Whatever the case, every step must:

- end with the expected exit code and no traceback;
- on a refusal (exit code 2), say exactly one ``error: ...`` line on stderr, the last, naming the
  file and the reason (other lines may only be ``warning: skipped ...``);
- write nothing outside the output folders: everything else in the case's folder (sources,
  configs, the working directory, HOME and TMPDIR) is byte-identical afterwards;
- lose nothing already written: after a refusal or a failure the output folder is byte-identical;
  after a success every file that was there is, except the records a run rewrites and the shards
  the step names in ``redo``.

This first wave covers ``blendkit make-shards`` and the alpha cap (through ``inspect --verify``);
the trainer, evaluation and inspect cases of issue 14 are more rows of ``CASES``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from blendkit.kinetics import clip_stem
from blendkit.outdir import LOCK_NAME, is_temporary, locked, temporary_name
from tests.media import (
    make_corrupt,
    make_png_video,
    make_unknown_codec,
    make_video,
    png_image,
    zip_bomb_npz,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # per command: a hung command fails its case, never the whole suite
TINY = [  # a clip of 8 frames of 16x16, transparent blends only: seconds a run
    "--frames", "8", "--fps", "25", "--short-side", "20", "--crop", "16", "--audio-rate", "8000",
    "--preset", "ultrafast", "--blend", "transparent", "--samples-per-shard", "2", "--quiet",
]  # fmt: skip
RECORDS = {"config.json", "made_with.json", "inputs.json", "report.json", "manifest.parquet",
           LOCK_NAME}  # fmt: skip
N_GOOD = 4


# ----------------------------------------------------------------------------- media


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Good and hostile source files, made once; cases copy what they need."""
    root = tmp_path_factory.mktemp("media")
    files = {}
    for i in range(N_GOOD):  # Kinetics names, so the CSV case can list them
        path = root / f"{clip_stem(f'good{i:07d}', 10 * i, 10 * i + 10)}.mp4"
        make_video(path, n_frames=20 + 5 * i, audio=i % 2 == 0)
        files[f"good{i}"] = path
    huge = png_image(16000, 16000)  # 256 MB of pixels a frame, 250 KB a file's frame
    files["huge.mov"] = make_png_video(root / "huge.mov", [huge] * 10, declare=(16000, 16000))
    # declares 64x48 and its first frame is 64x48: only decoding finds the 16000x16000 ones
    first = png_image(64, 48)
    files["grows.mov"] = make_png_video(root / "grows.mov", [first] + [huge] * 9)
    files["thin.mov"] = make_png_video(  # 65535x1: 1310700x20 once resized to the short side
        root / "thin.mov", [png_image(65535, 1)] * 10, declare=(65535, 1)
    )
    files["flood.mov"] = make_png_video(  # 80000 fps: a 0.32 s clip spans 25600 frames
        root / "flood.mov", [png_image(16, 16)] * 40000, Fraction(1, 80000), declare=(16, 16)
    )
    files["unknown.avi"] = make_unknown_codec(root / "unknown.avi")
    files["corrupt.mp4"] = make_corrupt(root / "corrupt.mp4", files["good0"])
    return files


# ----------------------------------------------------------------------------- harness


@dataclass
class Workspace:
    """A case's folder: sources, output folders, and a working directory, HOME and TMPDIR of
    its own for the commands."""

    root: Path
    media: dict[str, Path]
    OUTPUTS = ("out", "out2")  # the folders commands may write (a trainer case adds its run)

    def __post_init__(self) -> None:
        for name in ("src", "cwd", "home", "tmp"):
            (self.root / name).mkdir(exist_ok=True)

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def out2(self) -> Path:
        return self.root / "out2"

    def add(self, *names: str) -> None:
        """Copy media files into the source folder (mtimes kept)."""
        for name in names:
            shutil.copy2(self.media[name], self.src / self.media[name].name)

    def shards(self, *extra: str, out: Path | None = None) -> list[str]:
        """A make-shards command line on the source folder."""
        return ["make-shards", str(self.src), "--out", str(out or self.out), *TINY, *extra]

    def report(self, out: Path | None = None) -> dict:
        return json.loads(((out or self.out) / "report.json").read_text())

    def skip_reasons(self) -> dict[str, str]:
        return {Path(s["path"]).name: s["reason"] for s in self.report()["skipped"]}


Args = list[str] | Callable[[Workspace], list[str]]


@dataclass
class Step:
    """One command: its arguments, the exit code it must end with, what its stderr must say,
    and what to change in the workspace before it runs."""

    args: Args
    code: int = 0
    says: tuple[str, ...] = ()
    program: str = "cli"  # the module run with python -m (trainer.cli, trainer.eval_cli, ...)
    before: Callable[[Workspace], None] | None = None
    redo: tuple[str, ...] = ()  # output files this step may rewrite (shards redone)
    hold_lock: bool = False  # the test holds the output folder's lock meanwhile


@dataclass
class Case:
    id: str
    setup: Callable[[Workspace], None]
    steps: list[Step]
    check: Callable[[Workspace], None] | None = None
    from_finished: bool = False  # start from a finished run's sources and shards


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


MPL_CACHE = tempfile.mkdtemp(prefix="blendkit-test-mpl-")


def run_cli(ws: Workspace, args: list[str], program: str = "cli") -> Result:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(ws.root / "home"),
        "TMPDIR": str(ws.root / "tmp"),
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
        # matplotlib's own font cache (a library's, not written from data) lives outside HOME
        "MPLCONFIGDIR": MPL_CACHE,
    }
    proc = subprocess.run(
        [sys.executable, "-m", program, *args],
        cwd=ws.root / "cwd",
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def snapshot(folder: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Every file and folder under ``folder`` (but those under ``skip``): path -> content hash."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if here / d not in skip)
        for d in dirnames:
            found[str((here / d).relative_to(folder)) + "/"] = "dir"
        for f in filenames:
            found[str((here / f).relative_to(folder))] = hashlib.sha1(
                (here / f).read_bytes()
            ).hexdigest()
    return found


def check_step(ws: Workspace, step: Step, args: list[str]) -> Result:
    outs = tuple(ws.root / name for name in ws.OUTPUTS)
    outside, inside = snapshot(ws.root, outs), {o: snapshot(o) for o in outs if o.is_dir()}
    if step.hold_lock:
        ws.out.mkdir(exist_ok=True)
        with locked(ws.out):
            result = run_cli(ws, args, step.program)
    else:
        result = run_cli(ws, args, step.program)
    where = (
        f"{' '.join(args[:2])} -> {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert result.code == step.code, where
    assert "Traceback" not in result.stderr + result.stdout, where
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    if step.code == 2:
        assert lines and lines[-1].startswith("error: "), where
        assert all(ln.startswith("warning: skipped ") for ln in lines[:-1]), where
    for needle in step.says:
        assert needle in (lines[-1] if step.code == 2 else result.stderr + result.stdout), where
    assert snapshot(ws.root, outs) == outside, f"written outside the output folder: {where}"
    for out, before in inside.items():
        after = snapshot(out) if out.is_dir() else {}
        # the lock file records its last holder, a refused run included
        may_change = RECORDS | set(step.redo) if result.code == 0 else {LOCK_NAME}
        lost = sorted(
            p for p, h in before.items() if p not in may_change and not _temporary(p)
            and after.get(p) != h
        )  # fmt: skip
        assert not lost, f"{out.name}: changed or lost {lost}: {where}"
    return result


def _temporary(name: str) -> bool:
    return is_temporary(Path(name).name)


@pytest.fixture(scope="module")
def finished(media, tmp_path_factory) -> Workspace:
    """Sources and the shards of one finished run (2 shards of 2 samples), for resume cases."""
    ws = Workspace(tmp_path_factory.mktemp("finished"), media)
    ws.add(*(f"good{i}" for i in range(N_GOOD)))
    check_step(ws, Step(ws.shards()), ws.shards())
    return ws


def _copy_finished(finished: Workspace, ws: Workspace) -> None:
    for name in ("src", "out"):
        shutil.copytree(finished.root / name, ws.root / name, dirs_exist_ok=True)


# ----------------------------------------------------------------------------- make-shards cases


def _hostile_media(ws: Workspace) -> None:
    ws.add("good0", "good1", "good2", "huge.mov", "grows.mov", "thin.mov", "flood.mov",
           "unknown.avi", "corrupt.mp4")  # fmt: skip


def _check_hostile_media(ws: Workspace) -> None:
    reasons = ws.skip_reasons()
    assert "max_pixels" in reasons["huge.mov"]  # refused from its header: nothing decoded
    assert "max_pixels" in reasons["grows.mov"]  # refused by the decoder before allocating
    assert "resized to 1310700x20" in reasons["thin.mov"]
    assert "max_frames" in reasons["flood.mov"]
    assert "unknown video codec" in reasons["unknown.avi"]
    counts = ws.report()["counts"]
    assert counts["samples"] + counts["failed_samples"] == counts["sources_usable"] >= 3


def _annotations(ws: Workspace) -> None:
    ws.add(*(f"good{i}" for i in range(3)))
    rows = [
        ["label", "youtube_id", "time_start", "time_end", "split"],
        ["a", "good0000000", "0", "10", "train"],
        ["a", "good0000001", "10", "20", "train"],
        ["b", "good0000002", "20", "30", "train"],
        ["a", "good0000000", "0", "10", "train"],  # the same row again
        ["c", "good0000001", "10.0", "20.0", "train"],  # the same file, another label
        ["a", "infinite000", "inf", "10", "train"],
        ["a", "notanumber0", "nan", "10", "train"],
        ["a", "overflow000", "1e999", "10", "train"],
        ["a", "negative000", "-5", "10", "train"],
        ["a", "toofew00000"],
        ["justonefield"],
        [],
        ["a", "", "0", "10", "train"],
    ]
    with open(ws.root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _check_annotations(ws: Workspace) -> None:
    report = ws.report()
    assert report["counts"]["sources_usable"] == 3
    assert report["counts"]["duplicate_inputs"] == 2
    bad = {s["path"]: s["reason"] for s in report["skipped"]}
    for line in (7, 8, 9, 10, 11, 12, 14):  # the CSV's line numbers (the blank one is 13)
        assert bad[f"train.csv:{line}"].startswith("bad annotation row"), bad
    assert bad["train.csv:5"].startswith("duplicate") and bad["train.csv:6"].startswith("dup")
    table = pq.read_table(ws.out / "manifest.parquet").to_pylist()
    assert table and all(r["v1_youtube_id"] != r["v2_youtube_id"] for r in table)


def _config_file(name: str, content: bytes) -> Callable[[Workspace], list[str]]:
    def args(ws: Workspace) -> list[str]:
        (ws.root / name).write_bytes(content)
        return ws.shards("--config", str(ws.root / name))

    return args


def _check_caps_are_options(ws: Workspace) -> None:
    config = json.loads((ws.out / "config.json").read_text())
    assert config["limits"]["max_pixels"] == 5000  # the option wins over the file's 1000


def _change_a_source(ws: Workspace) -> None:
    make_video(ws.src / ws.media["good1"].name, n_frames=30, width=48, height=64)


def _check_changed_source(ws: Workspace) -> None:
    redone = ws.report()["redone_shards"]
    assert redone, "a shard read the changed video"
    read = [  # the shards whose sidecar names the changed video
        i for i in range(2)
        if ws.media["good1"].name in (ws.out / f"shard-{i:06d}.json").read_text()
    ]  # fmt: skip
    assert redone == read
    for i in range(2):  # what a fresh run on the changed sources makes, byte for byte
        name = f"shard-{i:06d}.tar"
        assert (ws.out / name).read_bytes() == (ws.out2 / name).read_bytes()


def _remove_a_source(ws: Workspace) -> None:
    (ws.src / ws.media["good2"].name).unlink()


def _user_files(ws: Workspace) -> None:
    for name in (".notes.tmp", "draft.tmp", ".shard-000001.tar.tmp"):
        (ws.out / name).write_text("the user's")
    (ws.out / temporary_name("shard-000000.tar", "1f")).write_bytes(b"left by a killed run")


def _check_user_files(ws: Workspace) -> None:
    for name in (".notes.tmp", "draft.tmp", ".shard-000001.tar.tmp"):
        assert (ws.out / name).read_text() == "the user's"
    assert not (ws.out / temporary_name("shard-000000.tar", "1f")).exists()


def _foreign_out(ws: Workspace) -> None:
    ws.add("good0", "good1")
    ws.out.mkdir()
    (ws.out / "notes.txt").write_text("mine")
    (ws.out / "report.json").write_text('{"mine": true}')


def _zip_bombs(ws: Workspace) -> None:
    """Shard 0's alpha.npz members become zip bombs that inflate to 256 MiB (one with a second
    member, so readers take np.load's path)."""
    path = ws.out / "shard-000000.tar"
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    bombs = iter([zip_bomb_npz(256 << 20), zip_bomb_npz(256 << 20, extra_member=True)])
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            if member.name.endswith(".alpha.npz"):
                data = next(bombs)
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


CASES = [
    Case("hostile-media", _hostile_media, [Step(lambda ws: ws.shards())], _check_hostile_media),
    Case(
        "caps-are-options",
        lambda ws: ws.add("good0", "good1"),
        [
            Step(
                _config_file("c.json", b'{"limits": {"max_pixels": 1000}}'),
                code=2,
                says=("need at least two usable videos",),
            ),
            Step(
                lambda ws: [
                    *_config_file("c.json", b'{"limits": {"max_pixels": 1000}}')(ws),
                    "--max-pixels",
                    "5000",
                ]
            ),
        ],
        _check_caps_are_options,
    ),  # fmt: skip
    Case(
        "annotation-rows",
        _annotations,
        [Step(lambda ws: ws.shards("--annotations", str(ws.root / "train.csv")))],
        _check_annotations,
    ),
    Case(
        "config-not-an-object",
        lambda ws: ws.add("good0", "good1"),
        [
            Step(_config_file("list.json", b"[1, 2]"), 2, ("list.json", "JSON object")),
            Step(_config_file("bin.json", bytes(range(256)) * 4), 2, ("bin.json", "not a JSON")),
            Step(_config_file("nan.json", b'{"min_mix_psnr": NaN}'), 2, ("min_mix_psnr", "finite")),
            Step(_config_file("lim.json", b'{"limits": 5}'), 2, ("limits", "mapping")),
        ],
        lambda ws: None if not ws.out.exists() else pytest.fail("out written"),
    ),  # fmt: skip
    Case(
        "non-finite-options",
        lambda ws: ws.add("good0", "good1"),
        [
            Step(lambda ws: ws.shards("--fps", "nan"), 2, ("fps", "finite")),
            Step(lambda ws: ws.shards("--fps", "inf"), 2, ("fps", "finite")),
            Step(lambda ws: ws.shards("--max-frames", "0"), 2, ("max_frames", "positive")),
        ],
        lambda ws: None if not ws.out.exists() else pytest.fail("out written"),
    ),  # fmt: skip
    Case(
        "bad-option-then-fixed",
        lambda ws: ws.add("good0", "good1"),
        [
            Step(lambda ws: ws.shards("--preset", "bogus"), 2, ("preset", "bogus")),
            Step(lambda ws: ws.shards()),
        ],
    ),  # fmt: skip
    Case(
        "too-few-videos-then-fixed",
        lambda ws: ws.add("good0"),
        [
            Step(lambda ws: ws.shards(), 2, ("src", "need at least two usable videos")),
            Step(lambda ws: ws.shards("--seed", "5"), before=lambda ws: ws.add("good1", "good2")),
        ],
    ),  # fmt: skip
    Case(
        "resume-after-a-source-changed",
        lambda ws: None,
        [
            Step(
                lambda ws: ws.shards(),
                before=_change_a_source,
                redo=(
                    "shard-000000.tar",
                    "shard-000000.json",
                    "shard-000001.tar",
                    "shard-000001.json",
                ),
            ),
            Step(lambda ws: ws.shards(out=ws.out2)),
        ],
        _check_changed_source,
        from_finished=True,
    ),  # fmt: skip
    Case(
        "resume-after-a-source-is-gone",
        lambda ws: None,
        [
            Step(
                lambda ws: ws.shards(),
                2,
                ("inputs.json", "good0000002", "gone"),
                before=_remove_a_source,
            )
        ],
        from_finished=True,
    ),  # fmt: skip
    Case(
        "second-run-on-a-locked-folder",
        lambda ws: ws.add("good0", "good1"),
        [
            Step(
                lambda ws: ws.shards(),
                2,
                ("another make-shards", f"pid {os.getpid()}"),
                hold_lock=True,
            )
        ],
    ),  # fmt: skip
    Case(
        "out-is-not-a-shard-folder",
        _foreign_out,
        [Step(lambda ws: ws.shards(), 2, ("out", "not a blendkit shard folder"))],
    ),
    Case(
        "only-blendkit-temporaries-deleted",
        lambda ws: None,
        [Step(lambda ws: ws.shards(), before=_user_files)],
        _check_user_files,
        from_finished=True,
    ),
    Case(
        "alpha-zip-bombs",
        lambda ws: None,
        [
            Step(
                lambda ws: ["inspect", str(ws.out), "--verify", "--json"],
                code=1,
                says=("max_alpha_bytes",),
                before=_zip_bombs,
            )
        ],
        from_finished=True,
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case: Case, media, finished, tmp_path):
    ws = Workspace(tmp_path, media)
    if case.from_finished:
        _copy_finished(finished, ws)
    case.setup(ws)
    for step in case.steps:
        if step.before is not None:
            step.before(ws)
        args = step.args(ws) if callable(step.args) else step.args
        check_step(ws, step, args)
    if case.check is not None:
        case.check(ws)
