"""What a run was trained on: ``RUN/trained_on.json`` (and a copy in every checkpoint).

Evaluation and ``decompose`` read the clip geometry from here and never open the training
shards, which may have moved or may live on another machine. The record holds:

* ``geometry``: the training clips as stored (``blendkit.format.Geometry``: frames, fps, height,
  width, audio rate), read from the first sample of the first training shard; ``None`` when it is
  unknown, and then ``geometry_source`` says why;
* ``geometry_source``: where the geometry came from (the shard it was read from, the caller that
  gave it with injected batches, or ``blendkit-train record``);
* ``frame_stride`` and ``pixel_pool``: how the clips were subsampled before the model saw them
  (``data.frame_stride`` in the loader, ``pixel_pool`` on the device), so ``model_input`` is what
  the model saw;
* ``shard_format``: the shard format version of the blendkit that read the shards
  (``SHARD_FORMAT``; None for injected batches);
* ``pixel_range``: the range of the videos the model took, gave and was scored on
  (``model.pixel_range``, ``trainer.pixels``). A record without it was written before the
  option existed, when [0, 1] was the only range: ``read_record`` reads it as [0, 1] and says
  so in one line (``pixels.LEGACY``).

A field is added by giving it a default, so older records still load. A run made before records
existed has none: ``read_record`` refuses it in one line naming the command that writes one,
``blendkit-train record RUN --shards TRAINING_SHARDS`` (``record_run``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from blendkit.format import SHARD_FORMAT, Geometry, read_geometry
from blendkit.typed_config import ConfigError, from_dict, one_of, to_dict
from blendkit.writer import write_atomic
from trainer import pixels
from trainer.config import TrainConfig, load_config
from trainer.data import list_shards
from trainer.models.i3d import input_problem

log = logging.getLogger(__name__)

RECORD_FILE = "trained_on.json"


@dataclass(frozen=True)
class TrainedOn:
    """The data a run was trained on (see the module docstring)."""

    geometry: Geometry | None
    geometry_source: str
    frame_stride: int
    pixel_pool: int
    shard_format: int | None
    pixel_range: str | None = None  # None: a record from before ranges, read as pixels.LEGACY

    def __post_init__(self) -> None:
        if self.pixel_range is not None:
            one_of(self, "pixel_range", pixels.PIXEL_RANGES)

    @property
    def range(self) -> str:
        """The run's pixel range (``pixels.LEGACY`` for a record that has none)."""
        return self.pixel_range or pixels.LEGACY

    @property
    def model_input(self) -> Geometry:
        """The clips as the model saw them: every ``frame_stride``-th frame (they still span the
        clip's time), ``pixel_pool`` x ``pixel_pool`` pixels averaged."""
        g = self.geometry
        if g is None:
            raise ValueError(f"the clip geometry is unknown ({self.geometry_source})")
        return Geometry(
            frames=math.ceil(g.frames / self.frame_stride),
            fps=g.fps / self.frame_stride,
            height=g.height // self.pixel_pool,
            width=g.width // self.pixel_pool,
            audio_rate=g.audio_rate,
        )

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainedOn:
        """Strict: unknown keys and wrong types raise ``ConfigError`` naming the key."""
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object, got {type(data).__name__}")
        return from_dict(cls, data)


def for_training(
    cfg: TrainConfig, *, injected: bool, geometry: Geometry | None = None
) -> TrainedOn:
    """The record of a training run: the geometry read from its shards, or, with batches
    injected by the caller, the geometry the caller gave (or none, said so)."""
    subsampled = _model_side(cfg)
    if not injected:
        if geometry is not None:
            raise ValueError("geometry is read from data.shards; give it only with batches")
        return _from_shards(cfg.data.shards, "", allow_pipe=cfg.data.allow_pipe, **subsampled)
    source = "given by the caller with injected batches"
    if geometry is None:
        source = "unknown: injected batches, and the caller gave no geometry"
    return TrainedOn(geometry, source, shard_format=None, **subsampled)


def _model_side(cfg: TrainConfig) -> dict[str, Any]:
    """What the model saw of the clips, from the run's config."""
    return {
        "frame_stride": cfg.data.frame_stride,
        "pixel_pool": cfg.pixel_pool,
        "pixel_range": cfg.model.pixel_range,
    }


