"""The blendkit CLI: one-line errors for bad input, the library does the work."""

from __future__ import annotations

from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0]


def test_missing_source_folder(tmp_path):
    result = runner.invoke(
        app, ["make-shards", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
    )
    _one_line_error(result, "nope", "does not exist")


def test_bad_blend_option(tmp_path):
    result = runner.invoke(
        app, ["make-shards", str(tmp_path), "--blend", "fuzzy", "--out", str(tmp_path / "o")]
    )
    _one_line_error(result, "blend", "fuzzy")


def test_inspect_empty_folder(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    _one_line_error(result, str(tmp_path), "no shard-*.tar")


def test_bad_demo_data_options(tmp_path):
    result = runner.invoke(app, ["demo-data", str(tmp_path / "d"), "--per-class", "0"])
    _one_line_error(result, "per_class: must be at least 1, got 0")
    result = runner.invoke(app, ["demo-data", str(tmp_path / "d"), "--seconds", "-1"])
    _one_line_error(result, "seconds: must be positive")
    assert not (tmp_path / "d").exists()


def test_unreadable_annotations(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("nothing,useful\n")
    out = str(tmp_path / "out")
    result = runner.invoke(
        app, ["make-shards", str(tmp_path), "--annotations", str(csv), "--out", out]
    )
    _one_line_error(result, "a.csv", "missing column")


def test_config_file_values_hold_unless_given_on_the_command_line(tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"blend": "fuzzy", "pairing": "draw"}')
    out = ["--out", str(tmp_path / "o")]
    result = runner.invoke(app, ["make-shards", str(tmp_path), "--config", str(config), *out])
    _one_line_error(result, "blend", "fuzzy")  # the file's value, not the option's default
    given = [*out, "--config", str(config), "--blend", "transparent", "--pairing", "sideways"]
    result = runner.invoke(app, ["make-shards", str(tmp_path), *given])
    _one_line_error(result, "pairing", "sideways")


def test_make_shards_option_defaults_are_the_configs():
    """The CLI repeats ShardConfig's defaults (so --help shows them); they must not drift."""
    import dataclasses

    import typer.main

    from blendkit.shard_config import ShardConfig

    fields = {
        f.name: f.default
        for f in dataclasses.fields(ShardConfig)
        if f.default is not dataclasses.MISSING  # source and out are required
    }
    fields["tune"] = fields["tune"] or "none"  # the CLI spells x264's default "none"
    command = typer.main.get_command(app).commands["make-shards"]
    checked = {p.name: p.default for p in command.params if p.name in fields}
    assert {"crf", "mix_crf", "preset", "tune", "x264_params", "frames", "fps"} <= set(checked)
    assert checked == {name: fields[name] for name in checked}
