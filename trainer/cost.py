"""What a training step costs, per sample at paper size, and what a GPU can do with it.

* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass and one backward
  pass of the training loss (``trainer.objective.compute_loss``) on the meta device, so the count
  is exact for the code as it is (convolutions, matrix products, einsum; elementwise ops and
  reductions count zero) and takes no memory.
* Memory: the bytes autograd saves for the backward pass (``trainer.memory.SavedTensors``), on
  fake CUDA tensors under bf16 autocast (``trainer.memory.fake_cuda_autocast``), the loss
  included; with no activation checkpointing, with the trainer's (``blocks``: Inception blocks
  and decoder up-blocks recomputed), and with everything checkpointed but the block boundaries
  (``boundaries``: every I3D unit and pool, block, head, the composition, the control
  regressor, the audio blocks and the loss). A checkpointed module keeps its inputs, which are
  counted. Per sample: a batch of two, halved, without autocast's bf16 copies of the weights
  (made once a batch; half the difference between batches of four and two agrees within
  1.5 MiB at paper size; a batch of one takes another einsum path). The peak of a
  step adds the backward pass's gradients and recomputed blocks to that, which fake CUDA
  tensors cannot run: ``backward_overhead`` measures it on the meta device in plain bf16, and
  the estimated peak per sample is the saved bytes plus that overhead (an estimate: the two
  runs cast differently).
* ``loss_costs``: saved bytes, live peak and time of pairwise losses on the CPU, side by side.

What a device does with these counts (peaks, MFU, the micro-batch that fits) is in
``trainer.devices``.

Paper size (``paper_clip``): the clips ``blendkit make-shards`` writes by default (64 frames of
128x128) and the log-mel of their audio with the trainer's default mel settings, n = m = 4
(``trainer.config.paper``); c3_det has n = 2, as deterministic control requires.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from blendkit.shard_config import ShardConfig
from trainer.audio_features import n_frames
from trainer.config import paper
from trainer.memory import LivePeak, SavedTensors, fake_cuda_autocast, meta_device
from trainer.models import ModelConfig, build_model, count_parameters
from trainer.models.audio import ConvBlock2d
from trainer.models.checkpointing import CHECKPOINTED_BLOCKS
from trainer.models.composition import Composition, LayerHead
from trainer.models.control import ControlRegressor
from trainer.models.decoder import UpBlock, VideoHead
from trainer.models.i3d import InceptionBlock, Unit3d
from trainer.models.registry import outputs_for
from trainer.objective import compute_loss, model_inputs

MIB = 2**20


@dataclass(frozen=True)
class Clip:
    """One training sample's input sizes."""

    frames: int
    size: int  # H = W
    n_mels: int
    audio_frames: int


def paper_clip() -> Clip:
    """The default shards' clips (64 x 128 x 128) and the default log-mel of their audio."""
    shard, data = ShardConfig(source="", out=""), paper().data
    audio = n_frames(shard.audio_samples, data.hop_length)
    return Clip(shard.frames, shard.crop, data.n_mels, audio)


def paper_model_config(name: str) -> ModelConfig:
    """``trainer.config.paper``'s model sizes for ``name`` (n = 2 for deterministic control)."""
    cfg = paper().model
    return dataclasses.replace(cfg, n_outputs=outputs_for(name, cfg.n_outputs))


def synthetic_batch(clip: Clip, batch: int) -> dict[str, Tensor]:
    """A batch as ``trainer.objective`` takes it, on the current default device."""

    def video() -> Tensor:
        return torch.rand(batch, 3, clip.frames, clip.size, clip.size)  # (B, 3, T, H, W)

    audio = torch.rand(batch, 1, clip.n_mels, clip.audio_frames)  # (B, 1, n_mels, frames)
    return {"mix": video(), "v1": video(), "v2": video(), "a1": audio}


# ----------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class Checkpointing:
    """Which modules are recomputed in the backward pass (outermost ones win), and the loss."""

    name: str
    modules: tuple[type[nn.Module], ...] = ()
    loss: bool = False


NO_CHECKPOINTING = Checkpointing("none")
BOUNDARIES = Checkpointing(
    "boundaries",
    (Unit3d, nn.MaxPool3d, InceptionBlock, UpBlock, LayerHead, VideoHead, Composition)
    + (ControlRegressor, ConvBlock2d),
    loss=True,
)


