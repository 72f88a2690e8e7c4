"""The run folder: where a training run keeps everything, and the chores done on it.

Layout::

    RUN/config.json            the resolved TrainConfig (resume refuses other values, except
                               for the keys in ``trainer.config.RESUMABLE_KEYS``)
    RUN/metrics.jsonl          one line per optimiser step: step, lr, loss terms averaged
                               over ranks, in the paper's unit (``loss_unit``,
                               ``trainer.pixels``); the line closing a log interval adds the
                               identity baseline of its batch (Table 1), samples/s, MFU, GPU
                               memory (``trainer.logger.INTERVAL_KEYS``)
    RUN/trained_on.json        what the run was trained on: clip geometry, subsampling, shard
                               format (``trainer.run_record``); also in every checkpoint
    RUN/val.jsonl              one line per validation: step and mean terms on the fixed set
    RUN/tb/                    TensorBoard (``trainer.logger``)
    RUN/checkpoints/step-%09d.pt   the newest ``keep_ckpts`` are kept (``trainer.checkpoint``)

On resume the log lines written after the checkpoint are dropped (``truncate_logs``), so the
continued run rewrites them; a torn last line (the process killed mid-write) is dropped too, and
any other line that is not a log record stops the resume in one line naming it (nothing of the
user's is deleted). A resume starts from the newest checkpoint that loads
(``checkpoint.newest_loadable``). The folder's own location is not part of the run's identity:
a run folder moved or copied elsewhere resumes there (``config.RESUMABLE_KEYS``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from trainer import checkpoint as ckpt
from trainer.config import RESUMABLE_KEYS, ConfigError, TrainConfig, diff, load_config, save_config
from trainer.run_record import RECORD_FILE, TrainedOn, write_record
from trainer.train_state import check_payload

log = logging.getLogger(__name__)


class RunDir:
    """Paths of one run folder and what the trainer does to them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def record(self) -> Path:
        return self.root / RECORD_FILE

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def val(self) -> Path:
        return self.root / "val.jsonl"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    def latest_checkpoint(self) -> Path | None:
        return ckpt.latest(self.root)

    def resume_point(self, device: torch.device) -> tuple[Path, dict[str, Any]] | None:
        """(path, payload) of the newest checkpoint that loads, or None for a new run;
        ``ConfigError`` when the run folder is not a folder."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"run_dir: {self.root} exists and is not a folder")
        return ckpt.newest_loadable(self.root, device, check_payload)

    def check_resumable(self, cfg: TrainConfig) -> None:
        """Refuse to resume the run with a config that differs beyond ``RESUMABLE_KEYS``."""
        if not self.config.is_file():
            return
        changed = [k for k in diff(load_config(str(self.config)), cfg) if k not in RESUMABLE_KEYS]
        if changed:
            raise ConfigError(
                f"{self.root} holds a run with a different config ({', '.join(changed)}); "
                "use another run dir or the same settings"
            )

    def start(self, cfg: TrainConfig, record: TrainedOn) -> None:
        """Create the folder and (re)write the resolved config and the run record."""
        self.root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.config)
        write_record(self.root, record)

    def truncate_logs(self, step: int) -> None:
        """Keep only the log lines written at or before ``step`` (the resumed checkpoint)."""
        for path in (self.metrics, self.val):
            _truncate_jsonl(path, step)


def _truncate_jsonl(path: Path, step: int) -> None:
    """Keep the records of ``path`` at or before ``step``; drop a torn last line."""
    if not path.is_file():
        return
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    steps = [_step(line) for line in lines]
    torn = bool(lines) and steps[-1] is None and not text.endswith("\n")
    if torn:
        log.warning("%s: dropping its torn last line (written when the run was killed)", path)
        lines, steps = lines[:-1], steps[:-1]
    records = list(zip(lines, steps, strict=True))
    bad = next((n for n, (ln, st) in enumerate(records, 1) if ln.strip() and st is None), 0)
    if bad:
        raise ConfigError(f"{path}:{bad}: not a log record of this run; move the file away")
    kept = [ln for ln, st in records if st is not None and st <= step]
    path.write_text("".join(f"{ln}\n" for ln in kept))


def _step(line: str) -> int | None:
    """The step of a jsonl log record, or None for a line that is not one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None
