"""Training step time of every model on the CPU, at the ``tiny`` config's geometry and width.

One step is forward, loss (the model's own objective) and backward plus an optimiser update, on
a synthetic batch of the shape the ``tiny`` trainer feeds (its subsampled clips). Median of
``repeats`` timed steps after one warm-up step. ``make bench`` calls :func:`step_times`.

    python -m bench.train [--repeats N --threads K --markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch

from trainer.config import tiny
from trainer.models import build_model, count_parameters, resolve_config
from trainer.models.registry import MODEL_NAMES, outputs_for
from trainer.objective import compute_loss, model_inputs


def synthetic_batch(batch: int, frames: int, size: int, n_mels: int, audio_frames: int) -> dict:
    """A batch with the trainer's keys; transparent blends of random clips."""
    g = torch.Generator().manual_seed(0)
    v1 = torch.rand(batch, 3, frames, size, size, generator=g)
    v2 = torch.rand(batch, 3, frames, size, size, generator=g)
    alpha = torch.full((batch, 1, frames, size, size), 0.5)
    audio = torch.randn(batch, 1, n_mels, audio_frames, generator=g)
    present = torch.ones(batch, dtype=torch.bool)
    return {
        "mix": alpha * v1 + (1 - alpha) * v2, "v1": v1, "v2": v2, "alpha": alpha,
        "a1": audio, "a2": audio.flip(-1), "has_a1": present, "has_a2": present,
    }  # fmt: skip


def step_times(repeats: int = 5, threads: int = 1) -> list[dict]:
    """Median seconds per training step for every model kind at the tiny geometry."""
    torch.set_num_threads(threads)
    cfg = tiny()
    frames, size = 64 // cfg.data.frame_stride, 128 // cfg.pixel_pool
    rows = []
    for kind in MODEL_NAMES:
        mcfg = dataclasses.replace(cfg.model, n_outputs=outputs_for(kind, cfg.model.n_outputs))
        model = build_model(kind, resolve_config(kind, mcfg))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
        batch = synthetic_batch(cfg.optim.batch, frames, size, mcfg.n_mels, 257)
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            video, audio = model_inputs(kind, batch)
            loss, _ = compute_loss(kind, batch, model(video, audio))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - t0)
        step = statistics.median(times)
        rows.append({"model": kind, "params": count_parameters(model), "step_s": step,
                     "samples_per_s": cfg.optim.batch / step})  # fmt: skip
    return rows


def markdown(rows: list[dict], threads: int = 1) -> str:
    cfg = tiny()
    lines = [
        "## Training step on the CPU (tiny config)",
        "",
        f"Width {cfg.model.width}, n = {cfg.model.n_outputs} (c3_det: 2), batch {cfg.optim.batch} "
        f"of {64 // cfg.data.frame_stride}x{128 // cfg.pixel_pool}x{128 // cfg.pixel_pool} clips, "
        f"Adam, {threads} torch thread; median of timed steps after a warm-up step.",
        "",
        "| model | params | s per step | samples/s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['step_s']:.3f} | "
              f"{r['samples_per_s']:.1f} |" for r in rows]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    rows = step_times(args.repeats, args.threads)
    print(markdown(rows, args.threads) if args.markdown else json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