def trainer_checkpointing() -> Checkpointing:
    """What ``activation_checkpointing=true`` recomputes (``trainer.models.checkpointing``)."""
    return Checkpointing("blocks", tuple(CHECKPOINTED_BLOCKS))


@contextlib.contextmanager
def _checkpointed(model: nn.Module, policy: Checkpointing, saved: SavedTensors) -> Iterator[None]:
    """Wrap the outermost modules of ``policy`` in non-reentrant checkpoints (their inputs
    counted in ``saved``) for the duration of the block."""
    wrapped: list[nn.Module] = []
    inside: set[int] = set()  # ids of the wrapped modules' submodules
    for module in model.modules():
        if isinstance(module, policy.modules) and id(module) not in inside:
            module.forward = _recomputed(module.forward, saved)
            wrapped.append(module)
            inside.update(id(sub) for sub in module.modules())
    try:
        yield
    finally:
        for module in wrapped:
            del module.forward  # the class's forward again


def _recomputed(forward, saved: SavedTensors):  # type: ignore[no-untyped-def]
    def run(*args: object) -> object:
        for t in tree_leaves(args):
            if isinstance(t, Tensor):
                saved.add(t)  # the checkpoint keeps its inputs for the recomputation
        return checkpoint(forward, *args, use_reentrant=False, preserve_rng_state=False)

    return run


def _training_forward(
    name: str, model: nn.Module, data: dict[str, Tensor], policy: Checkpointing, saved: SavedTensors
) -> Tensor:
    """Model and loss on ``data`` as the trainer runs them, under ``policy``."""
    with _checkpointed(model, policy, saved), saved:
        out = model(*model_inputs(name, data))
        if not policy.loss:
            return compute_loss(name, data, out)[0]
        for t in (out.outputs, out.scores, out.predictor):
            if t is not None:
                saved.add(t)  # kept for the loss's recomputation
        return checkpoint(
            lambda: compute_loss(name, data, out)[0], use_reentrant=False, preserve_rng_state=False
        )


