"""Atomic training checkpoints and random-number-generator state capture.

A checkpoint is one ``torch.save`` file ``RUN/checkpoints/step-%09d.pt`` holding a plain dict
(what goes in it is the trainer's business: model, optimizer, scheduler, step, RNG states, data
stream position, config). ``save`` writes to a temporary file in the same directory and
``os.replace``s it into place, so a crash never leaves a truncated checkpoint under the final
name and ``latest`` only ever sees complete files.

RNG states are stored as tensors and plain Python values so that the file loads with
``torch.load(weights_only=True)``.

A checkpoint is data, never code: ``load`` reads with ``weights_only=True``, which refuses any
pickled object other than tensors and plain values (a file that would run code on load), and
turns that refusal, a truncated or corrupt file, or one that holds no dict into one
``CheckpointError`` naming the file. ``newest_loadable`` is what a resume reads: the newest
checkpoint that loads, each newer one that does not logged and skipped (never deleted).
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d{9})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names it and says why, in one line."""


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``RUN/checkpoints/step-000000123.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:09d}.pt"


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (temp file in the same directory, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save`` (tensors and plain values only); anything else is a
    ``CheckpointError`` naming the file (module docstring).

    Tensors go to ``map_location``, except the RNG states made by ``rng_state``: they stay on
    the CPU, where ``set_rng_state`` needs them (a CUDA resume would otherwise fail on
    ``.numpy()``).
    """
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load fails in many types (pickle, zip, EOF, OS, ...)
        raise CheckpointError(f"{path}: not a loadable checkpoint ({_reason(e)})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(payload).__name__})")
    if torch.device(map_location).type == "cpu":
        return payload
    return _to_device(payload, torch.device(map_location))


_RNG_KEYS = frozenset({"python", "numpy", "torch"})  # what ``rng_state`` always writes


def _to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor moved to ``device``, RNG-state dicts left where they are."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        if _RNG_KEYS <= obj.keys():
            return obj
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _reason(e: Exception) -> str:
    """One line saying why ``torch.load`` failed."""
    if isinstance(e, pickle.UnpicklingError):  # weights_only refused, or not a pickle at all
        why = [ln for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        detail = f": {why[0].strip()}" if why else ""
        return f"holds more than tensors and plain values, refused unread{detail}"
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    if isinstance(e, EOFError):
        return "the file ends early"
    text = str(e).strip().split(". ")[0].splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def newest_loadable(
    run_dir: str | Path,
    map_location: str | torch.device = "cpu",
    check: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """(path, payload) of the newest checkpoint of a run that loads and passes ``check`` (which
    raises ``CheckpointError``); newer ones that do not are skipped, each logged as a warning.
    None when the run has no checkpoint; ``CheckpointError`` when it has some and none loads."""
    found = checkpoints(run_dir)
    problems = []
    for _, path in reversed(found):
        try:
            payload = load(path, map_location)
            if check is not None:
                check(payload)
        except CheckpointError as e:
            problems.append(str(e) if str(e).startswith(f"{path}:") else f"{path}: {e}")
            continue
        for problem in problems:
            log.warning("skipped %s", problem)
        if problems:
            log.warning("resuming from %s, the newest checkpoint that loads", path)
        return path, payload
    if problems:
        raise CheckpointError(
            f"{Path(run_dir) / CHECKPOINT_DIR}: none of its {len(found)} checkpoints loads "
            f"({problems[0]}); move the folder away to start the run over"
        )
    return None


def checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """All complete checkpoints of a run as (step, path), oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, or None when the run has none."""
    found = checkpoints(run_dir)
    return found[-1][1] if found else None


def prune(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; returns the deleted paths."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    old = [p for _, p in checkpoints(run_dir)[:-keep]]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (when present) current CUDA device generator states."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators captured by ``rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
