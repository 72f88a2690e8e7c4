"""``evaluate``: runs in, report files out (the orchestrator behind ``blendkit-eval eval``).

Load every run first (a bad one fails before the long pass), stream the fixed validation set
once per run (``trainer.data.validation``), run the evaluation pass (``trainer.eval.scoring``),
then write each run's ``eval.json`` and figures and the side-by-side ``report.md``.

Every file goes under the output folder (``blendkit.confine``): generated names, the run folders'
names made safe (and distinct) for their subfolders, each path checked before it is written.
The folders are made, and checked to be writable folders, before the long pass.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from blendkit.confine import inside, unique_names
from trainer.data import list_shards
from trainer.data.validation import validation_batches
from trainer.eval import tables
from trainer.eval.audio_shift import DEFAULT_OFFSETS_S
from trainer.eval.downstream import Classifier, read_labels
from trainer.eval.figures import write_figures
from trainer.eval.report_page import build_report_page, write_report_pages
from trainer.eval.runs import LoadedRun, common_geometry, load_run, resolve_device
from trainer.eval.scoring import evaluate_run
from trainer.eval.types import RunResult


def evaluate(
    runs: list[Path],
    shards: str | Path,
    out: Path | None = None,
    max_samples: int | None = None,
    *,
    offsets_s: tuple[float, ...] = DEFAULT_OFFSETS_S,
    classifier: Path | None = None,
    labels: Path | None = None,
    batch_size: int = 4,
    device: str = "auto",
    n_examples: int = 3,
    n_videos: int = 2,
    allow_pipe: bool = False,
) -> dict[str, Any]:
    """Evaluate ``runs`` on the fixed validation set of ``shards`` (any spec
    ``blendkit.format.list_shards`` takes: a folder, pattern, list file or fsspec URL); write
    reports, figures and ``report.html``.

    Where files go: with ``out`` None, each run's ``RUN/eval/`` gets its ``eval.json``, figures,
    videos and a ``report.md`` holding the side-by-side tables of all runs evaluated together.
    With ``out``, one run writes everything into ``out``; several runs write their files into
    ``out/<run dir name>/`` and the combined ``report.md`` and ``eval.json`` into ``out``.
    ``classifier`` (a TorchScript file; ``labels`` defaults to ``NAME.labels.json``) adds
    Table 3. ``allow_pipe``: a shard list may run ``pipe:`` commands. Returns {"runs": [metrics
    without per-sample rows], "reports", "pages" (each ``report.html``), "eval_json",
    "figures"}.
    """
    if not runs:
        raise ValueError("no run to evaluate")
    shards = str(shards)  # a folder, pattern, list or URL (s3://, gs://, file://, memory://)
    list_shards(shards, allow_pipe=allow_pipe)  # FileNotFoundError naming the spec: no shard
    dev = resolve_device(device)
    loaded = [load_run(r, dev) for r in runs]  # fail on any bad run before the long pass
    common_geometry(loaded)  # one validation set fits one clip geometry
    for folder in {*(f for fs in _destinations(loaded, out) for f in fs)}:
        _writable_folder(folder)
    clf = Classifier(classifier, labels, dev) if classifier is not None else None
    label_map = read_labels(shards, allow_pipe) if clf is not None else None
    results = []
    for run in loaded:
        data = dataclasses.replace(run.cfg.data, allow_pipe=allow_pipe)  # this command's opt-in
        batches = validation_batches(data, shards, batch_size, max_samples)
        results.append(evaluate_run(run, batches, offsets_s, n_examples, n_videos, clf, label_map))
    return write_files(results, shards, out, max_samples)


def _destinations(loaded: list[LoadedRun], out: Path | None) -> tuple[list[Path], list[Path]]:
    """(each run's folder, the folders that get the report) for ``evaluate``'s ``out``."""
    if out is None:
        dests = [r.path / "eval" for r in loaded]
        return dests, dests
    if len(loaded) == 1:
        return [Path(out)], [Path(out)]
    names = unique_names((r.path.resolve().name for r in loaded), "run")
    return [inside(out, name) for name in names], [Path(out)]


def _writable_folder(folder: Path) -> None:
    """Make ``folder``; ``ValueError`` naming it unless it is then a folder this user can write."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{folder}: not writable")


def write_files(
    results: list[RunResult], shards: str | Path, out: Path | None, max_samples: int | None
) -> dict[str, Any]:
    """Each run's figures and ``eval.json``, the report(s), and the combined ``eval.json``."""
    loaded = [r.run for r in results]
    geometry = common_geometry(loaded)
    dests, report_dirs = _destinations(loaded, out)
    eval_paths, figure_paths = [], {}
    for result, dest in zip(results, dests, strict=True):
        dest.mkdir(parents=True, exist_ok=True)
        fps = result.run.record.model_input.fps  # what the model saw: every stride-th frame
        figure_paths[result.run.name] = write_figures(result, dest, fps)
        path = inside(dest, "eval.json")
        videos = [{"key": v["key"], "blend": v["blend"]} for v in result.videos]  # video_1, ...
        metrics = {**result.metrics, "figures": figure_paths[result.run.name], "videos": videos}
        path.write_text(json.dumps(metrics, indent=1) + "\n")
        eval_paths.append(path)
    metrics = [_public(r.metrics) for r in results]
    reports = []
    for folder in report_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        text = tables.report(metrics, figure_paths, folder, shards, geometry, max_samples)
        inside(folder, "report.md").write_text(text)
        reports.append(folder / "report.md")
    page = build_report_page(results, metrics, figure_paths, shards, geometry, max_samples)
    pages = write_report_pages(page, report_dirs)  # report.html beside each report.md
    if out is not None and len(loaded) > 1:
        combined = inside(out, "eval.json")
        combined.write_text(json.dumps({"runs": metrics}, indent=1) + "\n")
        eval_paths.append(combined)
    return {
        "runs": metrics,
        "reports": [str(p) for p in reports],
        "pages": [str(p) for p in pages],
        "eval_json": [str(p) for p in eval_paths],
        "figures": figure_paths,
    }


def _public(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "per_sample"}
