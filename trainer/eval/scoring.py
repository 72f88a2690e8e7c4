"""One run's evaluation pass over the fixed validation batches.

Per sample: the permutation invariant loss (eq. 4) and its assignment, the identity baseline
(both in the paper's unit, ``trainer.pixels``: computed in the run's pixel range and scaled),
the output chosen by the control rule of section 4.1 and whether it is correct (a uniformly
random slot for uncontrolled models: chance), and for C3 the same at every Figure 10 offset of
the control audio. A few samples are kept as examples for the figures and videos, and Table 3 is
scored when a classifier is given. ``trainer.eval.summary`` aggregates the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainer import pixels
from trainer.data.batch import Batch
from trainer.data.device import prepare
from trainer.eval.audio_shift import DEFAULT_OFFSETS_S, shifted_correct
from trainer.eval.downstream import Classifier, Table3, score_batch
from trainer.eval.runs import LoadedRun
from trainer.eval.summary import summarise
from trainer.eval.types import Example, ExampleClips, RunResult
from trainer.losses import PITLoss, deterministic_loss, pairwise_loss
from trainer.losses.pit import PITResult
from trainer.metrics import chosen_output, control_correct, identity_loss
from trainer.models import ModelOutput, count_parameters
from trainer.models.registry import DETERMINISTIC, NO_CONTROL
from trainer.objective import model_inputs

CHANCE_SEED = 0  # generator of the random output choice that gives uncontrolled models chance


@dataclass
class Scored:
    """A batch's model outputs and their scores."""

    out: ModelOutput
    outputs: Tensor  # (B, n, 3, T, H, W) float
    match: PITResult  # eq. 4: losses (B,), assignment (B, 2), cost (B, n, 2)
    identity: Tensor  # (B,) the identity baseline
    chosen: Tensor  # (B,) the slot the control rule picks
    correct: Tensor  # (B,) bool, the section 4.1 rule
    has_audio: Tensor  # (B,) bool: V1 has audio (control counted only then)
    deterministic: Tensor | None  # (B,) eq. 5 for deterministic control


@dataclass
class _Kept:
    """What the pass keeps besides the per-sample rows."""

    n_examples: int
    n_videos: int
    examples: list[Example] = field(default_factory=list)
    videos: list[dict[str, Any]] = field(default_factory=list)
    per_blend: dict[str, int] = field(default_factory=dict)
    seen: int = 0  # samples of the pass before this batch


def evaluate_run(
    loaded: LoadedRun,
    batches: Iterable[Batch],
    offsets_s: tuple[float, ...] = DEFAULT_OFFSETS_S,
    n_examples: int = 3,
    n_videos: int = 2,
    classifier: Classifier | None = None,
    labels: dict[str, tuple[str, str]] | None = None,
) -> RunResult:
    """One pass over ``batches``: per-sample PIL loss, identity baseline, control, Fig. 10."""
    controlled = loaded.control != NO_CONTROL
    hop = loaded.cfg.data.hop_length
    audio_rate = loaded.record.geometry.audio_rate
    gen = torch.Generator().manual_seed(CHANCE_SEED)
    pit = PITLoss(pairwise_loss)
    rows: list[dict[str, Any]] = []
    shifted: list[list[list[bool | None]]] = []  # per batch: per offset, per sample
    kept = _Kept(n_examples, n_videos)
    table3 = Table3() if classifier is not None else None
    with torch.no_grad():
        for raw in batches:
            batch = prepare(
                raw, loaded.device, pixel_pool=loaded.cfg.pixel_pool,
                pixel_range=loaded.pixel_range, channels_last=False,
            )  # fmt: skip
            scored = score(loaded, batch, pit, gen)
            rows += sample_rows(batch, scored, pixels.loss_scale(loaded.pixel_range))
            if controlled:
                shifted.append(
                    shifted_correct(
                        loaded.model, loaded.control, batch, offsets_s, audio_rate, hop,
                        scored.has_audio,
                    )
                )  # fmt: skip
            shown = _displayed(batch, loaded.pixel_range)
            _keep(kept, shown, scored, controlled, loaded.pixel_range, raw.get("a1_wave"))
            if table3 is not None:  # the classifier takes [0, 1]
                cpu = {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in shown.items()}
                outputs = pixels.to_display(scored.outputs, loaded.pixel_range).cpu()
                decomposed = {loaded.name: (outputs, scored.match.assignment.cpu())}
                score_batch(table3, classifier, labels or {}, cpu, decomposed)
    if not rows:
        raise ValueError("the validation shards gave no sample")
    params = count_parameters(loaded.model)
    metrics = summarise(loaded, rows, shifted, offsets_s, audio_rate, hop, params)
    if table3 is not None:
        metrics["table3"] = {
            "accuracy": table3.accuracy(),
            "counts": table3.counts(),
            "skipped": table3.skipped,
        }
    return RunResult(loaded, metrics, kept.examples, kept.videos, table3)


