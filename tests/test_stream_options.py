"""Two stream options of the tiny config: occlusion blends thinned out per loader epoch
(``data.occlusion_keep``, in ``trainer.data.select``) and decoded samples kept in memory
(``data.cache_decoded``, ``trainer.data.cache``)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch

from blendkit.typed_config import ConfigError
from tests.test_data import member_bytes, write_shard
from trainer.data import DataConfig, LoaderStats, make_loader
from trainer.data.cache import DecodedCache
from trainer.data.select import select

torch.set_num_threads(1)

KINDS = ["transparent", "occlusion"] * 50  # 100 raw samples, half of each kind


def raws() -> list[dict]:
    return [
        {"__key__": f"{i:03d}", "json": f'{{"blend": "{kind}"}}'.encode()}
        for i, kind in enumerate(KINDS)
    ]


def selected(keep: float, seed: int = 3) -> tuple[list[str], dict[str, int]]:
    stats = LoaderStats()
    rng = random.Random(seed)
    out = select(raws(), blend="both", require_audio=False, stats=stats, occlusion_keep=keep,
                 rng=rng)  # fmt: skip
    return [r["__key__"] for r in out], stats.snapshot()


def test_select_keeps_every_transparent_and_the_drawn_occlusion_blends():
    kept, counts = selected(0.25)
    replay = random.Random(3)  # one draw per occlusion blend, in stream order
    expected = [
        r["__key__"]
        for r, kind in zip(raws(), KINDS, strict=True)
        if kind == "transparent" or replay.random() < 0.25
    ]
    assert kept == expected
    n_occlusion = len(kept) - 50
    assert sum(int(k) % 2 == 0 for k in kept) == 50  # every transparent blend
    assert 0 < n_occlusion < 50
    assert counts["thinned_occlusion"] == 50 - n_occlusion
    assert counts["filtered_blend"] == 0


def test_select_keep_one_passes_everything_and_keep_zero_no_occlusion():
    assert selected(1.0)[0] == [r["__key__"] for r in raws()]
    kept, counts = selected(0.0)
    assert kept == [f"{i:03d}" for i in range(0, 100, 2)]
    assert counts["thinned_occlusion"] == 50


def test_occlusion_keep_per_epoch_last_value_holds():
    cfg = DataConfig(shards="x", occlusion_keep=(1.0, 1.0, 0.25))
    assert [cfg.occlusion_keep_at(e) for e in range(5)] == [1.0, 1.0, 0.25, 0.25, 0.25]
    fixed = cfg.fixed_pass("y")  # validation sees every blend
    assert fixed.occlusion_keep == (1.0,) and fixed.cache_decoded == 0


@pytest.mark.parametrize("keep", [(), (1.0, 1.5), (-0.1,), (float("nan"),)])
def test_occlusion_keep_outside_zero_one_is_refused(keep):
    with pytest.raises(ConfigError, match="occlusion_keep: must be one or more probabilities"):
        DataConfig(shards="x", occlusion_keep=keep)


def test_negative_cache_is_refused():
    with pytest.raises(ConfigError, match="cache_decoded: must be at least 0"):
        DataConfig(shards="x", cache_decoded=-1)


def test_cache_keeps_at_most_max_items():
    cache: DecodedCache[str] = DecodedCache(2)
    for name in "abc":
        cache.put(name, name.upper())
    assert len(cache) == 2 and cache.get("a") == "A" and cache.get("c") is None


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream_options")
    samples = [member_bytes(i) for i in range(8)]  # even indices transparent, odd occlusion
    for s in range(2):
        write_shard(root / f"shard-{s:06d}.tar", samples[4 * s : 4 * s + 4])
    return root


def epochs(cfg: DataConfig, n: int) -> tuple[list[list], dict[str, int]]:
    loader = make_loader(cfg)
    out = [list(loader.iter_epoch(e)) for e in range(n)]
    return out, loader.stats.snapshot()


def training(shards: Path, **kw) -> DataConfig:
    base = dict(shards=str(shards), batch_size=2, workers=0, shuffle_buffer=8, resampled=False,
                remix=True, remix_pool=4, augment=True, frame_stride=2)  # fmt: skip
    return DataConfig(**(base | kw))


def test_cached_stream_is_unchanged_and_decoded_once(shards):
    plain, plain_counts = epochs(training(shards), 3)
    cached, counts = epochs(training(shards, cache_decoded=100), 3)
    assert plain_counts["samples_decoded"] == 3 * 8
    assert counts["samples_decoded"] == 8 and counts["samples_cached"] == 2 * 8
    flat_plain = [b for e in plain for b in e]
    flat_cached = [b for e in cached for b in e]
    assert len(flat_plain) == len(flat_cached) == 3 * 4
    for a, b in zip(flat_plain, flat_cached, strict=True):
        assert a["key"] == b["key"]
        for name in ("v1", "v2", "alpha", "a1_wave", "a2_wave"):
            assert torch.equal(a[name], b[name]), name


def test_a_full_cache_decodes_the_rest_every_time(shards):
    _, counts = epochs(training(shards, cache_decoded=3), 2)
    assert counts["samples_decoded"] == 8 + 5 and counts["samples_cached"] == 3


def test_loader_thins_occlusion_from_the_epoch_the_config_names(shards):
    cfg = dataclasses.replace(training(shards), remix=False, occlusion_keep=(1.0, 0.0))
    batches, counts = epochs(cfg, 3)
    blends = [[k for b in epoch for k in b["blend"]] for epoch in batches]
    assert sorted(blends[0]) == ["occlusion"] * 4 + ["transparent"] * 4
    assert blends[1] == blends[2] == ["transparent"] * 4
    assert counts["thinned_occlusion"] == 2 * 4
