"""blendkit.outdir: --out is blendkit's, held by one run at a time, and only blendkit's
temporaries are ever deleted there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from blendkit.outdir import (
    LOCK_NAME,
    OutFolderError,
    claim_local,
    is_temporary,
    locked,
    temporary_name,
)


def test_only_blendkit_temporary_names_are_recognised():
    for name in [temporary_name("shard-000003.tar"), temporary_name("report.json", "ab12"),
                 ".shard-000003.tar.1234.tmp", ".config.json.99.tmp",  # older blendkit's
                 f".manifest.parquet.{'0a' * 16}.tmp"]:  # fmt: skip
        assert is_temporary(name), name
    for name in [".notes.tmp", "draft.tmp", ".shard-000003.tar.tmp", ".x.123.tmp",
                 ".shard-3.tar.1.tmp", ".blendkit-tmp.XYZ.a", "shard-000000.tar",
                 ".blendkit-tmp.1f."]:  # fmt: skip
        assert not is_temporary(name), name


def test_a_folder_that_is_not_blendkits_is_refused_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("mine")
    with pytest.raises(OutFolderError, match=r"out: not empty and not a blendkit shard folder "
                                             r"\(holds 'report.json'\)"):  # fmt: skip
        with claim_local(out):
            pass
    assert os.listdir(out) == ["report.json"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutFolderError, match="exists and is not a folder"):
        with claim_local(tmp_path / "file"):
            pass
    old = tmp_path / "old"  # shards of a blendkit without the marker
    old.mkdir()
    (old / "made_with.json").write_text(json.dumps({"shard_format": 3}))
    with claim_local(old) as names:
        assert names == [LOCK_NAME, "made_with.json"]


def test_claim_cleans_temporaries_and_removes_a_folder_it_made_for_nothing(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), claim_local(out) as names:
        assert names == [LOCK_NAME]
        raise RuntimeError("failed before writing anything")
    assert not out.exists()
    with claim_local(out):
        (out / temporary_name("shard-000000.tar")).write_bytes(b"half")
        (out / "notes.tmp").write_text("the user's")
    assert sorted(os.listdir(out)) == [LOCK_NAME, "notes.tmp"]


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    with locked(tmp_path):
        with pytest.raises(OutFolderError, match=rf"another make-shards is writing here \(pid "
                                                 rf"{os.getpid()} on "):  # fmt: skip
            with locked(tmp_path):
                pass
        code = (f"from blendkit.outdir import locked\nwith locked(__import__('pathlib')"
                f".Path({str(tmp_path)!r})): pass")  # fmt: skip
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and f"pid {os.getpid()}" in other.stderr
    with locked(tmp_path):  # released with its holder
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
