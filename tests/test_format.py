"""blendkit.format: the member-name rule, the one shard reader, the metadata types, the geometry,
the manifest reader and the docs that describe them."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import tarfile
from pathlib import Path

import fsspec
import pytest

from blendkit.format import (
    MEMBERS,
    META,
    ClipMeta,
    FormatError,
    SampleMeta,
    ShardError,
    SuperpixelMeta,
    VideoMeta,
    labels,
    list_shards,
    read_geometry,
    read_manifest,
    read_shard,
    read_shards_geometry,
    split_member,
)
from blendkit.format.manifest import manifest_rows
from blendkit.inspect import inspect_shards
from tests.test_pipeline import dataset, made  # noqa: F401  (fixtures: tiny make-shards output)
from trainer.data.select import wanted
from trainer.data.stats import LoaderStats
from trainer.data.tario import tarfile_to_samples

DOCS = Path(__file__).parent.parent / "docs" / "contract.md"
HOSTILE = ("../../x", "/abs/x", "a/b.mp4", "../000000001.v1.mp4", "000000001.v1.mp4/")


def write_tar(path: Path, members: list[tuple[str, bytes]], symlink: str | None = None) -> Path:
    """A tar holding ``members`` under exactly these names (and a symlink member if asked)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink is not None:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def sample_members(key: str) -> list[tuple[str, bytes]]:
    return [
        (f"{key}.json", b'{"blend": "transparent"}'),
        (f"{key}.v1.mp4", b"v1 of " + key.encode()),
    ]


def meta(index: int = 3, blend: str = "occlusion") -> SampleMeta:
    side = ClipMeta(
        "yt", "drumming", "train", "drumming/yt.mp4", 1.25, (4, 5, 32, 32), (40, 53), True
    )
    return SampleMeta(
        key=f"{index:09d}", index=index, blend=blend, seed=123, pairing="chain", fps=25.0,
        frames=16, height=32, width=32, audio_rate=8000, audio_samples=5120,
        v1=side, v2=dataclasses.replace(side, youtube_id="other", has_audio=False),
        superpixel=SuperpixelMeta(2, 900, 0.055, 9, 10.0) if blend == "occlusion" else None,
        video=VideoMeta("h264", "yuv444p", 15, 10, 41.5),
    )  # fmt: skip


# ----------------------------------------------------------------------------- member names


@pytest.mark.parametrize(
    ("name", "parts"),
    [("000000012.mix.mp4", ("000000012", "mix.mp4")), ("000000012.json", ("000000012", "json")),
     ("k_1-a.A1.FLAC", ("k_1-a", "a1.flac"))],
)  # fmt: skip
def test_well_formed_member_names_split_at_the_first_dot(name, parts):
    assert split_member(name) == parts


@pytest.mark.parametrize(
    "name",
    [*HOSTILE, ".mix.mp4", "000000012", "000000012.", "000000012..mp4", "000000012.mix..mp4",
     "000 12.json", "000000012.__key__", "000000012.mix.mp4\x00", "C:\\x.mp4", "..", ""],
)  # fmt: skip
def test_member_names_that_are_paths_or_odd_are_malformed(name):
    with pytest.raises(FormatError, match="malformed member name"):
        split_member(name)