def _from_shards(
    spec: str,
    by: str,
    *,
    frame_stride: int,
    pixel_pool: int,
    pixel_range: str,
    allow_pipe: bool,
) -> TrainedOn:
    """The geometry of the first shard of ``spec`` (unknown, with the reason, if unreadable)."""
    shards = list_shards(spec, allow_pipe=allow_pipe)
    if not shards:
        raise FileNotFoundError(f"{spec}: no shards")
    first = shards[0]
    try:
        geometry, source = read_geometry(first), f"read from {first}{by}"
    except ValueError as e:
        geometry, source = None, f"unknown: {e}"
        log.warning("the run record has no clip geometry: %s", e)
    return TrainedOn(geometry, source, frame_stride, pixel_pool, SHARD_FORMAT, pixel_range)


def check_model_input(record: TrainedOn) -> None:
    """``ConfigError`` when the clips of a record, as the model sees them (``model_input``), do
    not fit the encoder: caught before the first step, not by the first forward pass."""
    if record.geometry is None:
        return
    g = record.model_input
    problem = input_problem(g.frames, g.height, g.width)
    if problem:
        raise ConfigError(
            f"data.shards: clips of {record.geometry.frames}x{record.geometry.height}x"
            f"{record.geometry.width} reach the model as {g.frames}x{g.height}x{g.width} "
            f"(data.frame_stride={record.frame_stride}, pixel_pool={record.pixel_pool}): {problem}"
        )


def record_path(run: str | Path) -> Path:
    return Path(run) / RECORD_FILE


def write_record(run: str | Path, record: TrainedOn) -> Path:
    """Write ``RUN/trained_on.json`` atomically (a run killed meanwhile leaves the old one)."""
    path = record_path(run)
    write_atomic(path, (json.dumps(record.to_dict(), indent=1) + "\n").encode())
    return path


def read_record(run: str | Path) -> TrainedOn:
    """The record of ``run`` with a known geometry; anything else is a one-line ``ValueError``
    saying what to do."""
    path = record_path(run)
    fix = f"write one with: blendkit-train record {run} --shards TRAINING_SHARDS"
    if not path.is_file():
        raise ValueError(f"{run}: no {RECORD_FILE} (a run from before run records); {fix}")
    try:
        record = TrainedOn.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, ConfigError) as e:
        raise ValueError(f"{path}: not a run record ({e})") from None
    if record.geometry is None:
        raise ValueError(f"{path}: the clip geometry is {record.geometry_source}; {fix}")
    if record.pixel_range is None:
        log.warning(
            "%s: no pixel range (a run from before ranges were recorded, when [0, 1] was the "
            "only one): read as %s",
            path,
            pixels.LEGACY,
        )
    return record


def merged_record(run: str | Path, new: TrainedOn) -> TrainedOn:
    """The record to write when (re)starting ``run``: ``new``, or the saved one when ``new``
    knows no geometry. A resume on clips of another geometry is refused."""
    path = record_path(run)
    if not path.is_file():
        return new
    old = TrainedOn.from_dict(json.loads(path.read_text()))
    if old.geometry is not None and new.geometry is not None and old.geometry != new.geometry:
        raise ConfigError(
            f"data.shards: {run} was trained on clips of {old.geometry}, "
            f"the shards now hold {new.geometry}; use another run dir"
        )
    if new.geometry is not None:
        return new
    return replace(new, geometry=old.geometry, geometry_source=old.geometry_source)


def record_run(run: str | Path, shards: str | None = None, allow_pipe: bool = False) -> TrainedOn:
    """Write the record of a run made before records existed (``blendkit-train record``): the
    geometry of the first shard of ``shards`` (default: the run's own ``data.shards``) and the
    subsampling of the run's config. A run whose record knows its geometry is left alone.
    ``allow_pipe``: ``shards`` may run ``pipe:`` commands."""
    run = Path(run)
    config = run / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{run}: not a run directory (no config.json)")
    cfg = load_config(str(config))
    path = record_path(run)
    if path.is_file() and TrainedOn.from_dict(json.loads(path.read_text())).geometry is not None:
        raise ValueError(f"{path}: already records the clip geometry")
    spec = shards or cfg.data.shards
    if not spec:
        raise ValueError(f"{config}: data.shards is empty; pass --shards")
    by = " by blendkit-train record"
    record = _from_shards(spec, by, allow_pipe=allow_pipe, **_model_side(cfg))
    if record.geometry is None:
        raise ValueError(f"{spec}: {record.geometry_source}")
    write_record(run, record)
    return record
