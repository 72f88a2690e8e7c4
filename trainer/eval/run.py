"""Load a trained run and stream its fixed validation set.

A run directory is what ``trainer.train.train`` writes: ``RUN/config.json`` (the resolved
``TrainConfig``) and ``RUN/checkpoints/step-%09d.pt`` (a dict with ``model``, ``step``, ...).
``load_run`` rebuilds the model with ``build_model(cfg.model_name, cfg.model)`` and loads the
newest checkpoint's weights; it is the small adapter the trainer does not export itself.

Validation mixtures are fixed (paper Tables 1-2 compare models on one validation set): shards
are read once in sorted order (``resampled=False``), without shuffle or remix, with one reader
(``workers=0``) so the sample order is the shard order, and ``max_samples`` keeps the first N.

Clip geometry (frames, fps, size, audio rate) is what the run was trained on: ``load_run`` reads
it from the run's record (``RUN/trained_on.json``, ``trainer.run_record``) and refuses a run
without one; the training shards are never opened.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from blendkit.format import Geometry
from trainer import checkpoint as ckpt
from trainer.config import ConfigError, TrainConfig, load_config
from trainer.data import list_shards
from trainer.data.device import prepare
from trainer.data.validation import validation_batches
from trainer.models import build_model
from trainer.run_record import TrainedOn, read_record


@dataclass
class LoadedRun:
    """A run's model (in eval mode on ``device``) and where it came from."""

    path: Path
    cfg: TrainConfig
    record: TrainedOn  # what it was trained on: the clip geometry, the subsampling
    model: nn.Module
    step: int
    checkpoint: Path
    device: torch.device

    @property
    def kind(self) -> str:
        return self.cfg.model_name

    @property
    def name(self) -> str:
        return f"{self.path.name} ({self.kind})"


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` takes CUDA when available."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The newest checkpoint of ``run_dir`` as a model in eval mode.

    Raises ``FileNotFoundError`` when the directory or its ``config.json`` is missing and
    ``ValueError`` when the run has no checkpoint, its config/weights do not load, or it has no
    record of its clip geometry (``trainer.run_record.read_record``: a run from before records).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run}: not a run directory (no config.json)")
    try:
        cfg = load_config(str(config_path))
    except ConfigError as e:
        raise ValueError(f"{config_path}: {e}") from None
    path = ckpt.latest(run)
    if path is None:
        raise ValueError(f"{run}: run has no checkpoint in {run / ckpt.CHECKPOINT_DIR}")
    record = read_record(run)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    state = ckpt.load(path, map_location="cpu")
    model = build_model(cfg.model_name, cfg.model)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{path}: weights do not fit {cfg.model_name}: {first}") from None
    model.to(dev).eval()
    return LoadedRun(run, cfg, record, model, int(state.get("step", 0)), path, dev)


# ----------------------------------------------------------------------------- evaluation pass
# Figure 10's offsets of the control audio: 0 to 2.56 s (one 64-frame clip at 25 fps).
DEFAULT_OFFSETS_S: tuple[float, ...] = (0.0, 0.32, 0.64, 0.96, 1.28, 1.6, 1.92, 2.24, 2.56)
CONTROLS = {"c3_det": "deterministic", "c3_internal": "internal"}
CHANCE_SEED = 0  # generator of the random output choice that gives uncontrolled models chance


@dataclass
class Example:
    """One validation sample kept for the figures: a representative (middle) frame of each video.

    Frames are (3, H, W) float in [0, 1]; ``terms`` holds each beta_ij * L_j of the composition
    module (n, m, 3, H, W), None for models without one.
    """

    key: str
    blend: str
    mix: Tensor
    v1: Tensor
    v2: Tensor
    outputs: Tensor  # (n, 3, H, W)
    assignment: list[int]  # output slots matched to V1, V2 by the PIL
    terms: Tensor | None = None
    chosen: int | None = None  # audio-chosen slot (C3)
    correct: bool | None = None


@dataclass
class RunResult:
    """Everything one run's evaluation pass produced."""

    run: LoadedRun
    metrics: dict[str, Any]
    examples: list[Example]
    videos: list[dict[str, Any]]  # {"key", "blend", "mix", "v1", "v2", "outputs"} uint8 (T,H,W,3)
    table3: Any = None  # downstream.Table3 when a classifier was given


def control_kind(model_name: str) -> str:
    """none | deterministic | internal."""
    return CONTROLS.get(model_name, "none")


def shift_frames(offset_s: float, audio_rate: int, hop_length: int) -> int:
    """Log-mel frames spanned by ``offset_s`` seconds of audio (one frame per hop)."""
    return round(offset_s * audio_rate / hop_length)


def roll_audio(a1: Tensor, offset_s: float, audio_rate: int, hop_length: int) -> Tensor:
    """Figure 10's shifted control signal: ``a1`` (B, 1, n_mels, frames) rolled circularly in
    time by ``shift_frames(offset_s)`` frames, so log-mel frame f moves to f + shift (mod frames).

    The shards store only the clip's own audio window, so a shift is a circular roll: audio that
    leaves the end of the clip comes back at its start. Content is kept (what the paper's test
    of semantic vs. synchronisation cues needs) but, unlike the paper's shift of the audio
    window along the source video, an offset of one clip length (2.56 s) wraps back to
    (almost: frames = samples/hop + 1) the unshifted audio; the largest misalignment is at half
    a clip.
    """
    return torch.roll(a1, shifts=shift_frames(offset_s, audio_rate, hop_length), dims=-1)


def _chosen(kind: str, scores: Tensor | None, n: int, batch: int, gen: torch.Generator) -> Tensor:
    from trainer.metrics import chosen_output

    if kind == "none":  # C2: a uniformly random slot is what "chance" means
        return torch.randint(n, (batch,), generator=gen)
    return chosen_output(
        kind, scores.float().cpu() if scores is not None else None, batch_size=batch
    )


def _terms(out: Any) -> Tensor | None:
    """beta_ij * L_j for every output i and layer j: (B, n, m, 3, T, H, W), or None."""
    if out.layers is None or out.beta is None:
        return None
    beta = out.beta
    if beta.dim() == 3:  # scalar mode (B, n, m)
        beta = beta[..., None, None, None]
    return beta.unsqueeze(3) * out.layers.unsqueeze(1)  # (B, n, m, 3, T, H, W)


def _uint8(video: Tensor) -> Any:
    """(3, T, H, W) float [0, 1] -> (T, H, W, 3) uint8 numpy."""
    return (video.clamp(0, 1) * 255).round().byte().permute(1, 2, 3, 0).cpu().numpy()


def evaluate_run(
    loaded: LoadedRun,
    batches: Iterable[dict[str, Any]],
    offsets_s: tuple[float, ...] = DEFAULT_OFFSETS_S,
    n_examples: int = 3,
    n_videos: int = 2,
    classifier: Any = None,
    labels: dict[str, tuple[str, str]] | None = None,
) -> RunResult:
    """One pass over ``batches``: per-sample PIL loss, identity baseline, control, Fig. 10."""
    from trainer.eval.downstream import Table3, score_batch
    from trainer.losses import PITLoss, deterministic_loss, pairwise_loss
    from trainer.metrics import control_correct, identity_loss
    from trainer.models import count_parameters
    from trainer.objective import model_inputs

    model, kind, dev = loaded.model, loaded.kind, loaded.device
    control = control_kind(kind)
    controlled = control != "none"
    hop = loaded.cfg.data.hop_length
    audio_rate = loaded.record.geometry.audio_rate
    gen = torch.Generator().manual_seed(CHANCE_SEED)
    pit = PITLoss(pairwise_loss)
    rows: list[dict[str, Any]] = []
    shifted: list[list[bool]] = []  # per offset, control correctness of the audio samples
    examples: list[Example] = []
    videos: list[dict[str, Any]] = []
    table3 = Table3() if classifier is not None else None
    per_blend: dict[str, int] = {}
    with torch.no_grad():
        for raw in batches:
            batch = prepare(raw, dev, pixel_pool=loaded.cfg.pixel_pool, channels_last=False)
            video, audio = model_inputs(kind, batch)
            out = model(video, audio)
            outputs = out.outputs.float()  # (B, n, 3, T, H, W)
            targets = torch.stack([batch["v1"], batch["v2"]], dim=1)  # (B, 2, 3, T, H, W)
            match = pit.match(outputs, targets)
            ident = identity_loss(batch["mix"], batch["v1"], batch["v2"], outputs.shape[1])
            b, n = outputs.shape[:2]
            to_v1 = match.cost[:, :, 0]  # (B, n) l(V1, O_i)
            chosen = _chosen(control, out.scores, n, b, gen).to(dev)
            correct = control_correct(to_v1, chosen)
            has_audio = batch["has_a1"].bool()
            det = None
            if kind == "c3_det":
                det = torch.stack(
                    [
                        deterministic_loss(
                            outputs[i : i + 1], batch["v1"][i : i + 1], batch["v2"][i : i + 1]
                        )
                        for i in range(b)
                    ]
                )
            for i in range(b):
                rows.append(
                    {
                        "key": batch["key"][i],
                        "blend": batch["blend"][i],
                        "loss": float(match.losses[i]),
                        "identity": float(ident[i]),
                        "control_correct": bool(correct[i]) if bool(has_audio[i]) else None,
                        "chosen": int(chosen[i]),
                        "assignment": match.assignment[i].tolist(),
                        **({"deterministic_loss": float(det[i])} if det is not None else {}),
                    }
                )
            if controlled:
                shifted.append(
                    _shifted_correct(loaded, batch, offsets_s, audio_rate, hop, has_audio)
                )
            terms = _terms(out)
            t_mid = outputs.shape[3] // 2
            for i in range(b):
                blend = batch["blend"][i]
                if per_blend.get(blend, 0) < n_examples:
                    per_blend[blend] = per_blend.get(blend, 0) + 1
                    examples.append(
                        Example(
                            key=batch["key"][i],
                            blend=blend,
                            mix=batch["mix"][i, :, t_mid].float().cpu(),
                            v1=batch["v1"][i, :, t_mid].float().cpu(),
                            v2=batch["v2"][i, :, t_mid].float().cpu(),
                            outputs=outputs[i, :, :, t_mid].cpu(),
                            assignment=match.assignment[i].tolist(),
                            terms=None if terms is None else terms[i, :, :, :, t_mid].float().cpu(),
                            chosen=int(chosen[i]) if controlled else None,
                            correct=(
                                bool(correct[i]) if controlled and bool(has_audio[i]) else None
                            ),
                        )
                    )
                if len(videos) < n_videos:
                    videos.append(
                        {
                            "key": batch["key"][i],
                            "blend": blend,
                            "mix": _uint8(batch["mix"][i]),
                            "v1": _uint8(batch["v1"][i]),
                            "v2": _uint8(batch["v2"][i]),
                            "outputs": [_uint8(o) for o in outputs[i]],
                        }
                    )
            if table3 is not None:
                cpu = {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in batch.items()}
                decomposed = {loaded.name: (outputs.cpu(), match.assignment.cpu())}
                score_batch(table3, classifier, labels or {}, cpu, decomposed)
    if not rows:
        raise ValueError("the validation shards gave no sample")
    metrics = _summarise(loaded, rows, shifted, offsets_s, audio_rate, hop, count_parameters(model))
    if table3 is not None:
        metrics["table3"] = {
            "accuracy": table3.accuracy(),
            "counts": table3.counts(),
            "skipped": table3.skipped,
        }
    return RunResult(loaded, metrics, examples, videos, table3)


def _shifted_correct(
    loaded: LoadedRun,
    batch: dict[str, Any],
    offsets_s: tuple[float, ...],
    audio_rate: int,
    hop: int,
    has_audio: Tensor,
) -> list[list[bool | None]]:
    """Control correctness at each offset of the control audio: (offsets) x (B) bool/None."""
    from trainer.losses import pairwise_loss
    from trainer.metrics import chosen_output, control_correct

    control = control_kind(loaded.kind)
    result = []
    for offset in offsets_s:
        a1 = roll_audio(batch["a1"], offset, audio_rate, hop)
        out = loaded.model(batch["mix"], a1)
        to_v1 = pairwise_loss(out.outputs.float(), batch["v1"].unsqueeze(1)).squeeze(2)  # (B, n)
        scores = out.scores.float() if out.scores is not None else None
        chosen = chosen_output(control, scores, batch_size=to_v1.shape[0]).to(to_v1.device)
        correct = control_correct(to_v1, chosen)
        result.append(
            [bool(c) if bool(h) else None for c, h in zip(correct, has_audio, strict=True)]
        )
    return result


def _by_blend(rows: list[dict[str, Any]], field: str) -> dict[str, float]:
    """Mean of ``field`` per blend kind and over all samples (None values skipped)."""
    out: dict[str, float] = {}
    for blend in ("transparent", "occlusion", "all"):
        values = [
            float(r[field])
            for r in rows
            if r.get(field) is not None and (blend == "all" or r["blend"] == blend)
        ]
        if values:
            out[blend] = sum(values) / len(values)
    return out


def _count(rows: list[dict[str, Any]], field: str | None = None) -> dict[str, int]:
    out = {}
    for blend in ("transparent", "occlusion", "all"):
        n = sum(
            1
            for r in rows
            if (blend == "all" or r["blend"] == blend) and (field is None or r[field] is not None)
        )
        if n:
            out[blend] = n
    return out


def _summarise(
    loaded: LoadedRun,
    rows: list[dict[str, Any]],
    shifted: list[list[list[bool | None]]],
    offsets_s: tuple[float, ...],
    audio_rate: int,
    hop: int,
    params: int,
) -> dict[str, Any]:
    control = control_kind(loaded.kind)
    for r in rows:
        r["improvement"] = r["identity"] - r["loss"]
    metrics: dict[str, Any] = {
        "run": str(loaded.path),
        "name": loaded.name,
        "model": loaded.kind,
        "step": loaded.step,
        "checkpoint": str(loaded.checkpoint),
        "params": params,
        "samples": _count(rows),
        "loss": _by_blend(rows, "loss"),
        "identity_loss": _by_blend(rows, "identity"),
        "improvement": _by_blend(rows, "improvement"),
    }
    if loaded.kind == "c3_det":
        metrics["deterministic_loss"] = _by_blend(rows, "deterministic_loss")
    accuracy = {k: 100.0 * v for k, v in _by_blend(rows, "control_correct").items()}
    metrics["control_rule"] = {
        "none": "random output slot (chance: the model has no control)",
        "deterministic": "O_c = O_1",
        "internal": "O_c = O_argmin_i s_i",
    }[control]
    metrics["control_chance"] = control == "none"
    metrics["control_accuracy"] = accuracy  # percent, samples whose V1 has audio
    metrics["control_samples"] = _count(rows, "control_correct")
    if shifted:
        curves: dict[str, list[float | None]] = {}
        for j, _ in enumerate(offsets_s):
            flat = [
                {"blend": r["blend"], "c": c}
                for r, c in zip(rows, (c for batch in shifted for c in batch[j]), strict=True)
            ]
            acc = _by_blend(flat, "c")
            for blend in ("transparent", "occlusion", "all"):
                value = acc.get(blend)
                curves.setdefault(blend, []).append(None if value is None else 100.0 * value)
        metrics["fig10"] = {
            "offsets_s": list(offsets_s),
            "shift_frames": [shift_frames(o, audio_rate, hop) for o in offsets_s],
            "method": "circular roll of the log-mel of V1's audio (trainer.eval.run.roll_audio)",
            "control_accuracy": {k: v for k, v in curves.items() if any(x is not None for x in v)},
        }
    metrics["per_sample"] = rows
    return metrics


# ----------------------------------------------------------------------------- files


def write_figures(result: RunResult, dest: Path, fps: float) -> dict[str, str]:
    """Figures 5, 6, 7, 10 and example videos of one run into ``dest``; name -> path."""
    from trainer.eval import figures

    kind, name = result.run.kind, result.run.name
    paths: dict[str, Path] = {}
    if result.examples:
        paths["fig5"] = figures.figure5(result.examples, dest / "fig5.png", name)
    for blend in ("transparent", "occlusion"):
        ex = next((e for e in result.examples if e.blend == blend and e.terms is not None), None)
        if ex is not None:
            paths[f"fig6_{blend}"] = figures.figure6(ex, dest / f"fig6_{blend}.png", name)
    if control_kind(kind) != "none" and result.examples:
        paths["fig7"] = figures.figure7(result.examples, dest / "fig7.png", name)
    fig10 = result.metrics.get("fig10")
    if fig10:
        curves = {
            f"{name} {blend}": (fig10["offsets_s"], acc)
            for blend, acc in fig10["control_accuracy"].items()
        }
        paths["fig10"] = figures.figure10(curves, dest / "fig10.png")
    for video in result.videos:
        paths[f"video_{video['key']}"] = figures.write_video(
            video, dest / "videos" / f"{video['key']}_{video['blend']}.mp4", fps
        )
    return {k: str(v) for k, v in paths.items()}


def common_geometry(runs: list[LoadedRun]) -> Geometry:
    """The clip geometry every run was trained on (they share one validation set)."""
    geometries = {r.record.geometry for r in runs}
    if len(geometries) > 1:
        listed = "; ".join(f"{r.path}: {r.record.geometry}" for r in runs)
        raise ValueError(f"the runs were trained on different clip geometries ({listed})")
    return geometries.pop()


def _public(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "per_sample"}


def evaluate(
    runs: list[Path],
    shards: Path,
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
) -> dict[str, Any]:
    """Evaluate ``runs`` on the fixed validation set of ``shards``; write reports and figures.

    Where files go: with ``out`` None, each run's ``RUN/eval/`` gets its ``eval.json``, figures,
    videos and a ``report.md`` holding the side-by-side tables of all runs evaluated together.
    With ``out``, one run writes everything into ``out``; several runs write their files into
    ``out/<run dir name>/`` and the combined ``report.md`` and ``eval.json`` into ``out``.
    ``classifier`` (a TorchScript file; ``labels`` defaults to ``NAME.labels.json``) adds
    Table 3. Returns {"runs": [metrics without per-sample rows], "reports", "eval_json",
    "figures"}.
    """
    from trainer.eval import tables
    from trainer.eval.downstream import Classifier, read_labels

    if not runs:
        raise ValueError("no run to evaluate")
    shards = Path(shards)
    if not shards.exists():
        raise FileNotFoundError(f"{shards}: no such shard directory")
    list_shards(str(shards))  # raises FileNotFoundError when it holds no shard
    dev = resolve_device(device)
    loaded = [load_run(r, dev) for r in runs]  # fail on any bad run before the long pass
    geometry = common_geometry(loaded)
    clf = Classifier(classifier, labels, dev) if classifier is not None else None
    label_map = read_labels(shards) if clf is not None else None
    results = []
    for run in loaded:
        batches = validation_batches(run.cfg.data, shards, batch_size, max_samples)
        results.append(evaluate_run(run, batches, offsets_s, n_examples, n_videos, clf, label_map))

    if out is None:
        dests = [r.path / "eval" for r in loaded]
        report_dirs = dests
    elif len(loaded) == 1:
        dests = report_dirs = [Path(out)]
    else:
        dests = [Path(out) / r.path.name for r in loaded]
        report_dirs = [Path(out)]
    eval_paths, figure_paths = [], {}
    for result, dest in zip(results, dests, strict=True):
        dest.mkdir(parents=True, exist_ok=True)
        figure_paths[result.run.name] = write_figures(result, dest, geometry.fps)
        path = dest / "eval.json"
        path.write_text(
            json.dumps({**result.metrics, "figures": figure_paths[result.run.name]}, indent=1)
            + "\n"
        )
        eval_paths.append(path)
    metrics = [_public(r.metrics) for r in results]
    reports = []
    for folder in report_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        text = tables.report(metrics, figure_paths, folder, shards, geometry, max_samples)
        (folder / "report.md").write_text(text)
        reports.append(folder / "report.md")
    if out is not None and len(loaded) > 1:
        combined = Path(out) / "eval.json"
        combined.write_text(json.dumps({"runs": metrics}, indent=1) + "\n")
        eval_paths.append(combined)
    return {
        "runs": metrics,
        "reports": [str(p) for p in reports],
        "eval_json": [str(p) for p in eval_paths],
        "figures": figure_paths,
    }
