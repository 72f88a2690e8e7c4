"""make-shards end to end on tiny generated videos: reading back, determinism, resume, bad input."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import shutil
import tarfile
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from blendkit import pipeline
from blendkit.kinetics import clip_stem
from blendkit.pipeline import make_shards
from blendkit.shard_config import ShardConfig
from blendkit.superpixels import SuperpixelConfig
from blendkit.typed_config import ConfigError, from_dict
from tests.media import make_not_video, make_truncated, make_video, make_zero_byte

LABELS = ("drumming", "singing", "surfing")
TINY = dict(
    frames=16,
    fps=25.0,
    short_side=40,
    crop=32,
    audio_rate=8000,
    preset="veryfast",
    superpixels=SuperpixelConfig(n_segments=8, min_fraction=0.02, max_fraction=0.4),
)


def _write_csv(path: Path, rows: list[tuple[str, str, int, int, str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        w.writerows(rows)
    return path


def build_dataset(root: Path) -> tuple[Path, Path]:
    """Six good videos in per-label folders (one without audio), one of every kind of bad input."""
    rows = []
    for i in range(6):
        label = LABELS[i % 3]
        yid = f"vid{i:08d}"
        path = root / label / f"{clip_stem(yid, 10 * i, 10 * i + 10)}.mp4"
        path.parent.mkdir(exist_ok=True)
        make_video(
            path,
            fps=(12, 30, 25)[i % 3],
            n_frames=(12, 30, 25)[i % 3] * 2,
            audio=i != 4,
            audio_channels=2,
        )
        rows.append((label, yid, 10 * i, 10 * i + 10, "train"))
    bad = root / "bad"
    bad.mkdir()
    make_zero_byte(bad / f"{clip_stem('zerobyte000', 0, 10)}.mp4")
    make_truncated(
        bad / f"{clip_stem('truncated00', 0, 10)}.mp4",
        root / "drumming" / f"{clip_stem('vid00000000', 0, 10)}.mp4",
    )
    make_not_video(bad / f"{clip_stem('notavideo00', 0, 10)}.mp4")
    make_video(bad / f"{clip_stem('tooshort000', 0, 10)}.mp4", fps=25, n_frames=8)
    rows += [
        ("bad", y, 0, 10, "train")
        for y in ("zerobyte000", "truncated00", "notavideo00", "tooshort000", "missing0000")
    ]
    rows.append(("drumming", "validonly00", 0, 10, "validate"))
    return root, _write_csv(root / "train.csv", rows)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    return build_dataset(tmp_path_factory.mktemp("kinetics"))


def _cfg(dataset, out: Path, **kw) -> ShardConfig:
    root, annotations = dataset
    base = dict(
        source=str(root),
        out=str(out),
        annotations=str(annotations),
        split="train",
        samples_per_shard=3,
        num_samples=8,
        seed=7,
        **TINY,
    )
    return ShardConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def made(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    summary = make_shards(_cfg(dataset, out), progress=False)
    return out, summary


def _decode(data: bytes) -> np.ndarray:
    """Plain PyAV, no blendkit code: mp4 bytes -> (T, H, W, 3) uint8."""
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def assert_same_shards(a: Path, b: Path, n: int = 3) -> None:
    """Byte-identical shards; on failure, name the members that differ."""
    for i in range(n):
        name = f"shard-{i:06d}.tar"
        if (a / name).read_bytes() != (b / name).read_bytes():
            ma, mb = _members(a / name), _members(b / name)
            diff = sorted(k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k))
            notes = [f"{k}: {ma.get(k)!r} != {mb.get(k)!r}" for k in diff if k.endswith(".json")]
            raise AssertionError(f"{name} differs in {diff} {notes}")


def test_shards_read_back_with_plain_webdataset_and_pyav(made):
    out, summary = made
    assert summary.samples == 8 and summary.shards == 3 and summary.shards_written == 3
    samples = list(
        wds.WebDataset(sorted(str(p) for p in out.glob("shard-*.tar")), shardshuffle=False)
    )
    assert [s["__key__"] for s in samples] == [f"{i:09d}" for i in range(8)]
    for s in samples:
        meta = json.loads(s["json"])
        mix, v1, v2 = (_decode(s[f"{k}.mp4"]) for k in ("mix", "v1", "v2"))
        alpha = np.load(io.BytesIO(s["alpha.npz"]))["alpha"]
        assert mix.shape == v1.shape == v2.shape == (16, 32, 32, 3)
        assert alpha.shape == (16, 32, 32) and alpha.dtype == np.float32
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0
        target = alpha[..., None] * v1 + (1 - alpha[..., None]) * v2.astype(np.float64)
        mse = np.mean((mix - target) ** 2)
        assert 10 * np.log10(255**2 / mse) >= 40.0
        assert meta["blend"] == ("transparent", "occlusion")[meta["index"] % 2]
        if meta["blend"] == "transparent":
            assert np.all(alpha == 0.5) and meta["superpixel"] is None
        else:
            assert set(np.unique(alpha)) <= {0.0, 1.0}
            assert int(alpha.sum()) == meta["superpixel"]["voxels"] > 0
        assert meta["v1"]["path"] != meta["v2"]["path"]
        for side in ("a1", "a2"):
            if meta["v" + side[1]]["has_audio"]:
                with av.open(io.BytesIO(s[f"{side}.m4a"])) as c:
                    assert c.streams.audio[0].rate == 8000
                    n = sum(f.samples for f in c.decode(audio=0))
                assert n == meta["audio_samples"] == 5120
            else:
                assert f"{side}.m4a" not in s


def test_bad_inputs_are_skipped_with_reasons(made):
    out, summary = made
    report = json.loads((out / "report.json").read_text())
    reasons = {s["youtube_id"]: s["reason"] for s in report["skipped"]}
    assert reasons["zerobyte000"] == "zero-byte file"
    assert reasons["missing0000"].startswith("missing")
    assert reasons["tooshort000"].startswith("too short")
    assert "notavideo00" in reasons and "truncated00" in reasons
    assert "validonly00" not in reasons  # other split: not an input of this run
    assert reasons["truncated00"].startswith("truncated")
    assert summary.sources_usable == 7  # the truncated file passes the probe; decoding catches it
    used = {
        json.loads(s["json"])[v]["youtube_id"]
        for s in wds.WebDataset(str(out / "shard-000000.tar"), shardshuffle=False)
        for v in ("v1", "v2")
    }
    assert used <= {f"vid{i:08d}" for i in range(6)}


def test_manifest_has_one_row_per_sample(made):
    out, _ = made
    table = pq.read_table(out / "manifest.parquet")
    assert table.num_rows == 8
    assert table.column("key").to_pylist() == [f"{i:09d}" for i in range(8)]
    assert set(table.column("shard").to_pylist()) == {f"shard-00000{i}.tar" for i in range(3)}


def _samples_by_shard(out: Path, n_shards: int = 3) -> list[list[tuple[dict, dict]]]:
    """Per shard, in key order: (metadata, members by name without the key) of every sample."""
    shards = []
    for i in range(n_shards):
        members = _members(out / f"shard-{i:06d}.tar")
        keys = sorted({name.split(".")[0] for name in members})
        shards.append(
            [
                (
                    json.loads(members[f"{k}.json"]),
                    {n.split(".", 1)[1]: v for n, v in members.items() if n.startswith(k + ".")},
                )
                for k in keys
            ]
        )
    return shards


def test_chain_pairing_uses_every_clip_as_v1_once_and_v2_once(made):
    out, _ = made
    for shard in _samples_by_shard(out):
        assert [meta["pairing"] for meta, _ in shard] == ["chain"] * len(shard)
        for k, (meta, members) in enumerate(shard):
            next_meta, next_members = shard[(k + 1) % len(shard)]
            assert meta["v1"]["youtube_id"] != meta["v2"]["youtube_id"]
            assert meta["v2"] == next_meta["v1"]
            assert members["v2.mp4"] == next_members["v1.mp4"]
            assert members.get("a2.m4a") == next_members.get("a1.m4a")


def test_source_order_takes_a_new_permutation_for_every_pass():
    from blendkit.pipeline import source_order

    order = source_order(seed=0, n_sources=5, n_samples=13)
    passes = [order[0:5], order[5:10], order[10:]]
    assert [sorted(p) for p in passes[:2]] == [list(range(5))] * 2 and len(passes[2]) == 3
    assert passes[0] != passes[1]  # so chain pairing blends other pairs in the second pass
    assert source_order(0, 5, 5) == passes[0] == source_order(0, 5, 7)[:5]  # a prefix is stable
    assert source_order(1, 5, 5) != passes[0]
    for seed in range(20):  # neighbours differ, also across passes (chain pairing needs it)
        order = source_order(seed, 3, 30)
        assert all(a != b for a, b in itertools.pairwise(order))


def test_draw_pairing_draws_another_video_for_every_sample(dataset, tmp_path):
    out = tmp_path / "draw"
    make_shards(_cfg(dataset, out, pairing="draw"), progress=False)
    samples = [s for shard in _samples_by_shard(out) for s in shard]
    assert [meta["pairing"] for meta, _ in samples] == ["draw"] * 8
    assert all(m["v1"]["youtube_id"] != m["v2"]["youtube_id"] for m, _ in samples)
    reused = sum(a["v2.mp4"] == b["v1.mp4"] for (_, a), (_, b) in itertools.pairwise(samples))
    assert reused == 0


def test_one_sample_shards_draw_their_v2(dataset, tmp_path):
    out = tmp_path / "single"
    make_shards(_cfg(dataset, out, num_samples=3, samples_per_shard=1), progress=False)
    samples = [s for shard in _samples_by_shard(out, 3) for s in shard]
    assert [meta["pairing"] for meta, _ in samples] == ["draw"] * 3
    assert all(m["v1"]["youtube_id"] != m["v2"]["youtube_id"] for m, _ in samples)


def test_same_bytes_whatever_the_number_of_workers(dataset, made, tmp_path):
    out1, _ = made
    out2 = tmp_path / "w2"
    make_shards(_cfg(dataset, out2, workers=2), progress=False)
    assert_same_shards(out1, out2)


def test_rerun_resumes_and_refuses_another_config(dataset, made, tmp_path):
    out1, _ = made
    out = tmp_path / "resume"
    make_shards(_cfg(dataset, out), progress=False)
    (out / "shard-000001.tar").unlink()
    (out / ".shard-000002.tar.123.tmp").write_bytes(b"partial")  # left by a killed run
    again = make_shards(_cfg(dataset, out), progress=False)
    assert (again.shards_written, again.shards_resumed) == (1, 2)
    assert not list(out.glob(".*.tmp"))
    assert (out / "shard-000001.tar").read_bytes() == (out1 / "shard-000001.tar").read_bytes()
    with pytest.raises(ConfigError, match="differs in: crf"):
        make_shards(_cfg(dataset, out, crf=20), progress=False)
    versions = json.loads((out / "made_with.json").read_text())
    (out / "made_with.json").write_text(json.dumps({**versions, "libavcodec": "0.0.0"}))
    with pytest.raises(ConfigError, match=r"made_with.json: .* other versions \(differs in: libav"):
        make_shards(_cfg(dataset, out), progress=False)  # bytes would differ from the others'
    assert (out / "shard-000001.tar").read_bytes() == (out1 / "shard-000001.tar").read_bytes()


def test_interrupted_shard_leaves_nothing_that_looks_complete(dataset, made, tmp_path, monkeypatch):
    out1, _ = made
    out = tmp_path / "killed"
    real = pipeline.make_sample

    def dies_on_sample_4(index, *args):
        if index == 4:
            raise KeyboardInterrupt
        return real(index, *args)

    monkeypatch.setattr(pipeline, "make_sample", dies_on_sample_4)
    with pytest.raises(KeyboardInterrupt):
        make_shards(_cfg(dataset, out), progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        ".blendkit.lock",
        "config.json",
        "inputs.json",
        "made_with.json",
        "shard-000000.json",
        "shard-000000.tar",
    ]
    monkeypatch.setattr(pipeline, "make_sample", real)
    make_shards(_cfg(dataset, out), progress=False)
    assert_same_shards(out1, out)


def test_config_rejects_unknown_keys_and_wrong_types(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(ShardConfig, {"source": "a", "out": "b", "frame": 3})
    with pytest.raises(ConfigError, match="frames"):
        from_dict(ShardConfig, {"source": "a", "out": "b", "frames": "64"})
    with pytest.raises(ConfigError, match="superpixels.n_segment"):
        from_dict(ShardConfig, {"source": "a", "out": "b", "superpixels": {"n_segment": 3}})
    cfg = from_dict(
        ShardConfig, {"source": "a", "out": "b", "fps": 30, "superpixels": {"n_segments": 9}}
    )
    assert cfg.fps == 30.0 and cfg.superpixels.n_segments == 9


@pytest.mark.parametrize(
    ("params", "reason"),
    [("trellis", "'trellis' is not key=value"), ("threads=4", "threads is fixed by blendkit"),
     ("ref=1:asm=AVX512", "asm is fixed"), ("=1", "'=1' is not key=value")],
)  # fmt: skip
def test_config_rejects_x264_params_that_are_malformed_or_break_determinism(params, reason):
    with pytest.raises(ConfigError, match=f"x264_params: {reason}"):
        ShardConfig(source="a", out="b", x264_params=params)
    assert ShardConfig(source="a", out="b", x264_params="trellis=2:ref=1").x264_params


def test_too_few_usable_videos_is_a_clear_error(tmp_path):
    (tmp_path / "src").mkdir()
    make_zero_byte(tmp_path / "src" / "a.mp4")
    with pytest.raises(ValueError, match="need at least two usable videos"):
        make_shards(
            ShardConfig(source=str(tmp_path / "src"), out=str(tmp_path / "o"), **TINY),
            progress=False,
        )


def test_any_failure_of_one_input_or_sample_is_a_skip_not_the_end(dataset, tmp_path, monkeypatch):
    real_probe, real_sample = pipeline.probe, pipeline.make_sample

    def probe(path, *args):
        if "vid00000005" in str(path):
            raise KeyError("a PyAV surprise")
        return real_probe(path, *args)

    def make_sample(index, *args):
        if index == 2:
            raise RuntimeError("an encoder surprise\nin two lines")
        return real_sample(index, *args)

    monkeypatch.setattr(pipeline, "probe", probe)
    monkeypatch.setattr(pipeline, "make_sample", make_sample)
    out = tmp_path / "out"
    summary = make_shards(_cfg(dataset, out), progress=False)
    assert (summary.samples, summary.failed_samples, summary.sources_usable) == (7, 1, 6)
    report = json.loads((out / "report.json").read_text())
    assert report["failed_samples"] == [{"index": 2, "reason": "RuntimeError: an encoder surprise"}]
    reasons = {s["youtube_id"]: s["reason"] for s in report["skipped"]}
    assert reasons["vid00000005"] == "KeyError: 'a PyAV surprise'"


def test_shards_to_redo_are_redone_even_after_an_interrupted_rerun(dataset, tmp_path, monkeypatch):
    root = tmp_path / "src"
    shutil.copytree(dataset[0], root)  # mtimes kept
    cfg = _cfg((root, root / "train.csv"), tmp_path / "out")
    make_shards(cfg, progress=False)
    before = {p.name: p.read_bytes() for p in Path(cfg.out).glob("shard-*")}
    touched = next(root.glob("singing/*.mp4"))
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    readers = [
        i for i in range(3) if touched.name in (Path(cfg.out) / f"shard-{i:06d}.json").read_text()
    ]
    assert readers

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "make_sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_shards(cfg, progress=False)
    assert json.loads((Path(cfg.out) / "inputs.json").read_text())["pending"] == readers
    monkeypatch.undo()
    summary = make_shards(cfg, progress=False)  # the mtime is recorded now: only "pending" says
    assert (summary.shards_redone, summary.shards_written) == (len(readers), len(readers))
    assert json.loads((Path(cfg.out) / "inputs.json").read_text())["pending"] == []
    assert {p.name: p.read_bytes() for p in Path(cfg.out).glob("shard-*")} == before
