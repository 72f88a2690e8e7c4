"""trainer.data: tiny shards written on the fly (T=8, 32x32, 0.32 s of 16 kHz audio)."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from blendkit.codec import decode_video, encode_alpha, encode_audio, encode_video, psnr
from trainer.audio_features import MelParams, log_mel, n_frames
from trainer.colour import yuv_to_rgb
from trainer.data import DataConfig, list_shards, make_loader
from trainer.data.device import prepare
from trainer.pixels import UNIT

torch.set_num_threads(1)

T, H, W, FPS, RATE = 8, 32, 32, 25.0, 16000
N_AUDIO = round(T / FPS * RATE)  # 5120
PER_SHARD, N_SHARDS = 4, 3
NO_A1 = {3, 10}  # V1 without audio
NO_A2 = {1, 2, 7, 10}  # V2 without audio


def rgb(planes: torch.Tensor) -> np.ndarray:
    """A loader video, (3, T, H, W) uint8 Y, U, V planes -> (T, H, W, 3) uint8 RGB."""
    converted = yuv_to_rgb(planes.unsqueeze(0))[0].mul(255).round().to(torch.uint8)
    return converted.permute(1, 2, 3, 0).numpy()


def clip(seed: int) -> np.ndarray:
    """A smooth moving (T, H, W, 3) uint8 clip, different for each seed."""
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    phase = np.array([0.0, 2.0, 4.0]) + seed
    out = 128 + 90 * np.sin((x[..., None] + 2 * t[..., None]) / 6.0 + phase)
    out = out * (0.6 + 0.4 * np.cos((y[..., None] - t[..., None]) / 9.0 + seed))
    return np.clip(out, 0, 255).astype(np.uint8)


def tone(seed: int) -> np.ndarray:
    return (0.4 * np.sin(np.arange(N_AUDIO) * (0.05 + 0.01 * seed))).astype(np.float32)


def alpha_for(index: int) -> np.ndarray:
    if index % 2 == 0:  # transparent
        return np.full((T, H, W), 0.5, np.float32)
    alpha = np.zeros((T, H, W), np.float32)  # occlusion: a block standing in for a superpixel
    alpha[:, 4 + index : 20 + index, 8:24] = 1.0
    return alpha


def member_bytes(index: int) -> dict[str, bytes]:
    """Members of sample ``index`` as in docs/contract.md; V1 = clip(2i), V2 = clip(2i+1)."""
    v1_bytes, v2_bytes = (
        encode_video(clip(2 * index), FPS, 10),
        encode_video(clip(2 * index + 1), FPS, 10),
    )
    alpha = alpha_for(index)
    v1, v2 = decode_video(v1_bytes).astype(np.float32), decode_video(v2_bytes).astype(np.float32)
    mix = np.clip(np.round(alpha[..., None] * v1 + (1 - alpha[..., None]) * v2), 0, 255).astype(
        np.uint8
    )
    key = f"{index:09d}"
    meta = {
        "key": key,
        "index": index,
        "blend": "transparent" if index % 2 == 0 else "occlusion",
        "fps": FPS,
        "frames": T,
        "height": H,
        "width": W,
        "audio_rate": RATE,
        "audio_samples": N_AUDIO,
    }
    sample = {
        "__key__": key,
        "json": json.dumps(meta).encode(),
        "mix.mp4": encode_video(mix, FPS, 4),
        "v1.mp4": v1_bytes,
        "v2.mp4": v2_bytes,
        "alpha.npz": encode_alpha(alpha),
    }
    if index not in NO_A1:
        sample["a1.flac"] = encode_audio(tone(2 * index), RATE, codec="flac")
    if index not in NO_A2:
        sample["a2.m4a"] = encode_audio(tone(2 * index + 1), RATE, codec="aac")
    return sample


def write_shard(path: Path, samples: list[dict[str, bytes]]) -> None:
    with wds.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)


@pytest.fixture(scope="module")
def samples() -> dict[int, dict[str, bytes]]:
    return {i: member_bytes(i) for i in range(PER_SHARD * N_SHARDS)}


@pytest.fixture(scope="module")
def good(tmp_path_factory, samples) -> Path:
    root = tmp_path_factory.mktemp("good")
    for s in range(N_SHARDS):
        write_shard(
            root / f"shard-{s:06d}.tar", [samples[s * PER_SHARD + i] for i in range(PER_SHARD)]
        )
    return root


def config(shards: Path, **kw) -> DataConfig:
    """A validation-style config: one pass, tar order, in this process."""
    base = dict(shards=str(shards), batch_size=4, workers=0, shuffle_buffer=0, resampled=False)
    return DataConfig(**(base | kw))


def read_all(cfg: DataConfig, **kw):
    loader = make_loader(cfg, **kw)
    return list(loader), loader


def unbatch(batches) -> dict[str, dict]:
    """key -> that sample's slices of every batch field."""
    out = {}
    for b in batches:
        for i, key in enumerate(b["key"]):
            out[key] = {name: value[i] for name, value in b.items()}
    return out


