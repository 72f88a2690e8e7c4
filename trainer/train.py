"""The training loop: ``train(cfg) -> summary``, readable in one sitting.

Paper (section 4): SGD with momentum, 124k iterations, batch 128, learning rate 0.5 divided by
10 after 80k, 100k and 120k iterations. Our additions, all optional and off the paper's path:
bf16 autocast and channels_last_3d on CUDA, ``torch.compile``, gradient accumulation,
activation checkpointing of the encoder and decoder blocks, DDP.

A run records what it was trained on (``RUN/trained_on.json``, ``trainer.run_record``): the
clip geometry of its shards, the subsampling and the shard format, for evaluation to read.

Setup, then one loop whose phases are data, forward/backward, step, log, validate, checkpoint.
Each concern lives in a module of its own: the run folder (``trainer.run_dir``), distributed
setup (``trainer.distributed``), the model, optimiser and checkpoint payload
(``trainer.train_state``), the data stream (``trainer.data.stream``) and its device stage
(``trainer.data.device``), the objective (``trainer.objective``), validation
(``trainer.val_loss``) and logging (``trainer.logger``).

Resume: rerunning with the same RUN loads the latest checkpoint (model, optimizer, scheduler,
step, every rank's RNG states, micro-batches consumed) and continues the data stream where it
was, so the continued run is the one that was interrupted: on CPU the loss curve is bit-identical
(``tests/test_train.py``). Log lines after the checkpoint are dropped and rewritten.

Distributed: each rank streams its own shards; only rank 0 writes logs, TensorBoard and
checkpoints; logged terms are averaged over ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from blendkit.format import Geometry
from trainer import pixels, run_record, train_state
from trainer.config import ConfigError, TrainConfig, micro_batch, segment_batches
from trainer.data.batch import Batch
from trainer.data.device import prepare
from trainer.data.shards import check_enough_shards
from trainer.data.stream import check_shards, data_stream, next_batch
from trainer.data.validation import fixed_batches
from trainer.distributed import Dist, barrier, setup_distributed, teardown
from trainer.logger import TrainLogger
from trainer.models import ModelOutput
from trainer.objective import compute_loss, identity_term, model_inputs
from trainer.run_dir import RunDir
from trainer.run_record import TrainedOn
from trainer.val_loss import validation_loss

log = logging.getLogger(__name__)


def train(
    cfg: TrainConfig,
    batches: Iterable[Batch] | None = None,
    val_batches: Iterable[Batch] | None = None,
    *,
    geometry: Geometry | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run ``cfg.run_dir``; returns a summary dict.

    ``batches`` replaces the shard stream (each rank passes its own; on resume, the consumed
    batches are skipped from its start), ``val_batches`` the validation set; both are for tests
    and experiments. With ``batches``, ``geometry`` states the clip geometry they stand for
    (the run record says so, or that it is unknown); without, it is read from the shards.
    Summary keys: run_dir, model, start_step, steps, final_loss, val, loss_unit (final_loss and
    val's losses are in the paper's unit, ``trainer.pixels``), samples_per_s, params_sha256 (of
    the final weights, equal on every rank).
    """
    d, started = setup_distributed(cfg.device)
    try:
        return _train(cfg, d, batches, val_batches, geometry)
    finally:
        if started:
            teardown()


