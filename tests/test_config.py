"""trainer.config: presets, key=value overrides, JSON round trip, and the CLI's error contract."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trainer.cli import app
from trainer.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    diff,
    from_dict,
    load_config,
    micro_batch,
    paper,
    save_config,
    tiny,
    to_dict,
)


def test_paper_preset_is_the_papers_setup():
    cfg = paper()
    assert cfg.model.n_outputs == 4
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum) == ("sgd", 0.5, 0.9)
    assert (cfg.optim.milestones, cfg.optim.gamma) == ([80_000, 100_000, 120_000], 0.1)
    assert (cfg.optim.steps, cfg.optim.batch) == (124_000, 128)


def test_overrides_parse_to_the_field_types():
    cfg = apply_overrides(
        tiny(),
        [
            "model.n_outputs=3",
            "optim.lr=0.1",
            "optim.steps=7",
            "optim.milestones=2,5",
            "optim.name=sgd",
            "bf16=yes",
            "model.width=1",
            "model.audio=none",
            "model.mask_levels=Mixed_3c,Mixed_5c",
            "val_shards=/data/val",
            "model_name=c3_internal",
        ],
    )
    assert cfg.model.n_outputs == 3 and isinstance(cfg.model.n_outputs, int)
    assert cfg.optim.lr == 0.1 and cfg.optim.steps == 7
    assert cfg.optim.milestones == [2, 5] and cfg.optim.name == "sgd"
    assert cfg.bf16 is True
    assert cfg.model.width == 1.0 and isinstance(cfg.model.width, float)
    assert cfg.model.audio is None
    assert cfg.model.mask_levels == ("Mixed_3c", "Mixed_5c")
    assert cfg.val_shards == "/data/val" and cfg.model_name == "c3_internal"
    assert diff(tiny(), cfg) == sorted(
        [
            "bf16",
            "model.mask_levels",
            "model.n_outputs",
            "model.width",
            "model_name",
            "optim.lr",
            "optim.milestones",
            "optim.name",
            "optim.steps",
            "val_shards",
        ]
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.foo=1", "unknown config key 'model.foo'"),
        ("nope=1", "unknown config key 'nope'"),
        ("bf16.x=1", "unknown config key 'bf16.x'"),
        ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
        ("optim.steps=1.5", "optim.steps: expected an integer, got '1.5'"),
        ("bf16=maybe", "bf16: expected true or false, got 'maybe'"),
        ("optim.name=rmsprop", "optim.name: expected one of ['sgd', 'adam'], got 'rmsprop'"),
        ("optim.milestones=1,x", "optim.milestones: expected an integer, got 'x'"),
        ("model=3", "model is a section"),
        ("data.batch_size=3", "data.batch_size is derived from optim.batch"),
        ("lr", "override 'lr' is not of the form key=value"),
        ("data.blend=fog", "blend: expected one of ['transparent', 'occlusion', 'both']"),
    ],
)
def test_bad_overrides_are_rejected_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(tiny(), [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model_name=c3_det"], "model.n_outputs: deterministic control (c3_det) needs exactly 2"),
        (["model_name=unet"], "model_name: expected one of"),
        (["optim.batch=6", "optim.grad_accum=4"], "batch: must be divisible by grad_accum (4)"),
        (["optim.milestones=5,3"], "milestones: must be strictly increasing"),
        (["model.n_mels=32"], "model.n_mels: must equal data.n_mels (64), got 32"),
        (["optim.steps=0"], "steps: must be positive"),
    ],
)
def test_inconsistent_settings_are_rejected(overrides, message):
    cfg = apply_overrides(paper(), ["model.n_outputs=4"])
    with pytest.raises(ConfigError, match=None) as info:
        apply_overrides(cfg, overrides)
    assert message in str(info.value)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_a_model_that_needs_an_exact_n_gets_it_from_load_config(preset):
    """Both presets ask for n = 4 (Table 1); c3_det takes the 2 of equation 5 unless n is set."""
    assert load_config(preset).model.n_outputs == 4
    assert load_config(preset, ["model_name=c3_internal"]).model.n_outputs == 4
    assert load_config(preset, ["model_name=c3_det"]).model.n_outputs == 2
    assert load_config(preset, ["model_name=c3_det", "model.n_outputs=2"]).model.n_outputs == 2
    with pytest.raises(ConfigError, match="c3_det\\) needs exactly 2 outputs"):
        load_config(preset, ["model_name=c3_det", "model.n_outputs=3"])
    with pytest.raises(ConfigError, match="model_name: expected one of"):
        load_config(preset, ["model_name=unet"])


def test_micro_batch_splits_the_global_batch():
    cfg = apply_overrides(paper(), ["optim.grad_accum=4"])
    assert micro_batch(cfg, world_size=8) == 4  # 128 / (8 * 4)
    with pytest.raises(ConfigError, match="world_size \\* optim.grad_accum"):
        micro_batch(cfg, world_size=3)


def test_json_round_trip_and_partial_files(tmp_path):
    cfg = apply_overrides(tiny(), ["model.n_outputs=3", "optim.lr=0.25"])
    path = tmp_path / "config.json"
    save_config(cfg, path)
    assert load_config(str(path)) == cfg
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"optim": {"lr": 0.01}, "model_name": "centrifuge"}))
    loaded = load_config(str(partial), ["optim.steps=9"])
    expected = paper()  # a file that names no preset starts from the paper's (and says so)
    assert (loaded.optim.lr, loaded.model_name, loaded.optim.steps) == (0.01, "centrifuge", 9)
    assert loaded.model == expected.model and loaded.optim.batch == expected.optim.batch


def test_saved_configs_of_older_versions_still_load(tmp_path):
    path = tmp_path / "config.json"
    save_config(tiny(), path)
    tree = json.loads(path.read_text())
    tree["data"]["blend"] = "any"  # every blend kind, before blendkit.format.blends
    path.write_text(json.dumps(tree))
    assert load_config(str(path)).data.blend == "both"
    assert tiny().data.blend == TrainConfig().data.blend == "both"
    with pytest.raises(ConfigError, match="blend: expected one of"):
        apply_overrides(tiny(), ["data.blend=any"])  # only saved configs are read the old way


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"optim": {"lr": "0.1"}}, "optim.lr: expected a number, got '0.1'"),
        ({"optim": {"steps": True}}, "optim.steps: expected an integer, got True"),
        ({"model": {"n_layer": 4}}, "unknown config key 'model.n_layer'"),
        ({"optim": 3}, "optim: expected a mapping"),
    ],
)
def test_json_wrong_types_and_unknown_keys(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, data)
    assert message in str(info.value)


def test_to_dict_is_plain_json():
    tree = to_dict(tiny())
    assert json.loads(json.dumps(tree)) == tree
    assert tree["model"]["mask_levels"] == list(tiny().model.mask_levels)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--config", "tiny", "--shards", "x", "model.foo=1"], "unknown config key"),
        (["train", "--config", "tiny"], "no training shards"),
        (["train", "--config", "huge", "--shards", "x"], "neither a preset"),
        (["train", "--shards", "/no/such/dir/shard-000000.tar"], "data.shards: "),
        (["config", "optim.lr=x"], "optim.lr: expected a number"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path):
    result = CliRunner().invoke(app, [*args, f"run_dir={tmp_path / 'run'}"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "run").exists()


def test_cli_config_prints_the_resolved_config():
    result = CliRunner().invoke(app, ["config", "--config", "tiny", "--steps", "5", "optim.lr=0.5"])
    assert result.exit_code == 0, result.output
    tree = json.loads(result.output)
    assert tree["optim"]["steps"] == 5 and tree["optim"]["lr"] == 0.5