def test_hostile_member_names_are_reported_skipped_and_never_used(tmp_path):
    members = sample_members("000000000") + [(n, b"evil") for n in HOSTILE]
    shard = write_tar(tmp_path / "shard-000000.tar", members + sample_members("000000001"))
    errors: list[FormatError] = []
    samples = list(read_shard(str(shard), on_error=errors.append))
    assert [s["__key__"] for s in samples] == ["000000000", "000000001"]
    assert [sorted(k for k in s if not k.startswith("__")) for s in samples] == [
        ["json", "v1.mp4"]
    ] * 2
    assert samples[1]["v1.mp4"] == b"v1 of 000000001"  # not the hostile "../000000001.v1.mp4"
    assert len(errors) == len(HOSTILE)
    assert all(repr(n) in str(e) for n, e in zip(HOSTILE, errors, strict=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar"]  # nothing written
    with pytest.raises(FormatError, match=r"'\.\./\.\./x'"):  # without on_error: raised
        list(read_shard(str(shard)))


def test_the_trainer_stage_counts_hostile_members_and_keeps_the_rest(tmp_path):
    members = sample_members("000000000") + [(n, b"evil") for n in HOSTILE]
    shard = write_tar(tmp_path / "shard-000000.tar", members, symlink="000000000.a1.m4a")
    stats = LoaderStats()
    samples = list(tarfile_to_samples([str(shard)], stats=stats))
    assert [sorted(s) for s in samples] == [["__key__", "__url__", "json", "v1.mp4"]]
    snap = stats.snapshot()
    assert snap["format_error"] == len(HOSTILE) + 1  # the symlink is not a regular file
    assert (snap["samples_read"], snap["shard_error"]) == (1, 0)


def test_the_trainer_selects_blend_kinds_by_their_one_spelling():
    assert wanted("both") == ("transparent", "occlusion")  # "any" of old runs: the config loader
    assert wanted("occlusion") == ("occlusion",)
    with pytest.raises(ValueError, match="blend 'mirror' is not one of"):
        wanted("mirror")


def test_inspect_reports_hostile_members_as_failures(tmp_path):
    shard = write_tar(tmp_path / "shard-000000.tar", [(n, b"evil") for n in HOSTILE])
    result = inspect_shards(tmp_path)
    assert result["samples"] == 0
    assert [f["reason"].split(":")[0] for f in result["unreadable"]] == ["malformed"] * 5
    assert shard.name == result["unreadable"][0]["sample"]


def test_a_member_twice_drops_its_sample_only(tmp_path):
    twice = sample_members("000000001") + [("000000001.v1.mp4", b"again")]
    shard = write_tar(
        tmp_path / "s.tar", sample_members("000000000") + twice + sample_members("000000002")
    )
    errors: list[FormatError] = []
    keys = [s["__key__"] for s in read_shard(str(shard), on_error=errors.append)]
    assert keys == ["000000000", "000000002"]
    assert len(errors) == 1 and "'v1.mp4' appears twice" in str(errors[0])


def test_a_truncated_shard_yields_its_complete_samples_then_raises(tmp_path):
    members = sample_members("000000000") + sample_members("000000001")
    members[-1] = ("000000001.v1.mp4", bytes(5000))
    shard = write_tar(tmp_path / "s.tar", members)
    with tarfile.open(shard) as tar:
        cut = tar.getmember("000000001.v1.mp4").offset_data + 1000
    shard.write_bytes(shard.read_bytes()[:cut])
    got = []
    with pytest.raises(ShardError, match=r"s\.tar: unreadable shard .*after 1 samples"):
        for sample in read_shard(str(shard)):
            got.append(sample["__key__"])
    assert got == ["000000000"]
    with pytest.raises(ShardError, match="unreadable shard"):
        list(read_shard(str(tmp_path / "absent.tar")))


def test_keep_reads_only_the_named_members(tmp_path):
    shard = write_tar(tmp_path / "s.tar", sample_members("000000000"))
    (sample,) = read_shard(str(shard), keep={META.name})
    assert sorted(sample) == ["__key__", "__url__", "json"]


# ----------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("blend", ["occlusion", "transparent"])
def test_sample_meta_round_trips_through_json(blend):
    m = meta(blend=blend)
    data = json.loads(META.encode(m.to_dict()))
    assert SampleMeta.from_dict(data) == m
    assert META.encode(SampleMeta.from_dict(data).to_dict()) == META.encode(m.to_dict())
    assert data["v1"]["crop"] == [4, 5, 32, 32] and data["v2"]["has_audio"] is False
    assert (data["superpixel"] is None) == (blend == "transparent")
    assert m.geometry.to_dict() == {
        "frames": 16, "fps": 25.0, "height": 32, "width": 32, "audio_rate": 8000,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda d: d.pop("seed"), "json: missing seed"),
     (lambda d: d.update(extra=1), "json: unknown extra"),
     (lambda d: d.update(frames="16"), "frames: expected int, got '16'"),
     (lambda d: d.update(frames=True), "frames: expected int, got True"),
     (lambda d: d.update(fps=None), "fps: expected float, got None"),
     (lambda d: d["v1"].update(crop=[1, 2, 3]), "v1.crop: expected a list of 4"),
     (lambda d: d["v2"].pop("label"), "v2: missing label"),
     (lambda d: d.update(video=[]), "video: expected an object"),
     (lambda d: d.update(blend="mirror"), "blend: expected one of"),
     (lambda d: d.update(pairing="both"), "pairing: expected one of"),
     (lambda d: d.update(key="12"), "key: '12' is not index 3"),
     (lambda d: d.update(superpixel=None), "superpixel: must be null exactly for transparent")],
)  # fmt: skip
def test_malformed_sample_meta_is_rejected_in_one_line(change, message):
    data = meta().to_dict()
    change(data)
    with pytest.raises(FormatError, match=message) as info:
        SampleMeta.from_dict(data)
    assert "\n" not in str(info.value)


