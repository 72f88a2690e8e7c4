"""Table 3: action recognition on pure, blended and decomposed videos (paper section 4.3).

Scoring rules of the paper, per validation sample with labels L1 (of V1) and L2 (of V2):

* **Pure** video: standard top-1 accuracy of the classifier on V1 and on V2 (both counted).
* **Transparent** blend: two predictions are scored 1, 0.5 or 0 when both, one or none of the
  two labels are predicted. On the blended video the two predictions are the classifier's top-2
  classes; for a decomposition model each of two outputs contributes its top-1. We score the
  best pairing of the two predictions with the two labels (so two outputs that both predict L1
  score 0.5, not 1). With n > 2 outputs, the two outputs are the ones the permutation invariant
  assignment (eq. 4) matches to V1 and V2 -- our choice, the paper used n = 2 for this table
  implicitly ("each of the two output videos").
* **Occlusion** blend: top-1 accuracy on L2 (V1 is a single superpixel, not recoverable). On the
  blended video the top-1 class; for a decomposition model the top-1 of the output matched to V2
  by the PIL assignment. The paper instead applies the classifier to "the relevant output", the
  slot in which a model consistently puts V2; the per-sample PIL match is the same slot whenever
  the model is consistent, and needs no extra pass to find the slot.

The classifier is any TorchScript file taking (B, 3, T, H, W) in [0, 1] and returning logits
(B, K); a label list JSON (a list of names, or an object mapping index strings to names) names
the K classes. Sample labels come from each sample's ``KEY.json`` (``v1.label``, ``v2.label``).
``train_tiny_classifier`` makes such a file from shards in a minute on a CPU (for tests and the
demo; it is not I3D).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blendkit.confine import inside
from blendkit.format.manifest import labels
from trainer.data import DataConfig
from trainer.data.device import prepare
from trainer.data.validation import validation_batches
from trainer.pixels import LOADER

log = logging.getLogger(__name__)

MODES = ("pure", "blended")  # then one "decomposed" row per run


# ----------------------------------------------------------------------------- scoring rules


def pair_score(pred_a: int, pred_b: int, label1: int, label2: int) -> float:
    """Transparent rule: 1, 0.5 or 0 for both, one or none of the labels predicted.

    The two predictions are paired with the two labels in the better of the two ways.
    """
    straight = int(pred_a == label1) + int(pred_b == label2)
    crossed = int(pred_a == label2) + int(pred_b == label1)
    return max(straight, crossed) / 2


def blended_transparent_score(logits: Tensor, label1: int, label2: int) -> float:
    """Classifier on the blended video: its top-2 classes are the two predictions. logits (K,)."""
    top = logits.topk(2).indices.tolist()
    return pair_score(top[0], top[1], label1, label2)


def decomposed_transparent_score(
    logits_a: Tensor, logits_b: Tensor, label1: int, label2: int
) -> float:
    """Classifier on two output videos: each contributes its top-1. logits (K,) each."""
    return pair_score(int(logits_a.argmax()), int(logits_b.argmax()), label1, label2)


def occlusion_score(logits: Tensor, label2: int) -> float:
    """Occlusion rule: top-1 of the (blended or V2-matched output) video is V2's label."""
    return float(int(logits.argmax()) == label2)


def top1_score(logits: Tensor, label: int) -> float:
    """Pure video: standard top-1."""
    return float(int(logits.argmax()) == label)


# ----------------------------------------------------------------------------- accumulation


@dataclass
class Table3:
    """Running sums of Table 3 scores: row -> blend -> [sum, count]."""

    sums: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    skipped: int = 0  # samples whose labels are not in the classifier's label list

    def add(self, row: str, blend: str, score: float) -> None:
        cell = self.sums.setdefault(row, {}).setdefault(blend, [0.0, 0])
        cell[0] += score
        cell[1] += 1

    def accuracy(self) -> dict[str, dict[str, float]]:
        """row -> blend -> accuracy in percent."""
        return {
            row: {b: 100.0 * s / n for b, (s, n) in cells.items() if n}
            for row, cells in self.sums.items()
        }

    def counts(self) -> dict[str, dict[str, int]]:
        return {row: {b: int(n) for b, (_, n) in cells.items()} for row, cells in self.sums.items()}


