"""Indexing a Kinetics-600 download: CSV and files, flat or per-label, missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from blendkit.kinetics import AnnotationError, index_source


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_per_label_folders_with_annotations(tmp_path):
    _touch(tmp_path / "abseiling" / "abc-_DEF123_000010_000020.mp4")
    _touch(tmp_path / "abseiling" / "zzzzzzzzzzz_000001_000011.mkv")
    _touch(tmp_path / "notes.txt")
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,abc-_DEF123,10,20,train\n"
        "abseiling,zzzzzzzzzzz,1,11,train\n"
        "archery,missingmiss,5,15,train\n"
        "archery,othersplitx,5,15,validate\n"
    )
    items, skips = index_source(tmp_path, csv, split="train")
    assert [(i.youtube_id, i.label, i.split, i.rel) for i in items] == [
        ("abc-_DEF123", "abseiling", "train", "abseiling/abc-_DEF123_000010_000020.mp4"),
        ("zzzzzzzzzzz", "abseiling", "train", "abseiling/zzzzzzzzzzz_000001_000011.mkv"),
    ]
    assert [(s.youtube_id, s.path) for s in skips] == [("missingmiss", "missingmiss_000005_000015")]
    assert skips[0].reason.startswith("missing")


def test_flat_layout_test_split_without_labels(tmp_path):
    _touch(tmp_path / "flat" / "aaaaaaaaaaa_000000_000010.mp4")
    csv = tmp_path / "test.csv"
    csv.write_text("youtube_id,time_start,time_end,split\naaaaaaaaaaa,0,10,test\n")
    items, skips = index_source(tmp_path / "flat", csv)
    assert [(i.youtube_id, i.label, i.split) for i in items] == [("aaaaaaaaaaa", "", "test")]
    assert skips == []


def test_without_annotations_label_is_the_parent_folder(tmp_path):
    _touch(tmp_path / "surfing" / "bbbbbbbbbbb_000003_000013.webm")
    _touch(tmp_path / "loose.mp4")
    items, _ = index_source(tmp_path)
    assert [(i.youtube_id, i.label, i.rel) for i in items] == [
        ("loose", "", "loose.mp4"),
        ("bbbbbbbbbbb", "surfing", "surfing/bbbbbbbbbbb_000003_000013.webm"),
    ]


def test_bad_annotations_and_source(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,id\nx,y\n")
    with pytest.raises(AnnotationError, match="bad.csv: missing column"):
        index_source(tmp_path, bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index_source(tmp_path / "nope")