def _train(
    cfg: TrainConfig,
    d: Dist,
    batches: Iterable[Batch] | None,
    val_injected: Iterable[Batch] | None,
    geometry: Geometry | None,
) -> dict[str, Any]:
    # ---------------------------------------------------------------- setup
    cfg, run, resume, record = _open_run(cfg, d, batches, val_injected, geometry)
    cuda = d.device.type == "cuda"
    channels_last = cfg.channels_last and cuda
    _configure_backends(cfg, cuda)
    state = train_state.build(cfg, d.device, channels_last)
    model, kind, accum = state.model, cfg.model_name, cfg.optim.grad_accum
    step = consumed = 0
    if resume is not None:
        step, consumed = train_state.restore(*resume, state, d)
        log.info("resuming %s from step %d (%s)", run.root, step, resume[0].name)
    net = _distributed(model, d, cuda)
    forward = torch.compile(net) if cfg.compile else net
    segment = segment_batches(cfg)
    stream = data_stream(cfg.data, rank=d.rank, world_size=d.world_size, segment=segment,
                         batches=batches, start=consumed, geometry=record.geometry)  # fmt: skip
    logger = TrainLogger(run, d, start_step=step, steps=cfg.optim.steps, batch=cfg.optim.batch,
                         progress=cfg.progress, desc=f"{kind} {run.name}",
                         pixel_range=cfg.model.pixel_range)  # fmt: skip
    val_cache = list(val_injected) if val_injected is not None else None
    has_val = bool(cfg.val_shards) or val_cache is not None
    prep = functools.partial(
        prepare, device=d.device, pixel_pool=cfg.pixel_pool, pixel_range=cfg.model.pixel_range
    )
    autocast = _autocast(cfg.bf16 and cuda)
    start_step, final_loss, val_summary = step, None, None

    model.train()
    while step < cfg.optim.steps:
        # ------------------------------------------------------------ data, forward, backward
        lr = state.optimizer.param_groups[0]["lr"]
        terms: dict[str, Tensor] = {}
        for micro in range(accum):
            batch = prep(next_batch(stream, consumed), channels_last=channels_last)
            consumed += 1
            reduce = micro == accum - 1 or d.world_size == 1  # DDP: all-reduce on the last one
            out, micro_terms = _forward_backward(forward, net, kind, batch, autocast, accum, reduce)
            terms = {k: terms.get(k, 0.0) + v / accum for k, v in micro_terms.items()}
        # ------------------------------------------------------------ step
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.scheduler.step()
        step += 1
        done = step == cfg.optim.steps
        # ------------------------------------------------------------ log
        logger.step(step, lr, terms)
        if step % cfg.log_every == 0 or done:
            final_loss = logger.flush(step)
        if d.main and step % cfg.video_every == 0:
            logger.examples(step, batch, out)
        # ------------------------------------------------------------ validate
        if has_val and d.main and (step % cfg.eval_every == 0 or done):
            source = val_cache if val_cache is not None else _val_batches(cfg, record)
            val_summary = logger.validation(
                step, validation_loss(model, kind, source, prep, autocast)
            )
        # ------------------------------------------------------------ checkpoint
        if step % cfg.ckpt_every == 0 or done:
            train_state.save(run.root, state, cfg, record, d, step=step, consumed=consumed)
    logger.close()
    return {
        "run_dir": str(run.root),
        "model": kind,
        "start_step": start_step,
        "steps": step,
        "final_loss": final_loss,
        "val": val_summary,
        "loss_unit": pixels.LOSS_UNIT,
        "samples_per_s": logger.samples_per_s(step),
        "params_sha256": train_state.params_digest(model),  # equal on every rank
    }


def _forward_backward(
    forward: Callable, net: nn.Module, kind: str, batch: Batch, autocast: Callable, accum: int,
    reduce: bool,
) -> tuple[ModelOutput, dict[str, Tensor]]:  # fmt: skip
    """One micro-batch's forward and backward pass, its gradients scaled by 1 / ``accum``
    (``reduce``: DDP all-reduces them now) -> (outputs, its terms to log)."""
    with contextlib.nullcontext() if reduce else net.no_sync():
        with autocast():
            out = forward(*model_inputs(kind, batch))
            loss, terms = compute_loss(kind, batch, out)
        (loss / accum).backward()
    terms["identity"] = identity_term(batch)  # the reference a model must beat
    return out, terms


def _open_run(
    cfg: TrainConfig,
    d: Dist,
    batches: Iterable[Batch] | None,
    val_injected: Iterable[Batch] | None,
    geometry: Geometry | None,
) -> tuple[TrainConfig, RunDir, tuple[Path, dict] | None, TrainedOn]:
    """Check the data and the run folder (a resume must keep the config and the clip geometry),
    then start the run -> (the config with this rank's micro-batch size, the run folder, the
    checkpoint to resume from and its payload, the run record)."""
    cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, batch_size=micro_batch(cfg, d.world_size))
    )
    if batches is None:
        if not cfg.data.shards:
            raise ConfigError("data.shards: no training shards given")
        listed = check_shards("data.shards", cfg.data.shards, cfg.data.allow_pipe)
        if not cfg.data.resampled:  # a single pass needs a shard for every reader
            check_enough_shards(len(listed), d.world_size, cfg.data.workers)
    if cfg.val_shards and val_injected is None:
        check_shards("val_shards", cfg.val_shards, cfg.data.allow_pipe)
    record = run_record.for_training(cfg, injected=batches is not None, geometry=geometry)
    run = RunDir(cfg.run_dir)
    resume = run.resume_point(d.device)  # the newest checkpoint that loads
    if resume is not None:
        run.check_resumable(cfg)
        record = run_record.merged_record(run.root, record)
    run_record.check_model_input(record)
    barrier(d)  # every rank has read the old config and record before rank 0 rewrites them
    if d.main:
        run.start(cfg, record)
    return cfg, run, resume, record


def _configure_backends(cfg: TrainConfig, cuda: bool) -> None:
    if not cuda and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)  # process-wide
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _distributed(model: nn.Module, d: Dist, cuda: bool) -> nn.Module:
    """The model wrapped in DDP when there are several ranks."""
    if d.world_size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[d.local_rank] if cuda else None)


def _autocast(bf16: bool) -> Callable[[], Any]:
    """A factory of the context the forward pass runs in: bf16 autocast, or nothing."""
    if bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _val_batches(cfg: TrainConfig, record: TrainedOn) -> Iterator[Batch]:
    """The fixed validation set: the first ``cfg.val_batches`` batches, read in order (samples
    of another clip geometry than the run's skipped)."""
    return fixed_batches(cfg.data, cfg.val_shards, cfg.val_batches, geometry=record.geometry)