class Classifier:
    """A TorchScript video classifier with its label names."""

    def __init__(
        self, path: str | Path, labels: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such classifier file")
        labels_path = Path(labels) if labels is not None else label_path_for(path)
        if not labels_path.is_file():
            raise FileNotFoundError(f"{labels_path}: no such label list")
        try:
            self.module = torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as e:
            raise ValueError(f"{path}: not a TorchScript file ({str(e).splitlines()[0]})") from None
        self.labels = load_label_list(labels_path)
        self.index = {name: i for i, name in enumerate(self.labels)}
        self.device = torch.device(device)

    @torch.no_grad()
    def logits(self, video: Tensor) -> Tensor:
        """(B, 3, T, H, W) in [0, 1] -> (B, K) float logits on the CPU."""
        return self.module(video.to(self.device).float()).float().cpu()


def label_path_for(classifier: str | Path) -> Path:
    """Default label list next to a classifier: ``NAME.pt`` -> ``NAME.labels.json``."""
    return Path(classifier).with_suffix(".labels.json")


def load_label_list(path: str | Path) -> list[str]:
    """A JSON list of names, or an object {"0": name, ...} with indices 0..K-1."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict):
        try:
            items = sorted((int(k), str(v)) for k, v in data.items())
        except ValueError:
            raise ValueError(f"{path}: label object keys must be integer indices") from None
        if [i for i, _ in items] != list(range(len(items))):
            raise ValueError(f"{path}: label indices must be 0..{len(items) - 1}")
        return [v for _, v in items]
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return list(data)
    raise ValueError(f"{path}: expected a JSON list of label names or an index->name object")


def read_labels(shards: str | Path, allow_pipe: bool = False) -> dict[str, tuple[str, str]]:
    """Sample key -> (V1 label, V2 label): from the folder's ``manifest.parquet``, else from the
    ``KEY.json`` members of every shard (``blendkit.format.manifest.labels``)."""
    return labels(shards, allow_pipe=allow_pipe)


def score_batch(
    table: Table3,
    classifier: Classifier,
    labels: dict[str, tuple[str, str]],
    batch: dict,
    decomposed: dict[str, tuple[Tensor, Tensor]],
) -> None:
    """Add one batch's pure, blended and decomposed scores.

    decomposed: row name -> (outputs (B, n, 3, T, H, W), PIL assignment (B, 2)) per run.
    """
    keep = [i for i, k in enumerate(batch["key"]) if _indices(classifier, labels.get(k))]
    table.skipped += len(batch["key"]) - len(keep)
    if not keep:
        return
    idx = torch.tensor(keep)
    pure1, pure2 = classifier.logits(batch["v1"][idx]), classifier.logits(batch["v2"][idx])
    mixed = classifier.logits(batch["mix"][idx])
    outs = {}
    for row, (outputs, assignment) in decomposed.items():
        picked = outputs[idx].gather(
            1,
            assignment[idx]
            .to(outputs.device)
            .view(-1, 2, 1, 1, 1, 1)
            .expand(-1, -1, *outputs.shape[2:]),
        )  # (b, 2, 3, T, H, W): outputs matched to V1, V2
        outs[row] = (classifier.logits(picked[:, 0]), classifier.logits(picked[:, 1]))
    for j, i in enumerate(keep):
        blend = batch["blend"][i]
        l1, l2 = _indices(classifier, labels[batch["key"][i]])
        table.add("pure", blend, top1_score(pure1[j], l1))
        table.add("pure", blend, top1_score(pure2[j], l2))
        if blend == "transparent":
            table.add("blended", blend, blended_transparent_score(mixed[j], l1, l2))
        else:
            table.add("blended", blend, occlusion_score(mixed[j], l2))
        for row, (o1, o2) in outs.items():
            if blend == "transparent":
                table.add(row, blend, decomposed_transparent_score(o1[j], o2[j], l1, l2))
            else:
                table.add(row, blend, occlusion_score(o2[j], l2))


def _indices(classifier: Classifier, pair: tuple[str, str] | None) -> tuple[int, int] | None:
    if pair is None or pair[0] not in classifier.index or pair[1] not in classifier.index:
        return None
    return classifier.index[pair[0]], classifier.index[pair[1]]


# ----------------------------------------------------------------------------- tiny classifier


class TinyVideoClassifier(nn.Module):
    """A small 3D-conv classifier; any input size is first resized to 16x32x32."""

    def __init__(self, n_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, width, 3, stride=(1, 2, 2), padding=1),
            nn.BatchNorm3d(width),
            nn.ReLU(),
            nn.Conv3d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm3d(2 * width),
            nn.ReLU(),
            nn.Conv3d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
        )
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, video: Tensor) -> Tensor:
        x = F.interpolate(video * 2 - 1, size=[16, 32, 32], mode="trilinear")  # (B, 3, 16, 32, 32)
        return self.head(self.features(x).flatten(1))  # (B, K)


def _clips_and_labels(shards: str | Path, allow_pipe: bool) -> tuple[Tensor, list[str]]:
    """Every V1 and V2 clip of the shards, downsampled to 16x32x32, with its label name."""
    labels = read_labels(shards, allow_pipe)
    clips: list[Tensor] = []
    names: list[str] = []
    data = DataConfig(shards=str(shards), allow_pipe=allow_pipe)
    for raw in validation_batches(data, shards, batch_size=8):
        cpu = torch.device("cpu")
        batch = prepare(raw, cpu, pixel_pool=1, pixel_range=LOADER, channels_last=False)  # [0, 1]
        for which, column in (("v1", 0), ("v2", 1)):
            small = F.interpolate(batch[which], size=[16, 32, 32], mode="trilinear")
            for i, key in enumerate(batch["key"]):
                if key in labels:
                    clips.append(small[i])
                    names.append(labels[key][column])
    if not clips:
        raise ValueError(f"{shards}: no sample with v1/v2 labels in its json")
    return torch.stack(clips), names


def train_tiny_classifier(
    shards: str | Path,
    out_path: str | Path,
    *,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    allow_pipe: bool = False,
) -> dict:
    """Train ``TinyVideoClassifier`` on the V1/V2 clips and labels of ``shards``.

    Writes the TorchScript model to ``out_path`` and the label list (sorted names) to
    ``NAME.labels.json`` next to it, both inside ``out_path``'s folder. ``allow_pipe``:
    ``shards`` may run ``pipe:`` commands. Returns {path, labels, samples, steps,
    train_accuracy}.
    """
    out = Path(out_path)
    if out.is_dir():
        raise ValueError(f"{out}: a folder; the classifier is written as a file (NAME.pt)")
    torch.manual_seed(seed)
    clips, names = _clips_and_labels(shards, allow_pipe)
    label_list = sorted(set(names))
    target = torch.tensor([label_list.index(n) for n in names])
    model = TinyVideoClassifier(len(label_list))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = random.Random(seed)
    model.train()
    for _ in range(steps):
        pick = torch.tensor(rng.sample(range(len(clips)), min(batch_size, len(clips))))
        loss = F.cross_entropy(model(clips[pick]), target[pick])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(clips).argmax(1) == target).float().mean())
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(inside(out.parent, out.name)))
    inside(out.parent, label_path_for(out).name).write_text(json.dumps(label_list, indent=1) + "\n")
    log.info(
        "tiny classifier: %d clips, %d classes, train accuracy %.3f",
        len(clips),
        len(label_list),
        acc,
    )
    return {
        "path": str(out),
        "labels": str(label_path_for(out)),
        "classes": len(label_list),
        "samples": len(clips),
        "steps": steps,
        "train_accuracy": acc,
    }