def train_flops(
    name: str, cfg: ModelConfig, clip: Clip, policy: Checkpointing | None = None
) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one sample, counted on the meta device; with a
    checkpointing ``policy``, the backward pass includes its recomputation (hardware FLOPs,
    where MFU counts the model's: ``policy=None``). Counted on a batch of two, halved: every
    counted operation is linear in the batch, and BatchNorm refuses a batch of one when a
    feature map is a single value (the bottleneck of a clip of 8x32x32)."""
    with meta_device():
        model = build_model(name, cfg)
        batch = synthetic_batch(clip, 2)
    with FlopCounterMode(display=False) as counter:
        loss = _training_forward(name, model, batch, policy or NO_CHECKPOINTING, SavedTensors())
        forward = counter.get_total_flops()
        loss.backward()
    return forward / 2, counter.get_total_flops() / 2


def _fake_model(name: str, cfg: ModelConfig) -> nn.Module:
    """``name`` on fake CUDA; call inside ``fake_cuda_autocast``."""
    return build_model(name, cfg)


def saved_bytes(
    name: str, cfg: ModelConfig, clip: Clip, batch: int, policy: Checkpointing
) -> SavedTensors:
    """What a bf16 training forward pass (model and loss) saves for backward on a batch, on
    fake CUDA tensors under bf16 autocast."""
    with fake_cuda_autocast():
        model = _fake_model(name, cfg)
        saved = SavedTensors(model)
        _training_forward(name, model, synthetic_batch(clip, batch), policy, saved)
    return saved


def saved_per_sample(
    name: str, cfg: ModelConfig, clip: Clip, policies: tuple[Checkpointing, ...]
) -> dict[str, int]:
    """Bytes saved per sample under each policy: a batch of two, halved (per-batch weight
    copies excluded; a batch of one would take another einsum path)."""
    out = {}
    with fake_cuda_autocast():
        model = _fake_model(name, cfg)
        for policy in policies:
            saved = SavedTensors(model)
            _training_forward(name, model, synthetic_batch(clip, 2), policy, saved)
            out[policy.name] = saved.total // 2
    return out


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def backward_overhead(
    name: str, cfg: ModelConfig, clip: Clip, batch: int, policy: Checkpointing
) -> int:
    """Peak live bytes over forward and backward minus the bytes saved by the forward pass,
    for the model and batch in plain bf16 on the meta device (no CUDA autocast there; its
    casts are not what this measures): the gradients and recomputed blocks that the backward
    pass adds."""
    with meta_device(), _default_dtype(torch.bfloat16):
        model = build_model(name, cfg)
        data = synthetic_batch(clip, batch)
    saved = SavedTensors(model)
    with LivePeak() as live:
        loss = _training_forward(name, model, data, policy, saved)
        loss.backward()
    return live.peak - saved.total


def peak_per_sample(
    name: str, cfg: ModelConfig, clip: Clip, policy: Checkpointing, saved: int | None = None
) -> int:
    """Estimated peak bytes of a bf16 training step per sample: the saved bytes per sample
    (``saved`` if known, e.g. ``ModelCost.saved``) plus the backward pass's overhead per
    sample, half its difference between batches of four and two."""
    if saved is None:
        saved = saved_per_sample(name, cfg, clip, (policy,))[policy.name]
    two, four = (backward_overhead(name, cfg, clip, b, policy) for b in (2, 4))
    return saved + (four - two) // 2


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ModelCost:
    """One model at one size, per sample: FLOPs of a training step and bytes saved for backward
    under each checkpointing policy (by name)."""

    name: str
    params: int
    forward_flops: float
    train_flops: float  # forward + backward, without checkpointing's recomputation
    saved: dict[str, int]


def model_cost(
    name: str,
    cfg: ModelConfig | None = None,
    clip: Clip | None = None,
    policies: tuple[Checkpointing, ...] | None = None,
) -> ModelCost:
    """``name``'s cost at paper size by default, with and without the trainer's checkpointing."""
    cfg = cfg or paper_model_config(name)
    clip = clip or paper_clip()
    policies = policies or (NO_CHECKPOINTING, trainer_checkpointing())
    with torch.device("meta"):
        params = count_parameters(build_model(name, cfg))
    forward, train = train_flops(name, cfg, clip)
    return ModelCost(name, params, forward, train, saved_per_sample(name, cfg, clip, policies))


# ----------------------------------------------------------------------------- the loss stage


@dataclass(frozen=True)
class LossCost:
    """One pairwise loss's forward + backward on one sample: what it saves, its live peak
    beyond its inputs, and the median wall time."""

    saved_bytes: int
    peak_bytes: int
    median_s: float


def loss_costs(
    losses: dict[str, Callable[[Tensor, Tensor], Tensor]],
    clip: Clip,
    outputs_dtype: torch.dtype,
    n: int = 4,
    k: int = 2,
    repeats: int = 5,
) -> dict[str, LossCost]:
    """Measure pairwise losses ``fn(outputs (1, n, 3, T, H, W), targets (1, k, 3, T, H, W))``
    on one sample, side by side: timed runs take turns, after one untimed run of each.

    Targets are float32 (as the trainer gives them), outputs ``outputs_dtype`` (bf16 under
    autocast). Saved bytes count every storage the loss keeps for backward, its inputs
    included; the peak is over forward and backward, ``outputs.grad`` included."""
    g = torch.Generator().manual_seed(0)
    size = (3, clip.frames, clip.size, clip.size)
    outputs = torch.rand(1, n, *size, generator=g).to(outputs_dtype).requires_grad_(True)
    targets = torch.rand(1, k, *size, generator=g)

    def step(fn: Callable[[Tensor, Tensor], Tensor]) -> float:
        outputs.grad = None
        start = time.perf_counter()
        fn(outputs, targets).sum().backward()  # (1, n, k) -> scalar
        return time.perf_counter() - start

    saved, peaks = {}, {}
    for name, fn in losses.items():
        with SavedTensors() as counter:
            fn(outputs, targets)
        saved[name] = counter.total
        with LivePeak() as live:
            step(fn)
        peaks[name] = live.peak
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(repeats):
        for name, fn in losses.items():
            times[name].append(step(fn))
    return {
        name: LossCost(saved[name], peaks[name], statistics.median(times[name])) for name in losses
    }