def keys_of(batches) -> list[str]:
    return [k for b in batches for k in b["key"]]


def test_list_shards_dir_brace_and_list_file(good, tmp_path):
    names = [str(good / f"shard-{s:06d}.tar") for s in range(N_SHARDS)]
    assert list_shards(str(good)) == names
    assert list_shards(str(good / "shard-{000000..000002}.tar")) == names
    listing = good / "train.txt"  # relative entries resolve against the list file
    listing.write_text("# newest first\n" + "\n".join(Path(n).name for n in names[::-1]) + "\n")
    assert list_shards(str(listing)) == names[::-1]
    with pytest.raises(FileNotFoundError, match="no shards"):
        list_shards(str(tmp_path))


def test_batch_shapes_dtypes_ranges_and_audio_flags(good):
    batches, loader = read_all(config(good))
    assert keys_of(batches) == [f"{i:09d}" for i in range(12)]
    frames = n_frames(N_AUDIO, 160)
    assert frames == 33
    for b in batches:
        assert set(b) == {  # no mix: the trainer forms it by equation 3 (prepare)
            "v1",
            "v2",
            "alpha",
            "a1_wave",
            "a2_wave",
            "has_a1",
            "has_a2",
            "a1_reversed",
            "a2_reversed",
            "mel",
            "blend",
            "key",
        }
        for name in ("v1", "v2"):
            assert b[name].shape == (4, 3, T, H, W) and b[name].dtype == torch.uint8
        assert b["alpha"].shape == (4, 1, T, H, W) and b["alpha"].dtype == torch.float16
        for name in ("a1_wave", "a2_wave"):
            assert b[name].shape == (4, N_AUDIO) and b[name].dtype == torch.float32
        for name in ("has_a1", "has_a2", "a1_reversed", "a2_reversed"):
            assert b[name].dtype == torch.bool and b[name].shape == (4,)
        assert not b["a1_reversed"].any() and b["mel"] == [MelParams(RATE, 64, 512, 160)] * 4
        p = prepare(b, torch.device("cpu"), pixel_pool=1, pixel_range=UNIT, channels_last=False)
        assert not {"a1_wave", "a2_wave", "a1_reversed", "a2_reversed", "mel"} & set(p)
        for name in ("a1", "a2"):
            assert p[name].shape == (4, 1, 64, frames) and p[name].dtype == torch.float32
    got = unbatch(batches)
    features = unbatch(
        prepare(b, torch.device("cpu"), pixel_pool=1, pixel_range=UNIT, channels_last=False)
        for b in batches
    )
    for i in range(12):
        s = got[f"{i:09d}"]
        assert s["blend"] == ("transparent" if i % 2 == 0 else "occlusion")
        assert bool(s["has_a1"]) == (i not in NO_A1) and bool(s["has_a2"]) == (i not in NO_A2)
        for track, absent in (("a1", NO_A1), ("a2", NO_A2)):
            if i in absent:  # a silent waveform and all-zero features
                assert torch.count_nonzero(s[f"{track}_wave"]) == 0
                assert torch.count_nonzero(features[f"{i:09d}"][track]) == 0
            else:
                assert s[f"{track}_wave"].abs().sum() > 0
                assert features[f"{i:09d}"][track].abs().sum() > 0
        # float16 on its way (half the bytes), float32 on the device, exactly the stored values
        stored = torch.from_numpy(alpha_for(i))
        torch.testing.assert_close(s["alpha"][0], stored.half(), rtol=0, atol=0)
        torch.testing.assert_close(features[f"{i:09d}"]["alpha"][0], stored, rtol=0, atol=0)
        assert psnr(rgb(s["v1"]), clip(2 * i)) > 35
    # a1 is the stored tone (FLAC is lossless at 16 bit), its features the tone's log-mel
    pcm16 = np.round(tone(0) * 32767.0).astype(np.int16).astype(np.float32) / 32768.0
    assert torch.equal(got["000000000"]["a1_wave"], torch.from_numpy(pcm16))
    expected = log_mel(pcm16, RATE, 64, 512, 160)
    torch.testing.assert_close(features["000000000"]["a1"], expected, rtol=0, atol=1e-4)
    assert loader.stats.skipped == 0
    assert loader.stats.snapshot()["samples_decoded"] == 12


