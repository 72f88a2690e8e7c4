"""What this run's training step costs on its device: the FLOPs behind the MFU the trainer logs,
and the micro-batch ``optim.grad_accum=auto`` picks.

Both come from ``trainer.cost``'s counts for the run's own model and clips (the run record's
geometry as the model sees it, ``TrainedOn.model_input``), made once at startup on meta and fake
tensors: FLOPs per sample without checkpointing's recomputation (``train_flops``: MFU counts the
model's FLOPs), and the estimated peak bytes per sample of a bf16 step under the run's
checkpointing (``peak_per_sample``; doubled for float32 training, an overestimate since the loss's
float32 targets do not double). The device's dense bf16 peak and memory come from
``trainer.devices`` and the driver, or from the config's ``peak_tflops`` and
``device_memory_gb``; without a peak (the CPU, an unknown GPU) no MFU is logged, and on the CPU
``grad_accum=auto`` needs ``device_memory_gb``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch

from blendkit.typed_config import ConfigError
from trainer.audio_features import n_frames
from trainer.config import AUTO, TrainConfig
from trainer.cost import NO_CHECKPOINTING, Clip, peak_per_sample, train_flops, trainer_checkpointing
from trainer.devices import device_spec, micro_batch_that_fits, training_state_bytes
from trainer.models import build_model, count_parameters
from trainer.run_record import TrainedOn

log = logging.getLogger(__name__)


def clip_of(record: TrainedOn, cfg: TrainConfig) -> Clip:
    """The sizes of one training sample as the model takes it; ``ValueError`` saying why when
    the record does not know them."""
    stored, seen = record.geometry, record.model_input  # model_input raises when unknown
    if seen.height != seen.width:
        raise ValueError(f"clips of {seen.height}x{seen.width}: the cost model takes square ones")
    audio_samples = round(stored.frames / stored.fps * stored.audio_rate)
    return Clip(
        seen.frames, seen.height, cfg.data.n_mels, n_frames(audio_samples, cfg.data.hop_length)
    )


def peak_tflops(cfg: TrainConfig, device: torch.device) -> float | None:
    """The device's dense bf16 peak: ``cfg.peak_tflops``, or the CUDA device's from
    ``trainer.devices``; None when it is unknown."""
    if cfg.peak_tflops > 0:
        return cfg.peak_tflops
    if device.type != "cuda":
        return None
    try:
        return device_spec().bf16_tflops
    except ValueError as e:
        log.warning("no MFU in the logs: %s (set peak_tflops=...)", e)
        return None


def device_memory(cfg: TrainConfig, device: torch.device) -> float | None:
    """The device's memory in bytes: ``cfg.device_memory_gb``, or what the CUDA driver reports;
    None on the CPU."""
    if cfg.device_memory_gb > 0:
        return cfg.device_memory_gb * 1e9
    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    return None


@dataclass(frozen=True)
class Throughput:
    """What a log interval's samples/s make of the device: MFU (per device)."""

    flops_per_sample: float  # forward + backward, the model's (no recomputation)
    peak_tflops: float
    world_size: int

    def mfu(self, samples_per_s: float) -> float:
        per_device = samples_per_s / self.world_size
        return per_device * self.flops_per_sample / (self.peak_tflops * 1e12)


def throughput(
    cfg: TrainConfig, record: TrainedOn, device: torch.device, world_size: int
) -> Throughput | None:
    """The run's MFU meter, or None (said in the log) when the peak or the clips are unknown."""
    peak = peak_tflops(cfg, device)
    if peak is None:
        return None
    try:
        clip = clip_of(record, cfg)
    except ValueError as e:
        log.info("no MFU in the logs: %s", e)
        return None
    _, flops = train_flops(cfg.model_name, cfg.model, clip)
    log.info("%.1f GFLOP per training sample; MFU against %.1f TFLOP/s", flops / 1e9, peak)
    return Throughput(flops, peak, world_size)


def resolve_grad_accum(
    cfg: TrainConfig,
    record: TrainedOn,
    device: torch.device,
    world_size: int,
    saved: TrainConfig | None = None,
) -> TrainConfig:
    """``cfg`` with ``optim.grad_accum=auto`` replaced by the accumulation whose micro-batch
    fits the device (``saved``: the config of the run being resumed, whose accumulation is kept
    so the data stream and the numerics continue); other values pass unchanged."""
    if cfg.optim.grad_accum != AUTO:
        return cfg
    if saved is not None and saved.optim.grad_accum != AUTO:
        accum = saved.optim.grad_accum
        log.info("optim.grad_accum=auto: %d, as in the run being resumed", accum)
    else:
        accum = _fitting_accum(cfg, record, device, world_size)
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, grad_accum=accum))


def _fitting_accum(
    cfg: TrainConfig, record: TrainedOn, device: torch.device, world_size: int
) -> int:
    key = "optim.grad_accum"
    per_rank, rest = divmod(cfg.optim.batch, world_size)
    if rest:
        raise ConfigError(
            f"optim.batch ({cfg.optim.batch}) must be divisible by {world_size} ranks"
        )
    memory = device_memory(cfg, device)
    if memory is None:
        raise ConfigError(f"{key}=auto on the CPU needs device_memory_gb=N, or a number")
    try:
        clip = clip_of(record, cfg)
    except ValueError as e:
        raise ConfigError(f"{key}=auto: {e}") from None
    checkpointing = trainer_checkpointing() if cfg.activation_checkpointing else NO_CHECKPOINTING
    per_sample = peak_per_sample(cfg.model_name, cfg.model, clip, checkpointing)
    if not (cfg.bf16 and device.type == "cuda"):
        per_sample *= 2  # float32 activations
    with torch.device("meta"):
        params = count_parameters(build_model(cfg.model_name, cfg.model))
    fixed = training_state_bytes(params, 1 if cfg.optim.name == "sgd" else 2)
    try:
        micro = micro_batch_that_fits(per_rank, per_sample, fixed, memory)
    except ValueError as e:
        raise ConfigError(f"{key}=auto: {e}") from None
    log.info(
        "optim.grad_accum=auto: micro-batch %d of %d per rank (estimated %.0f MiB a sample, "
        "%.1f GB of memory)", micro, per_rank, per_sample / 2**20, memory / 1e9,
    )  # fmt: skip
    return per_rank // micro
