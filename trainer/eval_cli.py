"""``blendkit-eval``: parse options, call ``trainer.eval``, print its summary.

    blendkit-eval eval runs/c2 runs/c3 --shards shards/demo/validate [--out DIR] [--max-samples N]
    blendkit-eval decompose runs/c3 video.mp4 --out layers/
    blendkit-eval classifier shards/demo/train --out runs/classifier.pt

Bad input (no such file, not a video, a run without a checkpoint, a corrupt checkpoint, an
output folder that is a file) exits with code 2 and a one-line ``error: ...`` message. Output
files go under ``--out`` only (``blendkit.confine``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from blendkit.cli_support import USER_ERRORS, fail
from blendkit.format.layout import ALLOW_PIPE_HELP

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])


def _offsets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"--offsets must be comma-separated seconds, got {text!r}")
    if not values or any(v < 0 for v in values):
        fail(f"--offsets must be non-negative seconds, got {text!r}")
    return values


@app.command("eval")
def eval_command(
    runs: list[Path] = typer.Argument(..., help="run directories (RUN/config.json, checkpoints)"),
    shards: Path = typer.Option(..., "--shards", help="validation shard directory"),
    out: Path = typer.Option(None, "--out", help="output folder (default: RUN/eval)"),
    max_samples: int = typer.Option(None, "--max-samples", help="first N validation samples"),
    offsets: str = typer.Option(
        "0,0.32,0.64,0.96,1.28,1.6,1.92,2.24,2.56", "--offsets", help="Figure 10 offsets (s)"
    ),
    classifier: Path = typer.Option(None, "--classifier", help="TorchScript video classifier"),
    labels: Path = typer.Option(
        None, "--labels", help="label list JSON (default NAME.labels.json)"
    ),
    batch_size: int = typer.Option(4, "--batch-size"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    allow_pipe: bool = typer.Option(False, "--allow-pipe", help=ALLOW_PIPE_HELP),
) -> None:
    """Tables 1-3 and Figures 5-7, 10 of the paper for one or several runs."""
    from trainer.eval.evaluation import evaluate

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = evaluate(
            runs,
            shards,
            out,
            max_samples,
            offsets_s=_offsets(offsets),
            classifier=classifier,
            labels=labels,
            batch_size=batch_size,
            device=device,
            allow_pipe=allow_pipe,
        )
    except USER_ERRORS as e:
        fail(str(e))
    for m in summary["runs"]:
        loss, ident = m["loss"], m["identity_loss"]
        acc = m.get("control_accuracy", {})
        line = f"{m['name']}: loss {json.dumps(loss)} identity {json.dumps(ident)}"
        if acc:
            line += f" control% {json.dumps(acc)}" + (" (chance)" if m["control_chance"] else "")
        typer.echo(line)
    for path in summary["reports"]:
        typer.echo(f"report: {path}")


@app.command()
def decompose(
    run: Path = typer.Argument(..., help="run directory"),
    video: Path = typer.Argument(..., help="any video file"),
    out: Path = typer.Option(..., "--out", help="folder for layer_*.mp4"),
    window: int | None = typer.Option(
        None, "--window", help="frames per window [the run's clip length: 64 / data.frame_stride]"
    ),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Write the n output layers of VIDEO as mp4s (and the audio-selected one for C3)."""
    from trainer.eval.decompose import decompose as run_decompose

    try:
        summary = run_decompose(run, video, out, window=window, device=device)
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(f"{summary['frames']} frames at {summary['fps']:g} fps -> {out}")
    control = summary["control"]
    if control is not None:
        if control["overall"] is None:
            typer.echo("no soundtrack: no output selected")
        else:
            typer.echo(f"audio selects layer_{control['overall'] + 1}.mp4")


@app.command()
def classifier(
    shards: Path = typer.Argument(..., help="shards whose json holds v1/v2 labels"),
    out: Path = typer.Option(..., "--out", help="TorchScript file to write (NAME.pt)"),
    steps: int = typer.Option(300, "--steps"),
    allow_pipe: bool = typer.Option(False, "--allow-pipe", help=ALLOW_PIPE_HELP),
) -> None:
    """Train the tiny 3D-conv TorchScript classifier used for Table 3 on demo data."""
    from trainer.eval.downstream import train_tiny_classifier

    try:
        summary = train_tiny_classifier(shards, out, steps=steps, allow_pipe=allow_pipe)
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(json.dumps(summary))


if __name__ == "__main__":
    app()