def test_prepared_audio_features_equal_the_log_mel_of_each_decoded_track(good, samples):
    """The features ``prepare`` computes from a batch of waveforms are, bit for bit on the CPU,
    what the loader used to compute per track: ``log_mel`` of the decoded audio, zeros when
    absent, reversed in time where augmentation reversed the sample."""
    from blendkit.codec import decode_audio
    from trainer.audio_features import batch_log_mel

    for b in read_all(config(good))[0]:
        p = prepare(b, torch.device("cpu"), pixel_pool=1, pixel_range=UNIT, channels_last=False)
        for i, key in enumerate(b["key"]):
            for track in ("a1", "a2"):
                member = next((m for m in samples[int(key)] if m.startswith(f"{track}.")), None)
                if member is None:
                    assert torch.equal(p[track][i], torch.zeros(1, 64, n_frames(N_AUDIO, 160)))
                    continue
                wave, rate = decode_audio(samples[int(key)][member])
                assert torch.equal(p[track][i], log_mel(wave, rate, 64, 512, 160))
        flipped = batch_log_mel(
            b["a1_wave"], b["has_a1"], torch.ones(4, dtype=torch.bool), b["mel"][0]
        )
        assert torch.equal(flipped, p["a1"].flip(-1))
    mixed = dict(b, mel=[MelParams(RATE, 64, 512, 160), MelParams(8000, 64, 512, 160)] * 2)
    with pytest.raises(ValueError, match="mixes audio rates"):
        prepare(mixed, torch.device("cpu"), pixel_pool=1, pixel_range=UNIT, channels_last=False)


def test_stored_mix_is_half_v1_plus_half_v2(good):
    got = unbatch(read_all(config(good, blend="transparent", stored_mix=True))[0])
    assert len(got) == 6
    for s in got.values():
        assert s["mix"].dtype == torch.uint8
        s = {k: torch.from_numpy(rgb(s[k])).float() / 255 for k in ("mix", "v1", "v2")}
        expected = 0.5 * s["v1"] + 0.5 * s["v2"]
        # codec tolerance: mix is stored as a lossy mp4 (contract: >= 40 dB)
        assert psnr(s["mix"].numpy(), expected.numpy(), peak=1.0) > 40
        assert (s["mix"] - expected).abs().mean() < 2 / 255
        assert psnr(s["mix"].numpy(), s["v1"].numpy(), peak=1.0) < 25  # it is a real mixture


