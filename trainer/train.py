"""The training loop: ``train(cfg) -> summary``, readable in one sitting.

Paper (section 4): SGD with momentum, 124k iterations, batch 128, learning rate 0.5 divided by
10 after 80k, 100k and 120k iterations. Our additions, all optional and off the paper's path:
bf16 autocast and channels_last_3d on CUDA, ``torch.compile``, gradient accumulation,
activation checkpointing of the encoder and decoder blocks, DDP.

Run layout::

    RUN/config.json            the resolved TrainConfig (resume refuses other values, except
                               for the keys in ``trainer.config.RESUMABLE_KEYS``)
    RUN/metrics.jsonl          one line per optimiser step: step, lr, loss terms and the
                               identity baseline of the batch (Table 1), averaged over ranks
    RUN/val.jsonl              one line per validation: step and mean terms on the fixed set
    RUN/tb/                    TensorBoard: the same scalars, samples/s, and every
                               ``video_every`` steps an image of mix | V1 | V2 | O_1..O_n at a
                               few frames (plus ``add_video`` when moviepy is installed)
    RUN/checkpoints/step-%09d.pt   the newest ``keep_ckpts`` are kept

Resume: rerunning with the same RUN loads the latest checkpoint (model, optimizer, scheduler,
step, every rank's RNG states, micro-batches consumed) and continues the data stream where it
was, so the continued run is the one that was interrupted: on CPU the loss curve is bit-identical
(``tests/test_train.py``). Log lines after the checkpoint are dropped and rewritten. The training
stream is cut into one-checkpoint-interval segments, each a loader pass seeded by its index
(``_data_stream``), so a resume starts the checkpoint's segment and decodes nothing twice.

Distributed: launched by ``torchrun``, read from RANK / WORLD_SIZE / LOCAL_RANK; gloo on CPU,
nccl on CUDA. Each rank streams its own shards (``make_loader(cfg, rank, world_size)``); only
rank 0 writes logs, TensorBoard and checkpoints; logged terms are averaged over ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint
from tqdm import tqdm

from trainer import checkpoint as ckpt
from trainer.audio_features import batch_log_mel
from trainer.colour import yuv_to_rgb
from trainer.config import (
    RESUMABLE_KEYS,
    ConfigError,
    OptimConfig,
    TrainConfig,
    diff,
    load_config,
    micro_batch,
    save_config,
    validate,
)
from trainer.metrics import identity_loss
from trainer.models import ModelOutput, build_model, to_channels_last
from trainer.models.decoder import UpBlock
from trainer.models.i3d import InceptionBlock
from trainer.objective import compute_loss, model_inputs

if TYPE_CHECKING:
    from trainer.data.loader import Loader

log = logging.getLogger(__name__)

Batch = Mapping[str, Any]
CHECKPOINTED_BLOCKS = (InceptionBlock, UpBlock)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> tuple[Dist, bool]:
    """Read torchrun's env vars, pick the device, start the process group when needed.

    Returns the ``Dist`` and whether this call initialised the process group (and so must
    destroy it).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    started = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world)
        started = True
    return Dist(rank, world, local, dev), started


