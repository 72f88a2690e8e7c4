"""The ``blendkit`` command line: thin typer commands that parse options and call a library.

Every error a user can cause (bad path, bad option, unusable data) ends in one line naming the file
and the reason, and exit code 2; never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import typer
from tqdm import tqdm

from blendkit.cli_support import USER_ERRORS, fail
from blendkit.format.layout import ALLOW_PIPE_HELP
from blendkit.limits import Limits

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])


def _warn_skip(skip) -> None:
    tqdm.write(f"warning: skipped {skip.path or skip.youtube_id}: {skip.reason}", file=sys.stderr)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was set on the command line (not left at its default)."""
    param = {"ray_address": "address"}.get(name, name)
    source = ctx.get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


@app.command("make-shards")
def make_shards_cmd(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Kinetics-layout folder (flat or per-label)."),
    out: str = typer.Option("shards/out", "--out", help="Output folder or fsspec URL."),
    annotations: Path | None = typer.Option(None, help="Kinetics CSV (label,youtube_id,...)."),
    split: str | None = typer.Option(None, help="Keep CSV rows of this split only."),
    blend: str = typer.Option("both", help="transparent | occlusion | both"),
    pairing: str = typer.Option(
        "chain", help="chain: V2 is the next sample's V1 clip (each clip used twice) | draw."
    ),
    num_samples: int | None = typer.Option(None, help="Samples to write [one per usable video]."),
    samples_per_shard: int = typer.Option(100, help="Samples per tar shard."),
    workers: int = typer.Option(1, help="Worker processes (local engine)."),
    engine: str = typer.Option("local", help="local | ray (pip install '.[ray]')."),
    address: str | None = typer.Option(None, help="Ray address: auto, ray://head:10001."),
    seed: int = typer.Option(0, help="Run seed: same inputs and seed give identical shards."),
    frames: int = typer.Option(64, help="Frames per clip."),
    fps: float = typer.Option(25.0, help="Frame rate clips are resampled to."),
    short_side: int = typer.Option(148, help="Shorter side after resizing."),
    crop: int = typer.Option(128, help="Square crop size."),
    audio_rate: int = typer.Option(16000, help="Audio sample rate (Hz)."),
    crf: int = typer.Option(15, help="H.264 CRF of v1 / v2."),
    mix_crf: int = typer.Option(10, help="First H.264 CRF tried for mix."),
    preset: str = typer.Option("faster", help="x264 preset of the videos."),
    tune: str = typer.Option("fastdecode", help="x264 tune of the videos; none: x264 default."),
    x264_params: str = typer.Option(
        "trellis=0", help="More x264 options, key=value:key=value; '' for none."
    ),
    n_segments: int | None = typer.Option(None, help="SLIC superpixels per clip."),
    config: Path | None = typer.Option(None, help="JSON ShardConfig; options given here win."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    # caps on one input (blendkit/limits.py): a source over a cap is skipped with the reason
    max_pixels: int | None = typer.Option(
        None,
        help=f"Skip videos whose frames (stored or resized) exceed this [{Limits.max_pixels}].",
    ),
    max_frames: int | None = typer.Option(
        None, help=f"Skip videos needing more packets demuxed for a clip [{Limits.max_frames}]."
    ),
) -> None:
    """Decode videos, cut clips, blend pairs and write WebDataset shards."""
    from blendkit.typed_config import ConfigError

    options = dict(
        source=str(source),
        out=out,
        engine=engine,
        ray_address=address,
        annotations=str(annotations) if annotations else None,
        split=split,
        blend=blend,
        pairing=pairing,
        num_samples=num_samples,
        samples_per_shard=samples_per_shard,
        workers=workers,
        seed=seed,
        frames=frames,
        fps=fps,
        short_side=short_side,
        crop=crop,
        audio_rate=audio_rate,
        crf=crf,
        mix_crf=mix_crf,
        preset=preset,
        tune=None if tune == "none" else tune,
        x264_params=x264_params,
    )
    sections = {"superpixels": {"n_segments": n_segments},
                "limits": {"max_pixels": max_pixels, "max_frames": max_frames}}  # fmt: skip
    try:
        cfg = _shard_config(ctx, config, options, sections)
        from blendkit.pipeline import make_shards  # after the config: its imports take seconds

        summary = make_shards(cfg, progress=not quiet, on_skip=_warn_skip)
    except (ConfigError, *USER_ERRORS) as e:
        fail(str(e))
    typer.echo(json.dumps(dataclasses.asdict(summary), indent=1))


def _shard_config(ctx: typer.Context, config: Path | None, options: dict, sections: dict):
    """The ShardConfig of the ``--config`` file, with the options given on the command line (and
    the section fields of ``sections`` that are not None) over it."""
    from blendkit.shard_config import ShardConfig
    from blendkit.typed_config import ConfigError, from_dict, read_json_object

    base = read_json_object(config) if config else {}
    for name, fields in sections.items():
        given = {k: v for k, v in fields.items() if v is not None}
        if given:
            section = base.setdefault(name, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{name}: expected a mapping, got {type(section).__name__}")
            section.update(given)
    given = {k: v for k, v in options.items() if k not in base or _given(ctx, k)}
    return from_dict(ShardConfig, {**base, **given})


@app.command("inspect")
def inspect_cmd(
    folder: str = typer.Argument(
        ..., help="A folder of shard-*.tar, or any shard spec: glob, list file, URL."
    ),
    verify: bool = typer.Option(
        False, help="Decode everything; check shapes and the blend identity."
    ),
    render: Path | None = typer.Option(None, help="Write a contact sheet PNG here."),
    samples: int = typer.Option(4, help="Samples on the contact sheet."),
    html: Path | None = typer.Option(None, help="Write a page of playable samples to this folder."),
    max_samples: int = typer.Option(8, help="Samples on the --html page."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    allow_pipe: bool = typer.Option(False, "--allow-pipe", help=ALLOW_PIPE_HELP),
) -> None:
    """Summarise (and optionally verify and render) a folder (or any spec) of shards."""
    from blendkit.inspect import format_summary, inspect_shards

    try:
        result = inspect_shards(
            folder,
            verify=verify,
            render=render,
            n_render=samples,
            html=html,
            max_samples=max_samples,
            allow_pipe=allow_pipe,
        )
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(json.dumps(result, indent=1) if as_json else format_summary(result))
    if verify and result["verify"]["failures"]:
        raise typer.Exit(1)


@app.command("demo-data")
def demo_data_cmd(
    folder: Path = typer.Argument(
        ..., help="Where to write the synthetic Kinetics-layout dataset."
    ),
    per_class: int = typer.Option(8, help="Training videos per class."),
    val_per_class: int = typer.Option(2, help="Validation videos per class."),
    seconds: float = typer.Option(4.0, help="Length of each video."),
    seed: int = typer.Option(0),
) -> None:
    """Write a small synthetic dataset in the exact Kinetics layout (CSV + per-label mp4)."""
    from blendkit.demo import DemoConfig, make_demo_data

    try:
        summary = make_demo_data(
            DemoConfig(
                folder=str(folder),
                per_class=per_class,
                val_per_class=val_per_class,
                seconds=seconds,
                seed=seed,
            )
        )
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(json.dumps(summary, indent=1))


if __name__ == "__main__":
    app()
