"""Engines and storage: Ray writes the same bytes as the local engine, retries failed and lost
tasks, resumes; shards go to and come back from fsspec URLs; shard specs expand to URLs.

The Ray tests start a private local Ray instance (2 CPUs, no dashboard) once for the module. They
run whenever ray is installed (``pip install '.[ray]'``) and are skipped, with that reason, only
when it is not.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from blendkit import pipeline
from blendkit.engines import EngineError, LocalEngine, RayEngine, make_engine
from blendkit.format.layout import list_shards, open_url
from blendkit.outdir import temporary_name
from blendkit.pipeline import make_shards
from blendkit.shard_config import ShardConfig
from blendkit.storage import open_store
from blendkit.typed_config import ConfigError
from tests import test_pipeline
from tests.test_pipeline import _cfg

dataset = test_pipeline.dataset  # the fixture: six tiny videos plus bad inputs

requires_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed: pip install '.[ray]'"
)
SHARDS = [f"shard-{i:06d}" for i in range(3)]  # 8 samples, 3 per shard


@pytest.fixture(scope="module")
def local(dataset, tmp_path_factory) -> Path:
    """The reference: shards made by the in-process local engine."""
    out = tmp_path_factory.mktemp("local")
    make_shards(_cfg(dataset, out), progress=False)
    return out


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def assert_same_shards(a: Path, b: Path) -> None:
    for stem in SHARDS:
        for ext in (".tar", ".json"):
            name = stem + ext
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert pq.read_table(a / "manifest.parquet").equals(pq.read_table(b / "manifest.parquet"))
    assert not list(b.glob(".*.tmp"))


# ----------------------------------------------------------------------------- Ray


@requires_ray
def test_ray_writes_the_same_bytes_and_puts_the_state_once(
    dataset, local, ray_instance, tmp_path, monkeypatch
):
    puts = []
    real_put = ray_instance.put
    monkeypatch.setattr(ray_instance, "put", lambda v: puts.append(1) or real_put(v))
    summary = make_shards(_cfg(dataset, tmp_path, engine="ray"), progress=False)
    assert (summary.shards_written, summary.samples) == (3, 8)
    assert_same_shards(local, tmp_path)
    assert len(puts) == 1  # sources, order and config: once for the three shard tasks


@requires_ray
def test_ray_retries_a_failing_task_and_a_lost_worker(dataset, local, ray_instance, tmp_path,
                                                      monkeypatch):  # fmt: skip
    markers = tmp_path / "markers"
    markers.mkdir()
    real = pipeline.make_shard

    def fails_once(args):  # pickled by value: runs in the Ray workers
        index = args[0]
        marker = markers / f"failed-{index}"
        if index in (0, 1) and not marker.exists():
            marker.touch()
            if index == 0:
                raise RuntimeError("transient failure")
            os._exit(1)  # the worker process dies mid-run
        return real(*args)

    monkeypatch.setattr(pipeline, "_shard_task", fails_once)
    out = tmp_path / "out"
    summary = make_shards(_cfg(dataset, out, engine="ray"), progress=False)
    assert sorted(p.name for p in markers.iterdir()) == ["failed-0", "failed-1"]
    assert summary.shards_written == 3
    assert_same_shards(local, out)


@requires_ray
def test_ray_resumes_without_rewriting_finished_shards(dataset, local, ray_instance, tmp_path):
    for name in ("config.json", "made_with.json", "inputs.json"):  # made by the local engine
        shutil.copy(local / name, tmp_path / name)
    for ext in (".tar", ".json"):
        shutil.copy(local / f"{SHARDS[1]}{ext}", tmp_path / f"{SHARDS[1]}{ext}")
    before = (tmp_path / f"{SHARDS[1]}.tar").stat()
    summary = make_shards(_cfg(dataset, tmp_path, engine="ray"), progress=False)
    assert (summary.shards_written, summary.shards_resumed, summary.samples) == (2, 1, 8)
    after = (tmp_path / f"{SHARDS[1]}.tar").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert_same_shards(local, tmp_path)


@requires_ray
def test_ray_engine_map_runs_init_once_per_worker(ray_instance):
    results = list(RayEngine().map(_state_plus, list(range(6)), _set_state, (100,)))
    assert sorted(r[0] for r in results) == [100, 101, 102, 103, 104, 105]
    assert all(r[1] == 1 for r in results)  # init ran once in each worker process


# ----------------------------------------------------------------------------- engines

_STATE: dict = {"inits": 0}


def _set_state(offset: int) -> None:
    _STATE["offset"] = offset
    _STATE["inits"] = _STATE.get("inits", 0) + 1


def _state_plus(x: int) -> tuple[int, int]:
    return _STATE["offset"] + x, _STATE["inits"]


@pytest.mark.parametrize("workers", [1, 2])
def test_local_engine_runs_init_then_every_task(workers):
    _STATE["inits"] = 0
    results = sorted(LocalEngine(workers).map(_state_plus, [0, 1, 2], _set_state, (10,)))
    assert results == [(10, 1), (11, 1), (12, 1)]


def test_engine_choice_is_checked_and_excluded_from_identity(tmp_path):
    with pytest.raises(
        ConfigError, match=r"engine: expected one of \['local', 'ray'\], got 'spark'"
    ):
        ShardConfig(source="a", out="b", engine="spark")
    a = ShardConfig(source="a", out="b")
    assert a.identity() == ShardConfig(source="a", out="c", engine="ray",
                                       ray_address="auto").identity()  # fmt: skip
    with pytest.raises(EngineError, match="not one of local, ray"):
        make_engine("spark")


def test_ray_engine_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(EngineError, match=r"^the ray engine needs ray: pip install '\.\[ray\]'$"):
        RayEngine()
    assert issubclass(EngineError, ValueError)  # the CLI turns it into one line


def test_importing_blendkit_does_not_import_ray():
    code = ("import sys, blendkit, blendkit.pipeline, blendkit.engines, blendkit.storage; "
            "print('ray' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert result.stdout.strip() == "False"


# ----------------------------------------------------------------------------- storage


def test_memory_url_round_trip_and_resume(dataset, local):
    url = "memory://blendkit-test/shards"
    fs = fsspec.filesystem("memory")
    try:
        summary = make_shards(_cfg(dataset, url), progress=False)
        assert (summary.shards_written, summary.samples) == (3, 8)
        urls = list_shards(url)
        assert [u.rsplit("/", 1)[1] for u in urls] == [f"{s}.tar" for s in SHARDS]
        for u, stem in zip(urls, SHARDS, strict=True):
            with open_url(u) as f:
                assert f.read() == (local / f"{stem}.tar").read_bytes()
        names = sorted(p.rsplit("/", 1)[1] for p in fs.ls("/blendkit-test/shards", detail=False))
        members = [f"{s}{e}" for s in SHARDS for e in (".tar", ".json")]
        records = ["config.json", "made_with.json", "inputs.json", ".blendkit.lock"]
        assert names == sorted([*records, "manifest.parquet", "report.json", *members])
        fs.rm_file("/blendkit-test/shards/shard-000002.tar")
        left = "/blendkit-test/shards/" + temporary_name("shard-000002.tar", "abc")
        fs.pipe_file(left, b"partial")  # by a killed run
        fs.pipe_file("/blendkit-test/shards/notes.tmp", b"the user's")
        again = make_shards(_cfg(dataset, url), progress=False)
        assert (again.shards_written, again.shards_resumed) == (1, 2)
        assert not fs.exists(left)
        assert fs.cat_file("/blendkit-test/shards/notes.tmp") == b"the user's"
        assert fs.cat_file(urls[2]) == (local / "shard-000002.tar").read_bytes()
        with pytest.raises(ConfigError, match="differs in: crf"):
            make_shards(_cfg(dataset, url, crf=20), progress=False)
    finally:
        fs.rm("/blendkit-test", recursive=True)


def test_failed_upload_leaves_no_shard(tmp_path):
    store = open_store("memory://blendkit-abort/out")
    fs = fsspec.filesystem("memory")
    try:
        with pytest.raises(RuntimeError, match="boom"), store.shard_writer(0) as writer:
            writer.write("000000000", {"txt": b"x"}, {"index": 0})
            raise RuntimeError("boom")
        assert store.complete([0]) == set()
        with store.shard_writer(0) as writer:
            writer.write("000000000", {"txt": b"x"}, {"index": 0})
            writer.close({"shard": 0})
        assert store.complete([0, 1]) == {0}
        assert json.loads(fs.cat_file("/blendkit-abort/out/shard-000000.json")) == {"shard": 0}
    finally:
        fs.rm("/blendkit-abort", recursive=True)


def test_list_shards_accepts_every_form(tmp_path):
    for i in range(3):
        (tmp_path / f"shard-{i:06d}.tar").write_bytes(b"tar%d" % i)
    (tmp_path / "other.tar").write_bytes(b"")
    local = [str(tmp_path / f"shard-{i:06d}.tar") for i in range(3)]
    (tmp_path / "list.txt").write_text("# train\nshard-000002.tar\nmemory://b/x.tar\n")
    assert list_shards(str(tmp_path)) == local
    assert list_shards(f"file://{tmp_path}") == local
    assert list_shards(str(tmp_path / "shard-00000[01].tar")) == local[:2]
    assert list_shards(str(tmp_path / "shard-{000002..000000}.tar")) == local[::-1]
    assert list_shards(str(tmp_path / "list.txt")) == [local[2], "memory://b/x.tar"]
    assert list_shards(local[1]) == [local[1]]
    assert list_shards("pipe:cat /data/shard-{0..1}.tar", allow_pipe=True) == [
        "pipe:cat /data/shard-0.tar",
        "pipe:cat /data/shard-1.tar",
    ]  # a pipe: spec only with the opt-in (tests/test_safety.py)
    fs = fsspec.filesystem("memory")
    try:
        for name in ("shard-000000.tar", "shard-000001.tar", "notes.txt"):
            fs.pipe_file(f"/blendkit-expand/{name}", b"x")
        assert [u.rsplit("/", 1)[1] for u in list_shards("memory://blendkit-expand")] == [
            "shard-000000.tar",
            "shard-000001.tar",
        ]
        assert len(list_shards("memory://blendkit-expand/*.txt")) == 1
        with pytest.raises(FileNotFoundError, match="no shards found"):
            list_shards("memory://blendkit-expand/absent.tar")
    finally:
        fs.rm("/blendkit-expand", recursive=True)
    with pytest.raises(FileNotFoundError, match="no shards found"):
        list_shards(str(tmp_path / "empty-*.tar"))


def test_open_url_reads_paths_file_urls_and_pipes(tmp_path):
    path = tmp_path / "shard-000000.tar"
    path.write_bytes(b"\x00shard bytes\xff")
    for url in (str(path), f"file://{path}", f"pipe:cat {path}"):
        with open_url(url) as f:
            assert f.read() == b"\x00shard bytes\xff", url
    with pytest.raises(ValueError, match="pipe: commands can be read from, not written to"):
        open_store(f"pipe:cat {path}")