def make_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or Adam (small runs, see ``trainer.config.tiny``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@contextlib.contextmanager
def _keep_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Undo the running-stat update of a recomputation, so BN sees each batch once."""
    buffers = [
        buf
        for m in module.modules()
        if isinstance(m, _BatchNorm)
        for buf in (m.running_mean, m.running_var, m.num_batches_tracked)
        if buf is not None
    ]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        for buf, value in zip(buffers, saved, strict=True):
            buf.copy_(value)


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every I3D Inception block and decoder up-block in the backward pass.

    Non-reentrant ``torch.utils.checkpoint``; the recomputation restores the BatchNorm running
    stats so that they are updated once per forward, as without checkpointing. Returns the
    number of blocks wrapped.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, CHECKPOINTED_BLOCKS):
            module.forward = _checkpointed(module, module.forward)
            count += 1
    return count


def _checkpointed(module: nn.Module, forward: Any) -> Any:
    def contexts() -> tuple[Any, Any]:
        return contextlib.nullcontext(), _keep_batchnorm_stats(module)

    def run(*args: Any) -> Any:
        if not (module.training and torch.is_grad_enabled()):
            return forward(*args)
        return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts)

    return run


VIDEO_KEYS = ("mix", "v1", "v2", "alpha")  # (B, C, T, H, W) members subsampled together


def prepare(
    batch: Batch, device: torch.device, *, pixel_pool: int, channels_last: bool
) -> dict[str, Any]:
    """A loader batch on the device as the model takes it: float RGB videos in [0, 1], ``mix``
    by equation 3 when the loader did not decode the stored one, clips pooled, channels_last_3d
    if asked.

    The loader ships uint8 Y, U, V planes as stored (4x less to stack and copy than float, and
    no colour conversion on its CPU cores) and alpha as float16, and leaves the conversion to RGB
    (``trainer.colour``) and equation 3 to the device. ``pixel_pool`` average-pools k x k
    pixels after the mix is formed (1 for the paper; frames are subsampled in the loader,
    ``data.frame_stride``).
    Float videos (tests, injected batches) are taken as RGB and pass unchanged; non-tensors
    pass through. Audio comes as waveforms (``a*_wave``, with ``mel``): their log-mel features
    ``a1`` and ``a2`` are computed here, a batch at a time (``batch_log_mel``); batches that
    already carry ``a1`` / ``a2`` features (injected) keep them.
    """
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, Tensor):
            value = value.to(device, non_blocking=True)
            if key in VIDEO_KEYS and value.dtype == torch.uint8:
                value = yuv_to_rgb(value)  # (B, 3, T, H, W) float RGB in [0, 1]
            elif key == "alpha":
                value = value.float()  # float16 from the loader
        out[key] = value
    if "mel" in out:  # waveforms from the loader
        mels = set(out.pop("mel"))
        if len(mels) != 1:
            raise ValueError(f"a batch mixes audio rates or mel settings: {sorted(mels)}")
        mel = mels.pop()
        for track in ("a1", "a2"):
            wave, reversed_ = out.pop(f"{track}_wave"), out.pop(f"{track}_reversed")
            out[track] = batch_log_mel(wave, out[f"has_{track}"], reversed_, mel)
    if "mix" not in out and "alpha" in out:
        out["mix"] = out["alpha"] * out["v1"] + (1.0 - out["alpha"]) * out["v2"]  # eq. 3
    for key in (k for k in VIDEO_KEYS if k in out):
        value = out[key]
        if pixel_pool > 1:
            value = F.avg_pool3d(value, (1, pixel_pool, pixel_pool))  # (B, C, T', H/k, W/k)
        if channels_last:
            value = value.contiguous(memory_format=torch.channels_last_3d)
        out[key] = value
    return out


def _skip(stream: Iterator[Batch], n: int) -> Iterator[Batch]:
    """Drop the first ``n`` batches (those consumed before the checkpoint)."""
    for i in range(n):
        if next(stream, None) is None:
            raise RuntimeError(f"data stream ended after {i} batches while skipping {n} to resume")
    return stream


def _next(stream: Iterator[Batch], consumed: int) -> Batch:
    batch = next(stream, None)
    if batch is None:
        raise RuntimeError(f"data stream ended after {consumed} batches")
    return batch


def check_shards(key: str, spec: str) -> None:
    """Fail early, naming the config key, when a shard spec lists local files that are missing."""
    from trainer.data import list_shards

    try:
        paths = list_shards(spec)
    except FileNotFoundError as e:
        raise ConfigError(f"{key}: {e}") from None
    missing = [p for p in paths if "://" not in p and not p.startswith("pipe:")]
    missing = [p for p in missing if not Path(p).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ConfigError(f"{key}: shard {missing[0]} does not exist{more}")


def segment_batches(cfg: TrainConfig) -> int:
    """Micro-batches per segment of a resampled stream: one checkpoint interval."""
    return cfg.ckpt_every * cfg.optim.grad_accum


def _data_stream(
    cfg: TrainConfig, d: Dist, batches: Iterable[Batch] | None, start: int = 0
) -> Iterator[Batch]:
    """This rank's micro-batches from number ``start`` on: injected batches as given, else the
    shard stream.

    A resampled (endless) stream is cut into segments of ``segment_batches`` micro-batches, each
    a fresh loader pass seeded by the segment's index, so resuming at a checkpoint starts the
    right segment instead of replaying (decoding) every batch before it. A single-pass stream
    runs pass after pass and is replayed up to ``start``."""
    if batches is not None:
        yield from _skip(iter(batches), start)
        return
    from trainer.data import make_loader

    loader = make_loader(cfg.data, rank=d.rank, world_size=d.world_size)
    if cfg.data.resampled:
        size = segment_batches(cfg)
        segment, offset = divmod(start, size)
        while True:
            with torch.random.fork_rng(devices=[]):  # the DataLoader draws a seed from torch
                batches_of_segment = loader.iter_epoch(segment)
            got = 0
            for batch in islice(batches_of_segment, offset, size):
                got += 1
                yield batch
            del batches_of_segment  # shuts its worker processes down
            if got == 0:
                raise RuntimeError(f"data.shards {cfg.data.shards!r} yielded no batch")
            segment, offset = segment + 1, 0
    yield from _skip(_passes(cfg, loader), start)


def _passes(cfg: TrainConfig, loader: Loader) -> Iterator[Batch]:
    """A single-pass loader's epochs, one after another."""
    while True:
        empty = True
        with torch.random.fork_rng(devices=[]):  # the DataLoader draws a seed from torch's RNG
            epoch = iter(loader)
        for batch in epoch:
            empty = False
            yield batch
        if empty:
            raise RuntimeError(f"data.shards {cfg.data.shards!r} yielded no batch")


def _val_batches(cfg: TrainConfig) -> Iterator[Batch]:
    """The fixed validation set: the first ``cfg.val_batches`` batches, read in order."""
    from trainer.data import make_loader

    val = cfg.data.fixed_pass(cfg.val_shards)
    return islice(iter(make_loader(val, rank=0, world_size=1)), cfg.val_batches)


@torch.no_grad()
def evaluate(
    model: nn.Module, kind: str, batches: Iterable[Batch], prep: Callable, autocast: Any
) -> dict[str, float]:
    """Mean loss terms over ``batches`` (weighted by batch size), with the identity baseline.

    ``prep`` puts a loader batch on the device (``prepare`` with the run's settings).
    """
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for raw in batches:
        batch = prep(raw, channels_last=False)
        with autocast():
            out = model(*model_inputs(kind, batch))
            _, terms = compute_loss(kind, batch, out)
        terms["identity"] = _identity(batch)
        n = batch["mix"].shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise RuntimeError("the validation set is empty")
    return {k: v / count for k, v in sums.items()}


def _identity(batch: Batch) -> Tensor:
    """The identity baseline of Table 1 on this batch (outputs = copies of the mixture)."""
    return identity_loss(batch["mix"], batch["v1"], batch["v2"]).mean().detach().float()


def example_grid(batch: Batch, out: ModelOutput, frames: int = 4) -> Tensor:
    """Rows mix, V1, V2, O_1..O_n of the first sample at ``frames`` times: (3, rows*H, frames*W)."""
    rows = [batch["mix"][0], batch["v1"][0], batch["v2"][0], *out.outputs[0]]  # each (3, T, H, W)
    t = rows[0].shape[1]
    idx = torch.linspace(0, t - 1, min(frames, t)).round().long().tolist()
    strips = [torch.cat([r[:, i] for i in idx], dim=-1) for r in rows]  # (3, H, frames*W)
    return torch.cat(strips, dim=-2).detach().float().clamp(0, 1).cpu()


def _example_video(batch: Batch, out: ModelOutput) -> Tensor:
    """(1, T, 3, H, (3+n)*W): mix | V1 | V2 | O_1 .. O_n side by side."""
    cols = [batch["mix"][0], batch["v1"][0], batch["v2"][0], *out.outputs[0]]  # (3, T, H, W)
    video = torch.cat(cols, dim=-1).permute(1, 0, 2, 3)  # (T, 3, H, W')
    return video.detach().float().clamp(0, 1).cpu().unsqueeze(0)


def _check_resumable(cfg: TrainConfig, run: Path) -> None:
    saved_path = run / "config.json"
    if not saved_path.is_file():
        return
    changed = [k for k in diff(load_config(str(saved_path)), cfg) if k not in RESUMABLE_KEYS]
    if changed:
        raise ConfigError(
            f"{run} holds a run with a different config ({', '.join(changed)}); "
            "use another run dir or the same settings"
        )


def _truncate_jsonl(path: Path, step: int) -> None:
    """Keep only the lines logged at or before ``step`` (the resumed checkpoint)."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
        path.write_text("".join(f"{ln}\n" for ln in kept))


def _synced_time(device: torch.device) -> float:
    """Wall time after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build(
    cfg: TrainConfig, device: torch.device, channels_last: bool
) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Model, optimiser and schedule from the seed (identical on every rank)."""
    _seed_everything(cfg.seed)
    model = build_model(cfg.model_name, cfg.model).to(device)
    if cfg.activation_checkpointing and enable_activation_checkpointing(model) == 0:
        raise ConfigError(f"activation_checkpointing: {cfg.model_name} has no blocks to wrap")
    if channels_last:
        to_channels_last(model)
    optimizer = make_optimizer(cfg.optim, model)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(cfg.optim.milestones), gamma=cfg.optim.gamma
    )
    return model, optimizer, scheduler


def restore(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    d: Dist,
) -> tuple[int, int]:
    """Load a checkpoint into the training objects and the RNGs -> (step, batches consumed).

    Each rank takes its own RNG states when the world size is unchanged, else rank 0's.
    """
    state = ckpt.load(path, map_location=d.device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rngs = state["rng"]
    ckpt.set_rng_state(rngs[d.rank] if len(rngs) == d.world_size else rngs[0])
    return state["step"], state["data"]["batches"]


def train(
    cfg: TrainConfig,
    batches: Iterable[Batch] | None = None,
    val_batches: Iterable[Batch] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run ``cfg.run_dir``; returns a summary dict.

    ``batches`` replaces the shard stream (each rank passes its own; on resume, the consumed
    batches are skipped from its start), ``val_batches`` the validation set; both are for tests
    and experiments. Summary keys: run_dir, model, start_step, steps, final_loss, val,
    samples_per_s, params_sha256 (of the final weights, equal on every rank).
    """
    validate(cfg)
    d, started = setup_distributed(cfg.device)
    try:
        return _train(cfg, d, batches, val_batches)
    finally:
        if started:
            dist.destroy_process_group()


def _train(
    cfg: TrainConfig, d: Dist, batches: Iterable[Batch] | None, val_injected: Iterable[Batch] | None
) -> dict[str, Any]:
    cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, batch_size=micro_batch(cfg, d.world_size))
    )
    if batches is None:
        if not cfg.data.shards:
            raise ConfigError("data.shards: no training shards given")
        check_shards("data.shards", cfg.data.shards)
    if cfg.val_shards and val_injected is None:
        check_shards("val_shards", cfg.val_shards)
    run = Path(cfg.run_dir)
    resume_from = ckpt.latest(run)
    if resume_from is not None:
        _check_resumable(cfg, run)
    if d.world_size > 1:
        dist.barrier()  # every rank has read the old config before rank 0 rewrites it
    if d.main:
        run.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run / "config.json")
    cuda = d.device.type == "cuda"
    channels_last = cfg.channels_last and cuda
    if not cuda and cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)  # process-wide
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    model, optimizer, scheduler = build(cfg, d.device, channels_last)
    step = consumed = 0
    if resume_from is not None:
        step, consumed = restore(resume_from, model, optimizer, scheduler, d)
        log.info("resuming %s from step %d", run, step)
    net: nn.Module = model
    if d.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[d.local_rank] if cuda else None)
    forward = torch.compile(net) if cfg.compile else net

    stream = _data_stream(cfg, d, batches, consumed)
    writer = None
    if d.main:
        from torch.utils.tensorboard import SummaryWriter

        _truncate_jsonl(run / "metrics.jsonl", step)
        _truncate_jsonl(run / "val.jsonl", step)
        writer = SummaryWriter(str(run / "tb"), purge_step=step)  # drop events past the ckpt
    has_val = bool(cfg.val_shards) or val_injected is not None
    val_cache = list(val_injected) if val_injected is not None else None
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if (cfg.bf16 and cuda)
        else contextlib.nullcontext
    )
    accum, kind = cfg.optim.grad_accum, cfg.model_name
    prep = functools.partial(prepare, device=d.device, pixel_pool=cfg.pixel_pool)
    pending: list[tuple[int, float, dict[str, Tensor]]] = []
    final_loss: float | None = None
    val_summary: dict[str, float] | None = None
    start_step, t_log, step_log = step, time.perf_counter(), step
    t_first: float | None = None  # end of this call's first step: the rate leaves out warm-up
    bar = tqdm(
        total=cfg.optim.steps,
        initial=step,
        disable=not (d.main and cfg.progress),
        desc=f"{kind} {run.name}",
        dynamic_ncols=True,
    )

    def save_checkpoint() -> None:
        rngs = [ckpt.rng_state()]
        if d.world_size > 1:
            rngs = [None] * d.world_size
            dist.all_gather_object(rngs, ckpt.rng_state())
        if d.main:
            payload = {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rngs,
                "data": {"batches": consumed, "seed": cfg.data.seed},
                "config": json.dumps(dataclasses.asdict(cfg), default=str),
            }
            ckpt.save(ckpt.checkpoint_path(run, step), payload)
            ckpt.prune(run, cfg.keep_ckpts)

    def flush_logs() -> None:
        nonlocal final_loss, t_log, step_log
        names = list(pending[-1][2])
        values = torch.stack([torch.stack([t[n] for n in names]) for _, _, t in pending])
        if d.world_size > 1:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= d.world_size
        rows = values.tolist()  # one host sync per log interval
        now = time.perf_counter()
        rate = (step - step_log) * cfg.optim.batch / max(now - t_log, 1e-9)
        t_log, step_log = now, step
        final_loss = rows[-1][names.index("loss")]
        if d.main:
            with open(run / "metrics.jsonl", "a") as f:
                for (s, lr, _), row in zip(pending, rows, strict=True):
                    record = {"step": s, "lr": lr, **dict(zip(names, row, strict=True))}
                    f.write(json.dumps(record) + "\n")
            for name, value in zip(names, rows[-1], strict=True):
                writer.add_scalar(f"train/{name}", value, step)
            writer.add_scalar("train/lr", pending[-1][1], step)
            writer.add_scalar("train/samples_per_s", rate, step)
            bar.set_postfix(loss=f"{final_loss:.4f}", refresh=False)
        pending.clear()

    model.train()
    while step < cfg.optim.steps:
        lr = optimizer.param_groups[0]["lr"]
        terms_sum: dict[str, Tensor] = {}
        for micro in range(accum):
            batch = prep(_next(stream, consumed), channels_last=channels_last)
            consumed += 1
            last = micro == accum - 1
            sync = contextlib.nullcontext() if last or d.world_size == 1 else net.no_sync()
            with sync:
                with autocast():
                    out = forward(*model_inputs(kind, batch))
                    loss, terms = compute_loss(kind, batch, out)
                (loss / accum).backward()
            terms["identity"] = _identity(batch)  # the reference a model must beat
            for k, v in terms.items():
                terms_sum[k] = terms_sum.get(k, 0.0) + v / accum
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        bar.update(1)
        if t_first is None:
            t_first = _synced_time(d.device)
        pending.append((step, lr, terms_sum))
        done = step == cfg.optim.steps
        if step % cfg.log_every == 0 or done:
            flush_logs()
        if d.main and step % cfg.video_every == 0:
            writer.add_image("examples/mix_v1_v2_outputs", example_grid(batch, out), step)
            if importlib.util.find_spec("moviepy") is not None:
                writer.add_video("examples/video", _example_video(batch, out), step, fps=8)
        if has_val and d.main and (step % cfg.eval_every == 0 or done):
            source = val_cache if val_cache is not None else _val_batches(cfg)
            val_summary = evaluate(model, kind, source, prep, autocast)
            for name, value in val_summary.items():
                writer.add_scalar(f"val/{name}", value, step)
            with open(run / "val.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **val_summary}) + "\n")
        if step % cfg.ckpt_every == 0 or done:
            save_checkpoint()
    bar.close()
    if writer is not None:
        writer.close()
    timed = step - start_step - 1  # steps after this call's first one
    rate = timed * cfg.optim.batch / (_synced_time(d.device) - t_first) if timed > 0 else None
    return {
        "run_dir": str(run),
        "model": kind,
        "start_step": start_step,
        "steps": step,
        "final_loss": final_loss,
        "val": val_summary,
        "samples_per_s": rate,
        "params_sha256": params_digest(model),  # equal on every rank
    }


def params_digest(model: nn.Module) -> str:
    """SHA-256 of the parameters in registration order (bit-exact weight identity).

    Buffers are left out: under DDP each rank's BatchNorm running stats follow its own last
    batch (DDP re-broadcasts rank 0's before every forward, and rank 0's are checkpointed).
    """
    h = hashlib.sha256()
    for name, tensor in model.named_parameters():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
