"""``blendkit-train``: parse options, call ``trainer.train.train``, print its summary.

    blendkit-train train --config tiny --shards shards/demo --run runs/tiny
    blendkit-train train --config paper --shards /data/train --model c3_internal \\
        model.n_outputs=4 optim.grad_accum=4 val_shards=/data/val
    torchrun --nproc-per-node 8 -m trainer.cli train --config paper --shards /data/train
    blendkit-train config --config tiny optim.lr=0.01      # print the resolved config
    blendkit-train record runs/old --shards shards/demo/train  # the record of an older run

Options are shorthands for config keys (``--shards`` is ``data.shards``, ``--run`` is
``run_dir``, ``--model`` is ``model_name``, ``--steps`` is ``optim.steps``, ``--allow-pipe`` is
``data.allow_pipe=true``); trailing ``key=value`` arguments override any key and win over the
shorthands. Bad input exits with code 2 and a one-line message.
"""

from __future__ import annotations

import json
import logging
import os

import typer

from blendkit.cli_support import USER_ERRORS, fail
from blendkit.format.layout import ALLOW_PIPE_HELP
from trainer.config import ConfigError, TrainConfig, load_config, to_dict
from trainer.models.registry import MODEL_NAMES

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])


def _resolve(
    config: str,
    shards: str | None,
    run: str | None,
    model: str | None,
    steps: int | None,
    overrides: list[str] | None,
    allow_pipe: bool = False,
) -> TrainConfig:
    shorthands = {"data.shards": shards, "run_dir": run, "model_name": model, "optim.steps": steps}
    shorthands["data.allow_pipe"] = "true" if allow_pipe else None
    items = [f"{k}={v}" for k, v in shorthands.items() if v is not None]
    return load_config(config, items + list(overrides or []), notice=_warn)


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


CONFIG = typer.Option("tiny", "--config", "-c", help="preset (tiny, paper) or a JSON file")
SHARDS = typer.Option(None, "--shards", help="training shards: directory, brace pattern or list")
RUN = typer.Option(None, "--run", help="run directory (rerun the same one to resume)")
MODEL = typer.Option(None, "--model", help=f"one of {', '.join(MODEL_NAMES)}")
STEPS = typer.Option(
    None, "--steps", help="optimiser steps in total (for optim.schedule_blends blends: tiny's 512)"
)
OVERRIDES = typer.Argument(None, help="key=value overrides, e.g. optim.lr=0.1 model.n_outputs=2")
ALLOW_PIPE = typer.Option(False, "--allow-pipe", help=f"{ALLOW_PIPE_HELP} (data.allow_pipe)")


@app.command()
def train(
    config: str = CONFIG,
    shards: str = SHARDS,
    run: str = RUN,
    model: str = MODEL,
    steps: int = STEPS,
    overrides: list[str] = OVERRIDES,
    allow_pipe: bool = ALLOW_PIPE,
) -> None:
    """Train (or resume) a run and print its summary as JSON."""
    try:
        cfg = _resolve(config, shards, run, model, steps, overrides, allow_pipe)
        if not cfg.data.shards:
            raise ConfigError("no training shards: pass --shards or data.shards=...")
    except ConfigError as e:
        fail(str(e))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from trainer.checkpoint import CheckpointError  # heavy imports only when training
    from trainer.data.stats import StreamError
    from trainer.train import train as run_training

    try:
        summary = run_training(cfg)
    except (ConfigError, CheckpointError, OSError) as e:  # OSError: the run folder's, a file's
        fail(str(e))
    except StreamError as e:  # from a loader worker, its message ends with the original one
        fail(
            str(e).strip().splitlines()[-1].removeprefix(f"{StreamError.__module__}.StreamError: ")
        )
    if os.environ.get("RANK", "0") == "0":
        typer.echo(json.dumps(summary, indent=2))


@app.command("config")
def show_config(
    config: str = CONFIG,
    shards: str = SHARDS,
    run: str = RUN,
    model: str = MODEL,
    steps: int = STEPS,
    overrides: list[str] = OVERRIDES,
    allow_pipe: bool = ALLOW_PIPE,
) -> None:
    """Print the resolved config as JSON (what ``train`` would save as RUN/config.json)."""
    try:
        cfg = _resolve(config, shards, run, model, steps, overrides, allow_pipe)
    except ConfigError as e:
        fail(str(e))
    typer.echo(json.dumps(to_dict(cfg), indent=2))


@app.command()
def record(
    run: str = typer.Argument(..., help="run directory made before runs recorded their data"),
    shards: str = typer.Option(
        None, "--shards", help="its training shards [the run's data.shards]"
    ),
    allow_pipe: bool = typer.Option(False, "--allow-pipe", help=ALLOW_PIPE_HELP),
) -> None:
    """Write RUN/trained_on.json (clip geometry, subsampling) for a run made before records."""
    from trainer.run_record import record_run  # reads shards: heavy imports only here

    try:
        written = record_run(run, shards, allow_pipe)
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(json.dumps(written.to_dict(), indent=2))


if __name__ == "__main__":
    app()
