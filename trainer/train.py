"""The training loop: ``train(cfg) -> summary``, readable in one sitting.

Paper (section 4): SGD with momentum, 124k iterations, batch 128, learning rate 0.5 divided by
10 after 80k, 100k and 120k iterations. Our additions, all optional and off the paper's path:
bf16 autocast and channels_last_3d on CUDA, ``torch.compile``, gradient accumulation (``auto``:
the micro-batch that fits the device, ``trainer.run_cost``), activation checkpointing of the
encoder and decoder blocks, DDP (with SyncBatchNorm on CUDA).

A run records what it was trained on (``RUN/trained_on.json``, ``trainer.run_record``): the
clip geometry of its shards, the subsampling and the shard format, for evaluation to read.

Setup, then one loop whose phases are step (data, forward/backward, optimiser), log, validate,
checkpoint. Each concern lives in a module of its own: the run folder (``trainer.run_dir``),
distributed setup and the device (``trainer.distributed``), the model, optimiser and checkpoint
payload (``trainer.train_state``), the optimiser step (``trainer.step``), the data stream
(``trainer.data.stream``, page-locked for a GPU) and its device stage (``trainer.data.device``),
the objective (``trainer.objective``), validation (``trainer.val_loss``), the step's cost on the
device (``trainer.run_cost``) and logging (``trainer.logger``). Nothing in a step reads a device
value back to the host; the logger does, once per log interval.

Resume: rerunning with the same RUN loads the latest checkpoint (model, optimizer, scheduler,
step, every rank's RNG states, micro-batches consumed) and continues the data stream where it
was, so the continued run is the one that was interrupted: on CPU the loss curve is bit-identical
(``tests/test_train.py``). Log lines after the checkpoint are dropped and rewritten.

Distributed: each rank streams its own shards; only rank 0 writes logs, TensorBoard and
checkpoints; logged terms are averaged over ranks.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from blendkit.format import Geometry
from trainer import pixels, run_cost, run_record, train_state
from trainer.config import AUTO, ConfigError, TrainConfig, load_config, micro_batch, segment_batches
from trainer.data.batch import Batch
from trainer.data.device import prepare
from trainer.data.shards import check_enough_shards
from trainer.data.stream import check_shards, data_stream, next_batch
from trainer.data.validation import fixed_batches
from trainer.distributed import Dist, barrier, setup_distributed, teardown
from trainer.logger import TrainLogger
from trainer.objective import identity_term
from trainer.run_dir import RunDir
from trainer.run_record import TrainedOn
from trainer.schedule import resolve_schedule
from trainer.step import configure_backends, make_stepper
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
    configure_backends(cfg, cuda)
    state = train_state.build(cfg, d.device, channels_last)
    step = consumed = 0
    if resume is not None:
        step, consumed = train_state.restore(*resume, state, d)
        log.info("resuming %s from step %d (%s)", run.root, step, resume[0].name)
    stepper = make_stepper(cfg, state, d)
    stream = data_stream(cfg.data, rank=d.rank, world_size=d.world_size,
                         segment=segment_batches(cfg), batches=batches, start=consumed,
                         geometry=record.geometry, pin_memory=cuda)  # fmt: skip
    throughput = run_cost.throughput(cfg, record, d.device, d.world_size)
    logger = TrainLogger(run, d, start_step=step, steps=cfg.optim.steps, batch=cfg.optim.batch,
                         progress=cfg.progress, desc=f"{cfg.model_name} {run.name}",
                         pixel_range=cfg.model.pixel_range, throughput=throughput)  # fmt: skip
    val_cache = list(val_injected) if val_injected is not None else None
    has_val = bool(cfg.val_shards) or val_cache is not None
    prep = functools.partial(
        prepare, device=d.device, pixel_pool=cfg.pixel_pool, pixel_range=cfg.model.pixel_range
    )
    start_step, final_loss, val_summary = step, None, None

    def next_micro() -> Batch:
        nonlocal consumed
        batch = prep(next_batch(stream, consumed), channels_last=channels_last)
        consumed += 1
        return batch

    state.model.train()
    while step < cfg.optim.steps:
        # ------------------------------------------------------------ step
        lr = state.optimizer.param_groups[0]["lr"]
        batch, out, terms = stepper.step(next_micro, cfg.optim.grad_accum)
        step += 1
        done = step == cfg.optim.steps
        # ------------------------------------------------------------ log
        logger.step(step, lr, terms)
        if step % cfg.log_every == 0 or done:  # with the reference a model must beat
            final_loss = logger.flush(step, identity_term(batch))
        if d.main and step % cfg.video_every == 0:
            logger.examples(step, batch, out)
        # ------------------------------------------------------------ validate
        if has_val and d.main and (step % cfg.eval_every == 0 or done):
            source = val_cache if val_cache is not None else _val_batches(cfg, record)
            val_summary = logger.validation(
                step, validation_loss(state.model, cfg.model_name, source, prep, stepper.autocast)
            )
        # ------------------------------------------------------------ checkpoint
        if step % cfg.ckpt_every == 0 or done:
            train_state.save(run.root, state, cfg, record, d, step=step, consumed=consumed)
    logger.close()
    return {
        "run_dir": str(run.root),
        "model": cfg.model_name,
        "start_step": start_step,
        "steps": step,
        "final_loss": final_loss,
        "val": val_summary,
        "loss_unit": pixels.LOSS_UNIT,
        "samples_per_s": logger.samples_per_s(step),
        "params_sha256": train_state.params_digest(state.model),  # equal on every rank
    }


def _open_run(
    cfg: TrainConfig,
    d: Dist,
    batches: Iterable[Batch] | None,
    val_injected: Iterable[Batch] | None,
    geometry: Geometry | None,
) -> tuple[TrainConfig, RunDir, tuple[Path, dict] | None, TrainedOn]:
    """Check the data and the run folder (a resume must keep the config and the clip geometry),
    then start the run -> (the config with its gradient accumulation resolved and this rank's
    micro-batch size, the run folder, the checkpoint to resume from and its payload, the run
    record)."""
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
    auto = resume is not None and cfg.optim.grad_accum == AUTO
    saved = _saved_config(run) if auto else None
    cfg = run_cost.resolve_grad_accum(cfg, record, d.device, d.world_size, saved)
    # optim.schedule_blends: steps for the blends of data.shards (injected batches: as given)
    cfg = resolve_schedule(cfg, blends=0 if batches is not None else None)
    cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, batch_size=micro_batch(cfg, d.world_size))
    )
    if resume is not None:
        run.check_resumable(cfg)
        record = run_record.merged_record(run.root, record)
    run_record.check_model_input(record)
    barrier(d)  # every rank has read the old config and record before rank 0 rewrites them
    if d.main:
        run.start(cfg, record)
    return cfg, run, resume, record


def _saved_config(run: RunDir) -> TrainConfig | None:
    """The config of the run being resumed, for ``grad_accum=auto`` to keep its value (None
    when there is none to read: ``check_resumable`` says what is wrong with it)."""
    if not run.config.is_file():
        return None
    try:
        return load_config(str(run.config))
    except ConfigError:
        return None


def _val_batches(cfg: TrainConfig, record: TrainedOn) -> Iterator[Batch]:
    """The fixed validation set: the first ``cfg.val_batches`` batches, read in order (samples
    of another clip geometry than the run's skipped)."""
    return fixed_batches(cfg.data, cfg.val_shards, cfg.val_batches, geometry=record.geometry)
