"""``blendkit-eval``: parse options, call ``trainer.eval``, print its summary.

    blendkit-eval eval runs/c2 runs/c3 --shards shards/demo/validate [--out DIR] [--max-samples N]
    blendkit-eval decompose runs/c3 video.mp4 --out layers/
    blendkit-eval classifier shards/demo/train --out runs/classifier.pt
    blendkit-eval baseline shards/k600-val [--json]     # the identity baseline, no run needed

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
    shards: str = typer.Option(
        ..., "--shards", help="validation shards: folder, pattern, list or URL (s3://, gs://)"
    ),
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
    """Tables 1-3 and Figures 5-7, 10 of the paper for one or several runs (report.md), and
    report.html, whose examples play."""
    from trainer.eval.evaluation import evaluate
    from trainer.pixels import LOSS_UNIT

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
    typer.echo(f"loss unit: {LOSS_UNIT}")
    for m in summary["runs"]:
        loss, ident = m["loss"], m["identity_loss"]
        acc = m.get("control_accuracy", {})
        line = f"{m['name']}: loss {json.dumps(loss)} identity {json.dumps(ident)}"
        if acc:
            line += f" control% {json.dumps(acc)}" + (" (chance)" if m["control_chance"] else "")
        typer.echo(line)
    for path in summary["reports"]:
        typer.echo(f"report: {path}")
    for path in summary["pages"]:
        typer.echo(f"page: {path}")


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
    """Write the n output layers of VIDEO as mp4s and a page that plays them (decompose.html)."""
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
    typer.echo(f"page: {summary['page']}")


@app.command()
def baseline(
    shards: str = typer.Argument(..., help="shards: a folder, glob or brace pattern, list, URL"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    max_samples: int = typer.Option(None, "--max-samples", help="first N samples"),
    frame_stride: int = typer.Option(1, "--frame-stride", help="every k-th frame (tiny: 8)"),
    pixel_pool: int = typer.Option(1, "--pixel-pool", help="k x k pixels averaged (tiny: 4)"),
    stored_mix: bool = typer.Option(False, "--stored-mix", help="score the stored mix.mp4"),
    batch_size: int = typer.Option(8, "--batch-size"),
    allow_pipe: bool = typer.Option(False, "--allow-pipe", help=ALLOW_PIPE_HELP),
) -> None:
    """Identity baseline (outputs = copies of the mixture, Table 1) per blend kind, in the
    paper's unit, with no trained run: compare with 0.364 / 0.362 on Kinetics-600."""
    from trainer.eval.baseline import identity_baseline, markdown

    if min(frame_stride, pixel_pool, batch_size) < 1 or (
        max_samples is not None and max_samples < 1
    ):
        fail("--frame-stride, --pixel-pool, --batch-size and --max-samples must be at least 1")
    try:
        result = identity_baseline(
            shards, batch_size=batch_size, max_samples=max_samples, frame_stride=frame_stride,
            pixel_pool=pixel_pool, stored_mix=stored_mix, progress=not as_json,
            allow_pipe=allow_pipe,
        )  # fmt: skip
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(json.dumps(result.to_dict(), indent=1) if as_json else markdown(result))


@app.command()
def classifier(
    shards: str = typer.Argument(..., help="shards whose json holds v1/v2 labels (path or URL)"),
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
