"""Load a trained run: its config, its record of what it was trained on, its newest weights.

A run directory is what ``trainer.train.train`` writes (``trainer.run_dir``): ``RUN/config.json``
(the resolved ``TrainConfig``), ``RUN/trained_on.json`` (``trainer.run_record``) and
``RUN/checkpoints/step-%09d.pt`` (a dict with ``model``, ``step``, ...). ``load_run`` rebuilds
the model with ``build_model(cfg.model_name, cfg.model)`` and loads the newest checkpoint's
weights. The clip geometry and the pixel range come from the run's record, never from its
training shards; a run without a record is refused in one line, and one whose record and config
disagree on the range too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from blendkit.format import Geometry
from trainer import checkpoint as ckpt
from trainer.config import ConfigError, TrainConfig, load_config
from trainer.models import build_model
from trainer.models.registry import control_of
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
    def pixel_range(self) -> str:
        """The range its model takes and gives (``trainer.pixels``), as its record says."""
        return self.record.range

    @property
    def kind(self) -> str:
        return self.cfg.model_name

    @property
    def control(self) -> str:
        """Its control kind (``trainer.models.registry.CONTROLS``)."""
        return control_of(self.kind)

    @property
    def name(self) -> str:
        return f"{self.path.name} ({self.kind})"


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` takes CUDA when available; ``ValueError`` for a device this machine lacks."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"--device: {device!r} is not a device (auto, cpu, cuda, cuda:N)"
        ) from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device: {device!r} is not a device (auto, cpu, cuda, cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {device!r}, but this machine has no CUDA device")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device: {device!r}, but CUDA has {torch.cuda.device_count()} devices")
    return dev


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The newest checkpoint of ``run_dir`` as a model in eval mode.

    Raises ``FileNotFoundError`` when the directory or its ``config.json`` is missing and
    ``ValueError`` when the run has no checkpoint, its config/weights do not load, or it has no
    record of its clip geometry (``trainer.run_record.read_record``: a run from before records).
    """
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise ValueError(f"{run}: not a run directory (a file)")
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run}: not a run directory (no config.json)")
    try:
        cfg = load_config(str(config_path))
    except ConfigError as e:  # names the file
        raise ValueError(str(e)) from None
    path = ckpt.latest(run)
    if path is None:
        raise ValueError(f"{run}: run has no checkpoint in {run / ckpt.CHECKPOINT_DIR}")
    record = read_record(run)
    if record.range != cfg.model.pixel_range:
        raise ValueError(
            f"{run}: trained_on.json says pixels in {record.range}, config.json "
            f"{cfg.model.pixel_range}; the run folder was edited"
        )
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


def common_geometry(runs: list[LoadedRun]) -> Geometry:
    """The clip geometry every run was trained on (they share one validation set)."""
    geometries = {r.record.geometry for r in runs}
    if len(geometries) > 1:
        listed = "; ".join(f"{r.path}: {r.record.geometry}" for r in runs)
        raise ValueError(f"the runs were trained on different clip geometries ({listed})")
    return geometries.pop()