def score(loaded: LoadedRun, batch: Batch, pit: PITLoss, gen: torch.Generator) -> Scored:
    """The model's outputs on a prepared batch and their scores."""
    out = loaded.model(*model_inputs(loaded.kind, batch))
    outputs = out.outputs.float()  # (B, n, 3, T, H, W)
    targets = torch.stack([batch["v1"], batch["v2"]], dim=1)  # (B, 2, 3, T, H, W)
    match = pit.match(outputs, targets)
    identity = identity_loss(batch["mix"], batch["v1"], batch["v2"], outputs.shape[1])
    b, n = outputs.shape[:2]
    chosen = _chosen(loaded.control, out.scores, n, b, gen).to(loaded.device)
    correct = control_correct(match.cost[:, :, 0], chosen)  # cost[:, :, 0]: (B, n) l(V1, O_i)
    det = None
    if loaded.control == DETERMINISTIC:
        v1, v2 = batch["v1"], batch["v2"]
        det = torch.stack(
            [deterministic_loss(outputs[i : i + 1], v1[i : i + 1], v2[i : i + 1]) for i in range(b)]
        )
    has_audio = batch["has_a1"].bool()
    return Scored(out, outputs, match, identity, chosen, correct, has_audio, det)


def sample_rows(batch: Batch, s: Scored, loss_scale: float) -> list[dict[str, Any]]:
    """One row per sample: key, blend, loss, identity, control, assignment (eval.json); the
    losses times ``loss_scale`` (``pixels.loss_scale`` of the run's range: the paper's unit)."""
    rows = []
    for i in range(s.outputs.shape[0]):
        row = {
            "key": batch["key"][i],
            "blend": batch["blend"][i],
            "loss": float(s.match.losses[i]) * loss_scale,
            "identity": float(s.identity[i]) * loss_scale,
            "control_correct": bool(s.correct[i]) if bool(s.has_audio[i]) else None,
            "chosen": int(s.chosen[i]),
            "assignment": s.match.assignment[i].tolist(),
        }
        if s.deterministic is not None:
            row["deterministic_loss"] = float(s.deterministic[i]) * loss_scale
        rows.append(row)
    return rows


def _displayed(batch: Batch, pixel_range: str) -> Batch:
    """The batch with its videos back in [0, 1] (``pixels.to_display``), for figures."""
    videos = ("mix", "v1", "v2")
    return {k: pixels.to_display(v, pixel_range) if k in videos else v for k, v in batch.items()}


