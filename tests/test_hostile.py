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

The first rows cover ``blendkit make-shards`` and the alpha cap (through ``inspect --verify``);
then ``inspect``, shard lists (``pipe:``), training (``python -m trainer.cli``, tiny networks
and a few steps on 8x32x32 clips) and evaluation (``python -m trainer.eval_cli``). A trainer
case's run folder is ``out``, an evaluated run lies among the inputs and ``--out`` is ``out2``.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import io
import json
import os
import re
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
from tests.tiny_shards import sample_members, write_tiny_shards

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
    data: Path | None = None  # trainer cases: the shared training shards (read only)
    OUTPUTS = ("out", "out2")  # the folders commands may write (a trainer case's run is out)

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
    expect: Callable[[Result], None] | None = None  # a check of what the command printed


@dataclass
class Case:
    id: str
    setup: Callable[[Workspace], None]
    steps: list[Step]
    check: Callable[[Workspace], None] | None = None
    from_finished: bool = False  # start from a finished run's sources and shards
    from_trained: bool = False  # start from a finished training run (in out)
    trainer: bool = False  # the case reads the shared training shards (ws.data)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


MPL_CACHE = tempfile.mkdtemp(prefix="blendkit-test-mpl-")
TORCH_CACHE = tempfile.mkdtemp(prefix="blendkit-test-torch-")
for _cache in (MPL_CACHE, TORCH_CACHE):  # shared by the cases; gone when the session ends
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


def run_cli(ws: Workspace, args: list[str], program: str = "cli") -> Result:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(ws.root / "home"),
        "TMPDIR": str(ws.root / "tmp"),
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
        # matplotlib's font cache and torch's compile cache (libraries', not written from
        # data; torch makes its folder in TMPDIR on import) live outside the case's folder
        "MPLCONFIGDIR": MPL_CACHE,
        "TORCHINDUCTOR_CACHE_DIR": TORCH_CACHE,
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
    if step.expect is not None:
        step.expect(result)
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


# ----------------------------------------------------------------------------- training data

TRAIN, EVAL = "trainer.cli", "trainer.eval_cli"
# frames, height, width: 16 frames so that the AAC audio at 8000 Hz (5 blocks of 1024 samples)
# decodes to the stated length; every other frame kept, the smallest clips I3D takes
CLIP = (16, 32, 32)
TRAIN_OPTS = [  # a tiny network, a few seconds a step on one core
    "model.width=0.0625", "model.n_mels=16", "data.n_mels=16", "data.frame_stride=2",
    "pixel_pool=1", "data.workers=0", "optim.batch=2", "ckpt_every=1", "keep_ckpts=10",
    "log_every=1", "progress=false", "device=cpu",
]  # fmt: skip
RESUMED = ("metrics.jsonl", "trained_on.json")  # the files a resumed run rewrites
HOSTILE_TEXT = "../../x /abs/x <script>alert(1)</script> $\\frac$"
RUN_NAME = "r<i>$\\x$&amp;"  # a run folder named with HTML and a bad matplotlib formula


