"""GPUs: their dense bf16 peak and memory, model FLOPs utilisation, the micro-batch that fits.

``DEVICES`` holds the vendor datasheet figures of common training GPUs (dense bf16 tensor-core
throughput, i.e. half the "with sparsity" figure, and memory as sold); ``device_spec`` picks one
by name or from the current CUDA device, and takes the caller's overrides for anything else.
``mfu`` and ``micro_batch_that_fits`` turn ``trainer.cost``'s per-sample counts into a
utilisation and a gradient-accumulation factor.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceSpec:
    """A GPU's dense bf16 tensor-core peak (no 2:4 sparsity) and its memory as sold."""

    name: str
    bf16_tflops: float
    memory_gb: float  # 10^9 bytes; the driver reports a little less
    patterns: tuple[str, ...] = ()  # lower-case substrings of torch.cuda.get_device_name()

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


# From the vendor datasheets (dense bf16 = half the "with sparsity" figure). First match wins,
# so more specific names come first.
DEVICES: tuple[DeviceSpec, ...] = (
    DeviceSpec("B200", 2250.0, 180, ("b200",)),
    DeviceSpec("H200 NVL", 835.5, 141, ("h200 nvl",)),
    DeviceSpec("H200", 989.4, 141, ("h200",)),
    DeviceSpec("H100 NVL", 835.5, 94, ("h100 nvl",)),
    DeviceSpec("H100 PCIe", 756.5, 80, ("h100 pcie",)),
    DeviceSpec("H100 SXM", 989.4, 80, ("h100",)),
    DeviceSpec("A100 80GB", 312.0, 80, ("a100-sxm4-80gb", "a100 80gb", "a100-pcie-80gb")),
    DeviceSpec("A100 40GB", 312.0, 40, ("a100",)),
    DeviceSpec("L40S", 362.0, 48, ("l40s",)),
    DeviceSpec("L4", 121.0, 24, ("nvidia l4",)),
)
DEFAULT_DEVICE = "H200"  # the target


def device_spec(
    name: str | None = None, bf16_tflops: float | None = None, memory_gb: float | None = None
) -> DeviceSpec:
    """The spec of ``name`` (a ``DEVICES`` name, or a name as CUDA reports it), with the
    caller's overrides. ``name=None``: the current CUDA device if there is one (its memory as
    the driver reports it), else ``DEFAULT_DEVICE``. An unknown device needs both overrides."""
    reported_gb = None
    if name is None and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        reported_gb = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        reported_gb /= 1e9
    name = name or DEFAULT_DEVICE
    spec = _match(name)
    if spec is None:
        if bf16_tflops is None or memory_gb is None:
            known = ", ".join(d.name for d in DEVICES)
            raise ValueError(f"unknown device {name!r}: give its peak and memory (known: {known})")
        spec = DeviceSpec(name, bf16_tflops, memory_gb)
    memory = memory_gb if memory_gb is not None else reported_gb
    return dataclasses.replace(
        spec,
        bf16_tflops=spec.bf16_tflops if bf16_tflops is None else bf16_tflops,
        memory_gb=spec.memory_gb if memory is None else memory,
    )


def _match(name: str) -> DeviceSpec | None:
    lowered = name.lower()
    for spec in DEVICES:
        words = (rf"\b{re.escape(p)}\b" for p in spec.patterns)
        if lowered == spec.name.lower() or any(re.search(w, lowered) for w in words):
            return spec
    return None


def mfu(samples_per_s: float, flops_per_sample: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: the model's FLOPs (``ModelCost.train_flops``, which does not
    count checkpointing's recomputation) done per second over the device's peak."""
    return samples_per_s * flops_per_sample / (peak_tflops * 1e12)


def training_state_bytes(params: int, optimizer_states: int) -> int:
    """Bytes that do not grow with the batch: float32 weights and gradients, the optimizer's
    ``optimizer_states`` float32 tensors per weight (SGD with momentum: 1, Adam: 2) and
    autocast's bf16 copies of the weights."""
    return params * (4 + 4 + 4 * optimizer_states + 2)


def micro_batch_that_fits(
    batch: int,
    per_sample_bytes: float,
    fixed_bytes: float,
    memory_bytes: float,
    usable: float = 0.9,
) -> int:
    """The largest divisor of ``batch`` (a rank's samples per optimiser step) whose step fits
    in ``usable`` of the device's memory; gradient accumulation is then ``batch // result``."""
    budget = usable * memory_bytes - fixed_bytes
    if budget < per_sample_bytes:
        need = (fixed_bytes + per_sample_bytes) / 2**30
        have = usable * memory_bytes / 2**30
        raise ValueError(f"one sample needs {need:.1f} GiB, the device has {have:.1f} GiB usable")
    return max(m for m in range(1, batch + 1) if batch % m == 0 and m * per_sample_bytes <= budget)