def _keep(
    kept: _Kept,
    batch: Batch,
    s: Scored,
    controlled: bool,
    pixel_range: str,
    audio: Tensor | None = None,
) -> None:
    """Keep the first ``n_examples`` samples of each blend kind (a middle frame for the figures,
    the whole clips for the HTML report) and the first ``n_videos``. ``batch`` is in [0, 1]
    (``_displayed``), the outputs are mapped there from ``pixel_range``; ``audio``: V1's
    waveforms (B, N) as the loader gave them, when it did."""
    terms = _terms(s.out, pixel_range)
    outputs = pixels.to_display(s.outputs, pixel_range)  # (B, n, 3, T, H, W) in [0, 1]
    t_mid = s.outputs.shape[3] // 2
    for i in range(s.outputs.shape[0]):
        blend = batch["blend"][i]
        if kept.per_blend.get(blend, 0) < kept.n_examples:
            kept.per_blend[blend] = kept.per_blend.get(blend, 0) + 1
            kept.examples.append(
                Example(
                    key=batch["key"][i],
                    blend=blend,
                    mix=batch["mix"][i, :, t_mid].float().cpu(),
                    v1=batch["v1"][i, :, t_mid].float().cpu(),
                    v2=batch["v2"][i, :, t_mid].float().cpu(),
                    outputs=outputs[i, :, :, t_mid].cpu(),
                    assignment=s.match.assignment[i].tolist(),
                    terms=None if terms is None else terms[i, :, :, :, t_mid].float().cpu(),
                    chosen=int(s.chosen[i]) if controlled else None,
                    correct=bool(s.correct[i]) if controlled and bool(s.has_audio[i]) else None,
                    index=kept.seen + i,
                    clips=_clips(batch, outputs, s.has_audio, terms, i, audio),
                )
            )
        if len(kept.videos) < kept.n_videos:
            kept.videos.append(
                {
                    "key": batch["key"][i],
                    "blend": blend,
                    "mix": _uint8(batch["mix"][i]),
                    "v1": _uint8(batch["v1"][i]),
                    "v2": _uint8(batch["v2"][i]),
                    "outputs": [_uint8(o) for o in outputs[i]],
                }
            )
    kept.seen += s.outputs.shape[0]


def _clips(
    batch: Batch,
    outputs: Tensor,
    has_a1: Tensor,
    terms: Tensor | None,
    i: int,
    audio: Tensor | None,
) -> ExampleClips:
    """Sample ``i``'s whole clips as displayable uint8 (``_uint8``; ``batch``, ``outputs`` and
    ``terms`` already in [0, 1]), and V1's sound."""
    has_audio = audio is not None and bool(has_a1[i])
    return ExampleClips(
        mix=_uint8(batch["mix"][i]),
        v1=_uint8(batch["v1"][i]),
        v2=_uint8(batch["v2"][i]),
        outputs=[_uint8(o) for o in outputs[i]],
        terms=None if terms is None else [[_uint8(t) for t in row] for row in terms[i]],
        audio=audio[i].float().cpu().numpy() if has_audio else None,
    )


def _chosen(
    control: str, scores: Tensor | None, n: int, batch: int, gen: torch.Generator
) -> Tensor:
    if control == NO_CONTROL:  # C2: a uniformly random slot is what "chance" means
        return torch.randint(n, (batch,), generator=gen)
    return chosen_output(
        control, scores.float().cpu() if scores is not None else None, batch_size=batch
    )


def _terms(out: ModelOutput, pixel_range: str) -> Tensor | None:
    """beta_ij * L_j for every output i and layer j, the layers in [0, 1] (so the terms of an
    output add up to it as displayed): (B, n, m, 3, T, H, W), or None."""
    if out.layers is None or out.beta is None:
        return None
    beta = out.beta
    if beta.dim() == 3:  # scalar mode (B, n, m)
        beta = beta[..., None, None, None]
    layers = pixels.to_display(out.layers, pixel_range)  # (B, m, 3, T, H, W)
    return beta.unsqueeze(3) * layers.unsqueeze(1)  # (B, n, m, 3, T, H, W)


def _uint8(video: Tensor) -> Any:
    """(3, T, H, W) float [0, 1] -> (T, H, W, 3) uint8 numpy."""
    return (video.clamp(0, 1) * 255).round().byte().permute(1, 2, 3, 0).cpu().numpy()
