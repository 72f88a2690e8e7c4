"""Indexing a Kinetics-600 download: CSV and files, flat or per-label, missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from blendkit.kinetics import DUPLICATE, AnnotationError, index_source


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


def test_unreadable_rows_are_skips_naming_their_line(tmp_path):
    _touch(tmp_path / "a" / "aaaaaaaaaaa_000000_000010.mp4")
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "a,aaaaaaaaaaa,0,10,train\n"
        "a,infinite000,inf,10,train\n"
        "a,notanumber0,nan,10,train\n"
        "a,overflow000,1e999,10,train\n"
        "a,negative000,-5,10,train\n"
        "a,words000000,zero,ten,train\n"
        "a,toofew00000\n"
        "justonefield\n"
        "\n"
        "a,,0,10,train\n"
    )
    items, skips = index_source(tmp_path, csv)
    assert [i.youtube_id for i in items] == ["aaaaaaaaaaa"]
    assert [(s.path, s.youtube_id) for s in skips] == [
        ("train.csv:3", "infinite000"),
        ("train.csv:4", "notanumber0"),
        ("train.csv:5", "overflow000"),
        ("train.csv:6", "negative000"),
        ("train.csv:7", "words000000"),
        ("train.csv:8", "toofew00000"),
        ("train.csv:9", ""),  # its one field is the label
        ("train.csv:11", ""),  # the blank line 10 is no row
    ]
    reasons = [s.reason for s in skips]
    assert all(r.startswith("bad annotation row: ") for r in reasons)
    assert "not finite" in reasons[0] and "not numbers" in reasons[4]
    assert "too few fields" in reasons[5] and reasons[7].endswith("empty youtube_id")


def test_a_file_listed_twice_is_one_item(tmp_path):
    video = _touch(tmp_path / "a" / "aaaaaaaaaaa_000000_000010.mp4")
    _touch(tmp_path / "b" / "bbbbbbbbbbb_000000_000010.mp4")
    (tmp_path / "a" / "link_000000_000010.mp4").symlink_to(video)
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "a,aaaaaaaaaaa,0,10,train\n"
        "b,bbbbbbbbbbb,0,10,train\n"
        "a,aaaaaaaaaaa,0,10,train\n"  # the same row again
        "c,aaaaaaaaaaa,0.0,10.0,train\n"  # the same file under another label
        "a,link,0,10,train\n"  # a link to the same file
    )
    items, skips = index_source(tmp_path, csv)
    assert [(i.youtube_id, i.label) for i in items] == [("aaaaaaaaaaa", "a"), ("bbbbbbbbbbb", "b")]
    assert [(s.path, s.reason) for s in skips] == [
        (f"train.csv:{n}", f"{DUPLICATE}: {rel} is listed already (train.csv:2)")
        for n, rel in ((4, "a/aaaaaaaaaaa_000000_000010.mp4"),
                       (5, "a/aaaaaaaaaaa_000000_000010.mp4"), (6, "a/link_000000_000010.mp4"))
    ]  # fmt: skip
    items, skips = index_source(tmp_path)  # without annotations: the link is the duplicate
    assert [i.rel for i in items] == ["a/aaaaaaaaaaa_000000_000010.mp4",
                                      "b/bbbbbbbbbbb_000000_000010.mp4"]  # fmt: skip
    assert [(s.path, s.reason.split(":")[0]) for s in skips] == [
        ("a/link_000000_000010.mp4", DUPLICATE)
    ]