def test_every_written_json_parses_and_serialises_to_the_same_bytes(made):  # noqa: F811
    out, summary = made
    n = 0
    for url in list_shards(out):
        for sample in read_shard(url):
            stored = sample[META.name]
            assert META.encode(SampleMeta.from_dict(json.loads(stored)).to_dict()) == stored
            n += 1
    assert n == summary.samples == 8


# ----------------------------------------------------------------------------- geometry, manifest


def test_geometry_of_a_shard_and_of_a_shard_set_local_and_url(made):  # noqa: F811
    out, _ = made
    expected = {"frames": 16, "fps": 25.0, "height": 32, "width": 32, "audio_rate": 8000}
    assert read_geometry(out / "shard-000000.tar").to_dict() == expected
    assert read_shards_geometry(out).to_dict() == expected
    fs = fsspec.filesystem("memory")
    try:
        fs.pipe_file("/blendkit-geometry/shard-000000.tar", (out / "shard-000001.tar").read_bytes())
        assert read_shards_geometry("memory://blendkit-geometry").to_dict() == expected
    finally:
        fs.rm("/blendkit-geometry", recursive=True)
    bad = write_tar(out.parent / "no-json.tar", [("000000000.v1.mp4", b"x")])
    with pytest.raises(ValueError, match="no-json.tar: no sample metadata"):
        read_geometry(bad)


def test_manifest_reader_and_labels_with_and_without_the_manifest(made, tmp_path):  # noqa: F811
    out, _ = made
    rows = read_manifest(out)
    sidecars = [json.loads((out / f"shard-{i:06d}.json").read_text()) for i in range(3)]
    assert rows == manifest_rows(sidecars)
    assert [r["key"] for r in rows] == [f"{i:09d}" for i in range(8)]
    from_manifest = labels(out)
    for shard in out.glob("shard-*.tar"):  # the same shards, without their manifest
        shutil.copy(shard, tmp_path / shard.name)
    from_tars = labels(tmp_path)
    assert from_manifest == from_tars == labels(str(out / "shard-*.tar"))
    assert sorted(from_manifest) == [f"{i:09d}" for i in range(8)]
    assert all(v1 in ("drumming", "singing", "surfing") for v1, _ in from_manifest.values())
    with pytest.raises(FileNotFoundError, match="no manifest.parquet"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(FormatError, match="unreadable manifest"):
        read_manifest(tmp_path)


def test_inspect_verifies_and_draws_made_shards(made, tmp_path):  # noqa: F811
    out, _ = made
    result = inspect_shards(out, verify=True, render=tmp_path / "sheet.png", n_render=2)
    assert (result["samples"], result["verify"]["failures"]) == (8, [])
    assert result["samples_by_blend"] == {"transparent": 4, "occlusion": 4}
    assert (tmp_path / "sheet.png").stat().st_size > 0
    assert inspect_shards(str(out / "shard-00000[01].tar"))["samples"] == 6


def test_listing_a_folder_without_shards_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no shard-\\*.tar files"):
        list_shards(tmp_path)


# ----------------------------------------------------------------------------- docs


def test_the_contract_doc_lists_every_member_and_metadata_field():
    text = DOCS.read_text()
    for m in MEMBERS:
        for name in m.names:
            assert f"KEY.{name}" in text, name
    for cls in (SampleMeta, ClipMeta, SuperpixelMeta, VideoMeta):
        for f in dataclasses.fields(cls):
            assert f'"{f.name}"' in text, f"{cls.__name__}.{f.name}"