def _tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for name, data in members.items():
                info = tarfile.TarInfo(f"{key}.{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _with_meta(members: dict[str, bytes], **changes) -> dict[str, bytes]:
    meta = json.loads(members["json"]) | changes
    return members | {"json": json.dumps(meta).encode()}


def _hostile_text_sample(index: int) -> tuple[str, dict[str, bytes]]:
    """A good sample whose every free-text field is a path trick or HTML (its blend too, on
    odd indices: such a sample is left out by every reader)."""
    key, members = sample_members(index, False, *CLIP)
    meta = json.loads(members["json"])
    for side in ("v1", "v2"):
        meta[side] |= {"label": HOSTILE_TEXT, "youtube_id": HOSTILE_TEXT, "path": "/abs/x"}
    if index % 2:
        meta["blend"] = "../../x"
    return key, members | {"json": json.dumps(meta).encode()}


def _hostile_member_samples(media: dict[str, Path], root: Path) -> list:
    """Samples 20-24: their json is right but one member is hostile (or the json lies)."""
    made = [sample_members(20 + i, False, *CLIP) for i in range(5)]
    (k0, m0), (k1, m1), (k2, m2), (k3, m3), (k4, m4) = made
    huge = png_image(16000, 16000)
    grows = make_png_video(root / "grows.mov", [png_image(32, 32)] + [huge] * 3)  # declares 32x32
    return [
        (k0, m0 | {"alpha.npz": zip_bomb_npz(32 << 20)}),  # inflates to 32 MiB: under 64 MiB
        (k1, m1 | {"v1.mp4": media["huge.mov"].read_bytes()}),  # declares 16000x16000
        (k2, m2 | {"v1.mp4": grows.read_bytes()}),  # only decoding meets the 16000x16000 frames
        (k3, m3 | {"v2.mp4": media["flood.mov"].read_bytes()}),  # 40000 frames of 16x16
        (k4, _with_meta({k: v for k, v in m4.items() if k != "a1.m4a"}, audio_samples=10**9)),
    ]


HOSTILE_SKIPS = {  # key -> what its skip says (the caps are the sample's own sizes)
    "000000020": "over the cap of 69632 (limits.max_alpha_bytes)",
    "000000021": "frames of 16000x16000 are over the cap of 1024 pixels (limits.max_pixels)",
    "000000022": "limits.max_pixels",
    "000000023": "over 16 frames (limits.max_frames)",
    "000000024": "json says 1000000000 audio samples, its clip has 5120",
    "000000006": "(geometry_mismatch): clips of Geometry(frames=16, fps=25.0, height=32, width=64",
}


def _check_skips(result: Result) -> None:
    lines = result.stderr.splitlines()
    for key, needle in HOSTILE_SKIPS.items():
        said = [ln for ln in lines if f":{key} (" in ln and ln.startswith("WARNING")]
        assert said and needle in said[0], (key, said or result.stderr)


@pytest.fixture(scope="module")
def train_data(media, tmp_path_factory) -> Path:
    """Shards of 16x32x32 clips: ``shards`` (2 shards of 3 samples, HTML and path tricks in the
    labels and ids); ``mixed``: a good shard, one of hostile members, one of 16x32x64 clips and
    a good one; ``texts``: every free-text field hostile."""
    root = tmp_path_factory.mktemp("train-data")
    write_tiny_shards(root / "shards", n_shards=2, per_shard=3, hostile=True, geometry=CLIP)
    mixed = root / "mixed"
    write_tiny_shards(mixed, n_shards=1, per_shard=3, geometry=CLIP)
    _tar(mixed / "shard-000001.tar", _hostile_member_samples(media, root))
    write_tiny_shards(mixed, n_shards=1, per_shard=3, geometry=(16, 32, 64), first=2)
    write_tiny_shards(mixed, n_shards=1, per_shard=3, geometry=CLIP, first=3)
    (root / "texts").mkdir()
    _tar(root / "texts" / "shard-000000.tar", [_hostile_text_sample(i) for i in range(6)])
    return root


def _train(ws: Workspace, *extra: str, run: Path | None = None, shards: str = "shards",
           steps: int = 2) -> list[str]:  # fmt: skip
    """A tiny training command line on the shared shards."""
    where = ["--shards", str(ws.data / shards), "--run", str(run or ws.out)]
    return ["train", "--config", "tiny", *where, "--steps", str(steps), *TRAIN_OPTS, *extra]


@pytest.fixture(scope="module")
def trained(train_data, media, tmp_path_factory) -> Path:
    """A finished run of 2 steps (checkpoints at steps 1 and 2)."""
    ws = Workspace(tmp_path_factory.mktemp("trained"), media, data=train_data)
    check_step(ws, Step(_train, program=TRAIN), _train(ws))
    return ws.out


def _eval(ws: Workspace, *runs: Path, shards: str | Path = "shards", out: Path | None = None,
          extra: tuple = ()) -> list[str]:  # fmt: skip
    """An evaluation command line (``shards``: a name in the shared data, or a path)."""
    return [
        "eval", *map(str, runs), "--shards", str(ws.data / shards), "--out", str(out or ws.out2),
        "--device", "cpu", "--offsets", "0", "--max-samples", "4", *extra,
    ]  # fmt: skip


def _steps_logged(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _run_as_input(ws: Workspace, name: str = "run") -> Path:
    """The finished training run (in out) moved among the inputs, as evaluation reads it."""
    run = ws.src / name
    shutil.move(ws.out, run)
    return run


# ----------------------------------------------------------------------------- shard lists


def _pipe_list(ws: Workspace) -> None:
    """A shard list whose second line runs a command that leaves a mark outside the outputs."""
    mark = ws.root / "cwd" / "PWNED"
    shard = ws.data / "shards" / "shard-000000.tar"
    (ws.root / "list.txt").write_text(
        f"# a list from a colleague\n{shard}\npipe:touch {mark}; cat {shard}\n"
    )
    (ws.root / "benign.txt").write_text(f"pipe:cat {shard}\npipe:cat {shard}\n")


def _list(ws: Workspace, name: str = "list.txt") -> str:
    return str(ws.root / name)


PIPE_REFUSED = ("list.txt:3", "--allow-pipe")


# ----------------------------------------------------------------------------- checkpoints


def _evil_checkpoint(path: Path, mark: Path) -> None:
    """A torch.save file whose unpickling would run a command (and leave ``mark``)."""

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {mark}",))

    import torch

    torch.save({"step": 2, "model": Evil()}, path)


def _bad_latest_checkpoints(ws: Workspace) -> None:
    folder = ws.out / "checkpoints"
    _evil_checkpoint(folder / "step-000000002.pt", ws.root / "cwd" / "PWNED")
    good = (folder / "step-000000001.pt").read_bytes()
    (folder / "step-000000003.pt").write_bytes(good[: len(good) // 2])  # cut mid-write


def _no_good_checkpoint(ws: Workspace) -> None:
    for path in (ws.out / "checkpoints").iterdir():
        path.write_bytes(path.read_bytes()[:100])


def _check_fell_back(ws: Workspace) -> None:
    assert _steps_logged(ws.out) == [1, 2, 3]


def _eval_bad_checkpoint(evil: bool) -> Callable[[Workspace], list[str]]:
    def args(ws: Workspace) -> list[str]:
        run = _run_as_input(ws)
        latest = run / "checkpoints" / "step-000000002.pt"
        if evil:
            _evil_checkpoint(latest, ws.root / "cwd" / "PWNED")
        else:
            latest.write_bytes(latest.read_bytes()[:1000])
        return _eval(ws, run)

    return args


# ----------------------------------------------------------------------------- resume


def _tear_the_log(ws: Workspace) -> None:
    with open(ws.out / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lr": 0.0005, "lo')  # killed mid-write


def _torn_and_copied(ws: Workspace) -> None:
    """The run killed mid-write of its log, and a copy of it in another folder."""
    _tear_the_log(ws)
    shutil.copytree(ws.out, ws.out2)


def _check_resumed_both(ws: Workspace) -> None:
    assert _steps_logged(ws.out) == _steps_logged(ws.out2) == [1, 2, 3]
    saved = json.loads((ws.out2 / "config.json").read_text())
    assert saved["run_dir"] == str(ws.out2)


# ----------------------------------------------------------------------------- configs


def _train_config(name: str, content: bytes) -> Callable[[Workspace], list[str]]:
    def args(ws: Workspace) -> list[str]:
        (ws.root / name).write_bytes(content)
        return ["train", "--config", str(ws.root / name), "--shards", str(ws.root)]

    return args


def _show_config(name: str, content: dict) -> Callable[[Workspace], list[str]]:
    def args(ws: Workspace) -> list[str]:
        (ws.root / name).write_text(json.dumps(content))
        return ["config", "--config", str(ws.root / name)]

    return args


def _printed(**expected) -> Callable[[Result], None]:
    """A check that the printed config holds ``expected`` (``optim__lr``: ``optim.lr``)."""

    def check(result: Result) -> None:
        tree = json.loads(result.stdout)
        for key, value in expected.items():
            node = tree
            for part in key.split("__"):
                node = node[part]
            assert node == value, (key, node, result.stderr)

    return check


def _no_notice(result: Result) -> None:
    assert "names no preset" not in result.stderr, result.stderr


# ----------------------------------------------------------------------------- evaluation


def _two_runs_one_folder(ws: Workspace) -> list[str]:
    """One run named with HTML and a bad formula, given twice: as itself and as
    ``run/checkpoints/..`` (whose name is ``..``)."""
    run = _run_as_input(ws, RUN_NAME)
    return _eval(ws, run, run / "checkpoints" / "..", shards="texts")


GENERATED = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?(?:report\.md|report\.html|eval\.json"
    r"|fig(?:5|7|10|6_[a-z]+)\.png|videos/example-\d+\.mp4|report_media/[vaf]\d{4,9}\.[a-z0-9]+)"
)


def _check_generated_names(ws: Workspace) -> None:
    files = sorted(p.relative_to(ws.out2).as_posix() for p in ws.out2.rglob("*") if p.is_file())
    assert files and all(GENERATED.fullmatch(f) for f in files), files
    folders = sorted(p.name for p in ws.out2.iterdir() if p.is_dir())
    assert folders == ["r_i_x_amp_", "r_i_x_amp_-2", "report_media"], folders
    assert len([f for f in files if "/videos/" in f]) == 4  # 2 example videos a run
    assert "$\\x$" in (ws.out2 / "report.md").read_text()  # the name, as text


# ----------------------------------------------------------------------------- inspect


def _bad_samples(ws: Workspace) -> None:
    """One shard: a good sample, one whose mix is no video, one whose json nests 100000 deep,
    one whose json is no object, one whose label is a bad formula, then a good one."""
    made = [sample_members(i, False, *CLIP) for i in range(6)]
    made[1][1]["mix.mp4"] = b"not a video"
    made[2][1]["json"] = b"[" * 100_000 + b"]" * 100_000
    made[3][1]["json"] = b'"a string"'
    made[4] = (made[4][0], _with_meta(made[4][1], v1=json.loads(made[4][1]["json"])["v1"] | {
        "label": "$\\frac$"}))  # fmt: skip
    ws.out2.mkdir()
    (ws.root / "set:v2").mkdir()
    _tar(ws.root / "set:v2" / "shard-000000.tar", [made[1], made[0], *made[2:]])


def _check_every_sample(result: Result) -> None:
    summary = json.loads(result.stdout)
    failed = sorted({f["sample"].rsplit(":", 1)[-1] for f in summary["verify"]["failures"]})
    assert failed == ["000000001", "000000002", "000000003"], summary["verify"]
    assert summary["verify"]["checked"] == 4  # 0, 1, 4, 5 have a json object


def _inspect(ws: Workspace, *extra: str) -> list[str]:
    return ["inspect", str(ws.root / "set:v2"), *extra]


# ----------------------------------------------------------------------------- careless


def _a_file(name: str) -> Callable[[Workspace], None]:
    def make(ws: Workspace) -> None:
        (ws.root / name).write_text("not a folder")

    return make


CASES += [
    Case(
        "pipe-needs-allow-pipe",
        _pipe_list,
        [
            Step(lambda ws: ["inspect", _list(ws)], 2, PIPE_REFUSED),
            Step(lambda ws: _train(ws, "--shards", _list(ws)), 2, PIPE_REFUSED, TRAIN),
            Step(lambda ws: _eval(ws, ws.out, shards=ws.root / "list.txt"), 2, PIPE_REFUSED, EVAL),
            Step(
                lambda ws: ["classifier", _list(ws), "--out", str(ws.out2 / "c.pt")],
                2,
                PIPE_REFUSED,
                EVAL,
            ),
            Step(
                lambda ws: ["inspect", _list(ws, "benign.txt"), "--allow-pipe"],
                0,
                ("2 shards, 6 samples",),
            ),
            Step(
                lambda ws: _train(ws, "--shards", _list(ws, "benign.txt"), "--allow-pipe", steps=1),
                0,
                ('"steps": 1',),
                TRAIN,
            ),
        ],
        trainer=True,
    ),  # fmt: skip
    Case(
        "training-skips-hostile-samples",
        lambda ws: None,
        [
            Step(
                lambda ws: _train(
                    ws,
                    "data.resampled=false",
                    "data.shuffle_buffer=0",
                    "data.remix=false",
                    "data.augment=false",
                    "data.blend=both",
                    shards="mixed",
                    steps=4,
                ),
                0,
                (),
                TRAIN,
                expect=_check_skips,
            )
        ],
        lambda ws: None if _steps_logged(ws.out) == [1, 2, 3, 4] else pytest.fail("steps"),
        trainer=True,
    ),  # fmt: skip
    Case(
        "resume-falls-back-to-a-checkpoint-that-loads",
        lambda ws: None,
        [
            Step(
                lambda ws: _train(ws, steps=3),
                0,
                (
                    "step-000000003.pt: not a loadable checkpoint",
                    "step-000000002.pt: not a loadable checkpoint (holds more than tensors",
                    "resuming from",
                    "step-000000001.pt",
                ),
                TRAIN,
                before=_bad_latest_checkpoints,
                redo=(*RESUMED, "checkpoints/step-000000002.pt", "checkpoints/step-000000003.pt"),
            ),
            Step(
                lambda ws: _train(ws, steps=4),
                2,
                ("none of its 3 checkpoints loads",),
                TRAIN,
                before=_no_good_checkpoint,
            ),
        ],
        _check_fell_back,
        from_trained=True,
    ),  # fmt: skip
    Case(
        "eval-refuses-bad-checkpoints",
        lambda ws: None,
        [
            Step(
                _eval_bad_checkpoint(evil=True),
                2,
                ("step-000000002.pt", "refused unread", "posix.system"),
                EVAL,
            ),
            Step(
                lambda ws: _eval(ws, ws.src / "run"),
                2,
                ("step-000000002.pt: not a loadable checkpoint",),
                EVAL,
                before=lambda ws: (ws.src / "run/checkpoints/step-000000002.pt").write_bytes(
                    b"PK\x03\x04"
                ),
            ),
        ],
        from_trained=True,
    ),  # fmt: skip
    Case(
        "resume-a-torn-log-and-a-copied-run",
        _torn_and_copied,
        [
            Step(
                lambda ws: _train(ws, steps=3),
                0,
                ("dropping its torn last line",),
                TRAIN,
                redo=RESUMED,
            ),
            Step(
                lambda ws: _train(ws, run=ws.out2, steps=3), 0, ("resuming",), TRAIN, redo=RESUMED
            ),
        ],
        _check_resumed_both,
        from_trained=True,
    ),  # fmt: skip
    Case(
        "config-files",
        lambda ws: None,
        [
            Step(
                _show_config("few.json", {"optim": {"lr": 0.01}}),
                0,
                ("few.json names no preset", "paper"),
                TRAIN,
                expect=_printed(preset="paper", optim__batch=128, optim__lr=0.01),
            ),
            Step(
                _show_config("tiny.json", {"preset": "tiny", "optim": {"lr": 0.01}}),
                0,
                (),
                TRAIN,
                expect=lambda r: (
                    _printed(preset="tiny", optim__batch=8, optim__lr=0.01)(r),
                    _no_notice(r),
                ),
            ),
            Step(
                _train_config("bin.json", bytes(range(256)) * 4),
                2,
                ("bin.json", "not a JSON config"),
                TRAIN,
            ),
            Step(
                _train_config("nan.json", b'{"optim": {"lr": NaN}}'),
                2,
                ("nan.json", "optim.lr", "finite"),
                TRAIN,
            ),
            Step(
                lambda ws: [
                    "train",
                    "--config",
                    "tiny",
                    "--shards",
                    str(ws.root),
                    "model.width=inf",
                ],
                2,
                ("model.width", "finite"),
                TRAIN,
            ),
        ],
    ),  # fmt: skip
    Case(
        "eval-writes-only-under-out",
        lambda ws: None,
        [Step(_two_runs_one_folder, 0, ("report:",), EVAL)],
        _check_generated_names,
        from_trained=True,
    ),
    Case(
        "inspect-checks-every-sample",
        _bad_samples,
        [
            Step(lambda ws: _inspect(ws, "--verify", "--json"), 1, (), expect=_check_every_sample),
            Step(
                lambda ws: _inspect(ws, "--render", str(ws.out2 / "sheet")), 0, ("contact sheet: ",)
            ),
        ],
        lambda ws: None if (ws.out2 / "sheet").read_bytes()[:4] == b"\x89PNG" else pytest.fail(),
    ),  # fmt: skip
    Case(
        "careless-training",
        lambda ws: None,
        [
            Step(
                lambda ws: _train(ws, run=ws.root / "runfile"),
                2,
                ("runfile", "exists and is not a folder"),
                TRAIN,
                before=_a_file("runfile"),
            ),
            Step(
                lambda ws: _train(ws, "data.frame_stride=4"),
                2,
                ("reach the model as 4x32x32", "data.frame_stride=4", "T % 8"),
                TRAIN,
            ),
            Step(
                lambda ws: _train(ws, "data.resampled=false", "data.workers=3"),
                2,
                ("data.shards: 2 shards cannot feed",),
                TRAIN,
            ),
        ],
        trainer=True,
    ),  # fmt: skip
    Case(
        "careless-evaluation",
        lambda ws: None,
        [
            Step(
                lambda ws: _eval(ws, _run_as_input(ws), extra=("--device", "tpu")),
                2,
                ("--device", "'tpu'"),
                EVAL,
            ),
            Step(
                lambda ws: _eval(ws, ws.root / "runfile"),
                2,
                ("runfile", "not a run directory"),
                EVAL,
                before=_a_file("runfile"),
            ),
            Step(
                lambda ws: _eval(ws, ws.src / "run", out=ws.root / "runfile"),
                2,
                ("runfile", "exists and is not a folder"),
                EVAL,
            ),
            Step(
                lambda ws: ["classifier", str(ws.data / "shards"), "--out", str(ws.out2)],
                2,
                ("out2", "a folder"),
                EVAL,
                before=lambda ws: ws.out2.mkdir(),
            ),
        ],
        from_trained=True,
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case: Case, media, finished, tmp_path, request):
    ws = Workspace(tmp_path, media)
    if case.from_finished:
        _copy_finished(finished, ws)
    if case.trainer or case.from_trained:
        ws.data = request.getfixturevalue("train_data")
        shared = snapshot(ws.data)
    if case.from_trained:
        shutil.copytree(request.getfixturevalue("trained"), ws.out)
    case.setup(ws)
    for step in case.steps:
        if step.before is not None:
            step.before(ws)
        args = step.args(ws) if callable(step.args) else step.args
        check_step(ws, step, args)
    if case.check is not None:
        case.check(ws)
    if ws.data is not None:
        assert snapshot(ws.data) == shared, "the shared training shards changed"
