"""The run folder: where a training run keeps everything, and the chores done on it.

Layout::

    RUN/config.json            the resolved TrainConfig (resume refuses other values, except
                               for the keys in ``trainer.config.RESUMABLE_KEYS``)
    RUN/metrics.jsonl          one line per optimiser step: step, lr, loss terms and the
                               identity baseline of the batch (Table 1), averaged over ranks,
                               in the paper's unit (``loss_unit``, ``trainer.pixels``)
    RUN/trained_on.json        what the run was trained on: clip geometry, subsampling, shard
                               format (``trainer.run_record``); also in every checkpoint
    RUN/val.jsonl              one line per validation: step and mean terms on the fixed set
    RUN/tb/                    TensorBoard (``trainer.logger``)
    RUN/checkpoints/step-%09d.pt   the newest ``keep_ckpts`` are kept (``trainer.checkpoint``)

On resume the log lines written after the checkpoint are dropped (``truncate_logs``), so the
continued run rewrites them.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer import checkpoint as ckpt
from trainer.config import RESUMABLE_KEYS, ConfigError, TrainConfig, diff, load_config, save_config
from trainer.run_record import RECORD_FILE, TrainedOn, write_record


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
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
        path.write_text("".join(f"{ln}\n" for ln in kept))