def test_remix_identity_is_exact_and_pairs_are_new(good):
    stored = unbatch(read_all(config(good))[0])
    batches, loader = read_all(config(good, remix=True, remix_pool=4, seed=3))
    got = unbatch(batches)
    assert len(got) == 12 and loader.stats.skipped == 0
    for b in batches:  # the trainer forms equation 3 on the new pair, exactly
        assert "mix" not in b
        p = prepare(b, torch.device("cpu"), pixel_pool=1, pixel_range=UNIT, channels_last=False)
        assert torch.equal(p["mix"], p["alpha"] * p["v1"] + (1 - p["alpha"]) * p["v2"])
    bases = []
    for key, s in got.items():
        base, partner_tag = key.split("+")
        partner, tag = partner_tag.split(".")
        assert partner != base
        bases.append(base)
        for name in ("v1", "alpha", "a1_wave", "has_a1"):  # alpha and a1 stay with their V1
            assert torch.equal(s[name], stored[base][name])
        assert s["blend"] == stored[base]["blend"]
        audio_tag = "a1" if tag == "v1" else "a2"
        assert torch.equal(s["v2"], stored[partner][tag])
        assert torch.equal(s["a2_wave"], stored[partner][f"{audio_tag}_wave"])
        assert bool(s["has_a2"]) == bool(stored[partner][f"has_{audio_tag}"])
    assert sorted(bases) == sorted(stored)  # every stored sample is a base exactly once
    again = keys_of(read_all(config(good, remix=True, remix_pool=4, seed=3))[0])
    other = keys_of(read_all(config(good, remix=True, remix_pool=4, seed=4))[0])
    assert again == keys_of(batches) and other != again


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory, samples) -> Path:
    """shard 0 intact; shard 1 truncated inside sample 6's v1.mp4; shard 2 with a garbage v1.mp4
    (sample 9) and a sample without alpha (10); shard 3 is not a tar at all."""
    root = tmp_path_factory.mktemp("corrupt")
    write_shard(root / "shard-000000.tar", [samples[i] for i in range(4)])
    path = root / "shard-000001.tar"
    write_shard(path, [samples[i] for i in range(4, 8)])
    with tarfile.open(path) as tar:
        member = tar.getmember("000000006.v1.mp4")
    data = path.read_bytes()
    path.write_bytes(data[: member.offset_data + member.size // 2])
    bad = dict(samples[9])
    bad["v1.mp4"] = bytes(range(256)) * 8
    no_alpha = {k: v for k, v in samples[10].items() if k != "alpha.npz"}
    write_shard(root / "shard-000002.tar", [samples[8], bad, no_alpha, samples[11]])
    (root / "shard-000003.tar").write_bytes(np.random.default_rng(0).bytes(5000))
    return root


EXPECTED_KEPT = [0, 1, 2, 3, 4, 5, 8, 11]


def check_corrupt_run(batches, loader, samples):
    assert sorted(keys_of(batches)) == [f"{i:09d}" for i in EXPECTED_KEPT]
    snap = loader.stats.snapshot()
    assert snap["shard_error"] == 2  # truncated + garbage
    assert snap["decode_error"] == 1  # sample 9's v1.mp4
    assert snap["missing_member"] == 1  # sample 10's alpha
    assert snap["samples_decoded"] == len(EXPECTED_KEPT)
    assert loader.stats.skipped == 4
    for key, s in unbatch(batches).items():  # what is left is whole, not zero-filled
        i = int(key)
        for name, seed in (("v1", 2 * i), ("v2", 2 * i + 1)):
            assert psnr(rgb(s[name]), clip(seed)) > 35
        assert torch.equal(s["alpha"][0].float(), torch.from_numpy(alpha_for(i)))


def test_corrupt_shards_and_samples_are_skipped_and_counted(corrupt, samples, caplog):
    with caplog.at_level(logging.WARNING, logger="trainer.data"):
        batches, loader = read_all(config(corrupt))
    check_corrupt_run(batches, loader, samples)
    text = caplog.text
    assert "shard-000001.tar" in text and "shard-000003.tar" in text
    assert "000000009 (decode_error)" in text and "000000010 (missing_member)" in text
    assert "alpha.npz" in text


def test_stats_are_summed_over_worker_processes(corrupt, samples):
    batches, loader = read_all(config(corrupt, workers=2))
    check_corrupt_run(batches, loader, samples)


def test_blend_filter(good):
    batches, loader = read_all(config(good, blend="occlusion"))
    assert keys_of(batches) == [f"{i:09d}" for i in range(1, 12, 2)]
    assert all(b == "occlusion" for batch in batches for b in batch["blend"])
    assert loader.stats.snapshot()["filtered_blend"] == 6
    with pytest.raises(ValueError, match="blend: expected one of"):
        DataConfig(shards=str(good), blend="mirror")


def test_require_audio_drops_samples_without_a1(good):
    batches, loader = read_all(config(good, require_audio=True))
    assert keys_of(batches) == [f"{i:09d}" for i in range(12) if i not in NO_A1]
    assert all(bool(b["has_a1"].all()) for b in batches)
    assert loader.stats.snapshot()["filtered_no_audio"] == len(NO_A1)


def test_two_ranks_see_disjoint_shards(good):
    rank0 = keys_of(read_all(config(good), rank=0, world_size=2)[0])
    rank1 = keys_of(read_all(config(good), rank=1, world_size=2)[0])
    assert rank0 == [f"{i:09d}" for i in (0, 1, 2, 3, 8, 9, 10, 11)]  # shards 0 and 2
    assert rank1 == [f"{i:09d}" for i in (4, 5, 6, 7)]  # shard 1
    with pytest.raises(ValueError, match="3 shards cannot feed world_size=2 x workers=2"):
        make_loader(config(good, workers=2), rank=0, world_size=2)


def test_validation_order_is_reproducible(good):
    cfg = config(good, batch_size=2)
    first = keys_of(read_all(cfg)[0])
    assert first == [f"{i:09d}" for i in range(12)]
    loader = make_loader(cfg)
    assert keys_of(loader) == first and keys_of(loader) == first  # two epochs, same order
    # Two workers: worker 0 reads shards 0 and 2, worker 1 shard 1; batches alternate.
    two = keys_of(read_all(config(good, batch_size=2, workers=2))[0])
    order = [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 10, 11]
    assert two == [f"{i:09d}" for i in order]


def test_resampled_stream_is_endless_and_seeded(good):
    cfg = config(good, resampled=True, shuffle_buffer=8, seed=5)
    loader = make_loader(cfg)
    first = [k for _, b in zip(range(5), loader, strict=False) for k in b["key"]]
    assert len(first) == 20  # more than the 12 stored samples
    again = [k for _, b in zip(range(5), make_loader(cfg), strict=False) for k in b["key"]]
    assert again == first
    next_epoch = [k for _, b in zip(range(5), loader, strict=False) for k in b["key"]]
    assert next_epoch != first


def test_augment_keeps_the_blend_identity_and_moves_every_member_alike():
    import random

    from trainer.data.augment import augment_sample
    from trainer.data.decoding import Sample

    g = torch.Generator().manual_seed(0)
    v1, v2 = (torch.randint(16, 241, (3, 4, 6, 5), generator=g, dtype=torch.uint8) for _ in "12")
    alpha = (torch.rand(1, 4, 6, 5, generator=g) > 0.5).float()
    mix = torch.where(alpha.bool(), v1, v2)  # occlusion: equation 3 on the stored planes
    a1 = torch.arange(8.0)
    mel = MelParams(RATE, 64, 512, 160)
    s = Sample("k", "occlusion", v1, v2, alpha, mix, a1, a1 + 1, True, True, mel)
    seen = set()
    for seed in range(100):
        out = augment_sample(s, random.Random(seed))
        assert torch.equal(out.mix, torch.where(out.alpha.bool(), out.v1, out.v2))
        # the waveforms stay as stored; time reversal flips their features (prepare)
        assert torch.equal(out.a1_wave, a1) and torch.equal(out.a2_wave, a1 + 1)
        reversed_time = out.a1_reversed
        assert out.a2_reversed == reversed_time
        per_frame = alpha.sum((0, 2, 3))  # unmoved by flips in H and W
        assert torch.equal(
            out.alpha.sum((0, 2, 3)), per_frame.flip(0) if reversed_time else per_frame
        )
        # brightness is moved, never changed: Y holds the same values
        assert torch.equal(out.v1[0].flatten().sort().values, v1[0].flatten().sort().values)
        same_chroma = torch.equal(out.v1[1:].sum((1, 2, 3)), v1[1:].sum((1, 2, 3)))
        seen.add((reversed_time, same_chroma))
    assert seen == {(True, True), (True, False), (False, True), (False, False)}


def test_chroma_symmetry_swaps_and_mirrors_u_and_v_around_grey():
    from trainer.data.augment import chroma_symmetry

    planes = torch.tensor([10, 20, 200], dtype=torch.uint8).view(3, 1, 1, 1)
    assert chroma_symmetry(planes, False, False, False).flatten().tolist() == [10, 20, 200]
    assert chroma_symmetry(planes, True, False, False).flatten().tolist() == [10, 200, 20]
    assert chroma_symmetry(planes, True, True, False).flatten().tolist() == [10, 56, 20]
    assert chroma_symmetry(planes, False, True, True).flatten().tolist() == [10, 236, 56]
    grey = torch.tensor([0, 0, 128], dtype=torch.uint8).view(3, 1, 1, 1)
    assert chroma_symmetry(grey, False, True, True).flatten().tolist() == [0, 255, 128]
