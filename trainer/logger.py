"""What a training run reports: metrics.jsonl, val.jsonl, TensorBoard and the progress bar.

Every rank calls ``step`` and ``flush`` (the logged terms are averaged over ranks, one host sync
per log interval); only rank 0 writes files, TensorBoard events and the bar. Losses are reported
in the paper's unit (``trainer.pixels``: a run in [0, 1] reports twice what it computes,
``objective.in_paper_unit``); every jsonl line says so in its ``loss_unit`` field, TensorBoard
in a ``loss_unit`` text and the console in one log line at the start. TensorBoard gets the
same scalars as the jsonl files, and every ``video_every`` steps an image of
mix | V1 | V2 | O_1..O_n at a few frames (plus ``add_video`` when moviepy is installed).

The row of metrics.jsonl that closes a log interval also holds what was measured over the
interval (``INTERVAL_KEYS``): the identity baseline of that step's last micro-batch, samples/s,
MFU (``trainer.run_cost.Throughput``, when the device's peak is known) and, on CUDA, the peak
memory allocated during the interval (GiB, rank 0's).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from trainer import pixels
from trainer.data.batch import Batch
from trainer.distributed import Dist, mean_over_ranks
from trainer.models import ModelOutput
from trainer.objective import in_paper_unit
from trainer.run_cost import Throughput
from trainer.run_dir import RunDir

DEVICE_KEYS = ("samples_per_s", "mfu", "cuda_peak_gib")  # timings: they differ run to run
INTERVAL_KEYS = ("identity", *DEVICE_KEYS)

log = logging.getLogger(__name__)


def example_grid(batch: Batch, out: ModelOutput, pixel_range: str, frames: int = 4) -> Tensor:
    """Rows mix, V1, V2, O_1..O_n of the first sample at ``frames`` times, in [0, 1]:
    (3, rows*H, frames*W)."""
    rows = [batch["mix"][0], batch["v1"][0], batch["v2"][0], *out.outputs[0]]  # each (3, T, H, W)
    t = rows[0].shape[1]
    idx = torch.linspace(0, t - 1, min(frames, t)).round().long().tolist()
    strips = [torch.cat([r[:, i] for i in idx], dim=-1) for r in rows]  # (3, H, frames*W)
    grid = pixels.to_display(torch.cat(strips, dim=-2).detach().float(), pixel_range)
    return grid.clamp(0, 1).cpu()


def example_video(batch: Batch, out: ModelOutput, pixel_range: str) -> Tensor:
    """(1, T, 3, H, (3+n)*W) in [0, 1]: mix | V1 | V2 | O_1 .. O_n side by side."""
    cols = [batch["mix"][0], batch["v1"][0], batch["v2"][0], *out.outputs[0]]  # (3, T, H, W)
    video = torch.cat(cols, dim=-1).permute(1, 0, 2, 3)  # (T, 3, H, W')
    video = pixels.to_display(video.detach().float(), pixel_range)
    return video.clamp(0, 1).cpu().unsqueeze(0)


def synced_time(device: torch.device) -> float:
    """Wall time after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class TrainLogger:
    """The run's logs from optimiser step ``start_step`` on (a resume drops later lines);
    ``pixel_range`` is the range the run computes its losses in."""

    def __init__(
        self, run: RunDir, d: Dist, *, start_step: int, steps: int, batch: int, progress: bool,
        desc: str, pixel_range: str, throughput: Throughput | None = None,
    ) -> None:  # fmt: skip
        self.run, self.d, self.batch, self.throughput = run, d, batch, throughput
        self.pixel_range, self.loss_scale = pixel_range, pixels.loss_scale(pixel_range)
        self.start_step = start_step
        self.pending: list[tuple[int, float, dict[str, Tensor]]] = []
        self.t_log, self.step_log = time.perf_counter(), start_step
        self.t_first: float | None = None  # end of this call's first step: rates skip warm-up
        self.writer: Any = None
        if d.main:
            from torch.utils.tensorboard import SummaryWriter  # slow to import

            run.truncate_logs(start_step)
            self.writer = SummaryWriter(str(run.tb), purge_step=start_step)  # drop later events
            self.writer.add_text("loss_unit", pixels.unit_note(pixel_range), start_step)
            log.info("%s: %s", run.root, pixels.unit_note(pixel_range))
        self.bar = tqdm(
            total=steps, initial=start_step, disable=not (d.main and progress), desc=desc,
            dynamic_ncols=True,
        )  # fmt: skip

    def step(self, step: int, lr: float, terms: dict[str, Tensor]) -> None:
        """Record optimiser step ``step``'s terms (device tensors; written at ``flush``)."""
        self.bar.update(1)
        if self.t_first is None:
            self.t_first = synced_time(self.d.device)
        self.pending.append((step, lr, terms))

    def flush(self, step: int, identity: Tensor) -> float:
        """Write the pending steps, averaged over ranks, the interval's measures on the last
        row (``identity``: the baseline of the last micro-batch); returns the last step's loss."""
        names = list(self.pending[-1][2])
        values = torch.stack([torch.stack([t[n] for n in names]) for _, _, t in self.pending])
        values = torch.cat([values.flatten(), identity.reshape(1)])
        *flat, ident = mean_over_ranks(values, self.d).tolist()  # one host sync per interval
        rows = [flat[i : i + len(names)] for i in range(0, len(flat), len(names))]
        now = time.perf_counter()
        rate = (step - self.step_log) * self.batch / max(now - self.t_log, 1e-9)
        self.t_log, self.step_log = now, step
        reported = [in_paper_unit(dict(zip(names, r, strict=True)), self.loss_scale) for r in rows]
        interval = {"identity": ident * self.loss_scale, **self._device_measures(rate)}
        loss = reported[-1]["loss"]
        if self.d.main:
            with open(self.run.metrics, "a") as f:
                for (s, lr, _), terms in zip(self.pending, reported, strict=True):
                    record = {"step": s, "lr": lr, **terms, "loss_unit": pixels.LOSS_UNIT}
                    record |= interval if s == step else {}
                    f.write(json.dumps(record) + "\n")
            for name, value in reported[-1].items():
                self.writer.add_scalar(f"train/{name}", value, step)
            for name, value in interval.items():
                self.writer.add_scalar(f"train/{name}", value, step)
            self.writer.add_scalar("train/lr", self.pending[-1][1], step)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        self.pending.clear()
        return loss

    def _device_measures(self, rate: float) -> dict[str, float]:
        """samples/s, MFU (with a known peak) and the CUDA peak memory since the last call."""
        out = {"samples_per_s": rate}
        if self.throughput is not None:
            out["mfu"] = self.throughput.mfu(rate)
        if self.d.device.type == "cuda":
            out["cuda_peak_gib"] = torch.cuda.max_memory_allocated(self.d.device) / 2**30
            torch.cuda.reset_peak_memory_stats(self.d.device)
        return out

    def examples(self, step: int, batch: Batch, out: ModelOutput) -> None:
        """The example image (and video, with moviepy) of a batch and the model's outputs."""
        grid = example_grid(batch, out, self.pixel_range)
        self.writer.add_image("examples/mix_v1_v2_outputs", grid, step)
        if importlib.util.find_spec("moviepy") is not None:
            video = example_video(batch, out, self.pixel_range)
            self.writer.add_video("examples/video", video, step, fps=8)

    def validation(self, step: int, terms: dict[str, float]) -> dict[str, float]:
        """One validation's mean terms: TensorBoard and a line of val.jsonl; returns them as
        reported (losses in the paper's unit)."""
        reported = in_paper_unit(terms, self.loss_scale)
        for name, value in reported.items():
            self.writer.add_scalar(f"val/{name}", value, step)
        with open(self.run.val, "a") as f:
            record = {"step": step, **reported, "loss_unit": pixels.LOSS_UNIT}
            f.write(json.dumps(record) + "\n")
        return reported

    def samples_per_s(self, step: int) -> float | None:
        """Training rate of this call after its first step (None when it ran only one)."""
        timed = step - self.start_step - 1
        if timed <= 0 or self.t_first is None:
            return None
        return timed * self.batch / (synced_time(self.d.device) - self.t_first)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
