"""Typed training configuration: one dataclass tree, presets, ``key=value`` overrides, JSON.

``TrainConfig`` nests the model's ``ModelConfig`` and the data's ``DataConfig`` next to the
optimiser's ``OptimConfig`` and the run settings. A config comes from a preset (``paper``,
``tiny``) or a JSON file, then ``key=value`` overrides with dotted keys (``model.n_outputs=2``,
``optim.lr=0.1``) are applied; values are parsed to the field's declared type.

A JSON file starts from the preset its ``"preset"`` key names and sets the keys it holds; one
that names none starts from ``paper`` (the dataclass defaults: batch 128, full-width networks),
and when it does not set every key the command line says so in one line (``load_config``'s
``notice``), so a file of a few keys never silently trains at paper scale. The config's
``preset`` field records where the keys came from (``blendkit-train config`` prints it).

Unknown keys, wrong types and inconsistent settings raise ``ConfigError`` with a one-line
message naming the key; each dataclass checks its own fields in ``__post_init__``
(``blendkit.typed_config``'s checks) and ``TrainConfig`` the rules across sections. The
resolved config is written to ``RUN/config.json`` by the trainer and can be read back with
``load_config("RUN/config.json")`` (older spellings of a value are read through
``LEGACY_VALUES``).

Batch sizes: ``optim.batch`` is the *global* batch of one optimiser step (the paper's 128) over
all ranks and accumulation micro-steps. Each rank loads micro-batches of
``optim.batch / (world_size * optim.grad_accum)`` samples; the trainer writes that value into
``data.batch_size``, which is therefore derived and cannot be overridden directly.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from blendkit import typed_config
from blendkit.format import BOTH
from blendkit.typed_config import (
    ConfigError,
    at_least,
    from_dict,
    one_of,
    positive,
    read_json_object,
    require,
    to_dict,
)
from blendkit.writer import write_atomic
from trainer import pixels
from trainer.data import DataConfig
from trainer.models import ModelConfig
from trainer.models.registry import DEFAULT_MODEL, MODEL_NAMES, check_outputs, outputs_for

AUTO = "auto"  # optim.grad_accum chosen by the trainer
# tiny's 900 steps are counted for the demo's training blends (the Makefile's DEMO_TRAIN_BLENDS)
TINY_SCHEDULE_BLENDS = 512
CONTROL_LR_SCALE = 0.01  # OptimConfig.control_lr_scale: the paper's SGD; tiny's Adam keeps 1
DERIVED_KEYS: dict[str, str] = {  # keys that may not be set directly, and what to set instead
    "data.batch_size": "is derived from optim.batch; set optim.batch instead",
    "preset": 'is set by --config (a preset name, or a JSON file\'s "preset" key)',
}
# Keys that may differ between a run's saved config and the config it is resumed with: the run
# folder's own place (a run moved or copied elsewhere resumes), where the keys came from, the
# pipe: opt-in, and the run's length and chores.
RESUMABLE_KEYS: frozenset[str] = frozenset(
    {
        "run_dir",
        "preset",
        "data.allow_pipe",
        "optim.steps",
        "optim.schedule_blends",
        "log_every",
        "ckpt_every",
        "keep_ckpts",
        "eval_every",
        "video_every",
        "progress",
        "peak_tflops",
        "device_memory_gb",
    }
)


@dataclass
class OptimConfig:
    """Optimiser and schedule. Defaults are the paper's (section 4, "Implementation details").

    SGD with momentum 0.9, initial learning rate 0.5 divided by 10 after 80k, 100k and 120k of
    124k iterations, batch 128. The paper gives no weight decay and no gradient clipping, so
    both default to off. ``name="adam"`` (betas 0.9/0.999) is offered for small CPU runs where
    SGD at a small batch is too slow to show progress; ``momentum`` is then ignored.
    """

    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.5
    momentum: float = 0.9
    weight_decay: float = 0.0
    # how the learning rate falls (``trainer.optim.make_scheduler``): "step", the paper's, times
    # ``gamma`` at each of ``milestones``; "cosine", not in the paper, from ``lr`` to 0 along half a
    # cosine over the last ``anneal`` of the steps (1: all of them after the warm-up), ``lr``
    # before them (``milestones`` must then be empty)
    decay: Literal["step", "cosine"] = "step"
    milestones: list[int] = field(default_factory=lambda: [80_000, 100_000, 120_000])
    gamma: float = 0.1
    anneal: float = 1.0
    # steps of a linear rise from lr / warmup to lr before the decay; not in the paper
    warmup: int = 0
    steps: int = 124_000
    batch: int = 128
    # "auto": the micro-batch that fits the device's memory (trainer.run_cost.resolve_grad_accum)
    grad_accum: int | Literal["auto"] = 1
    grad_clip: float = 0.0  # max global grad norm; 0 disables
    # the control regressor's learning rate over ``lr`` (C3 internal; ``trainer.optim``). Not in
    # the paper. At its SGD lr of 0.5 the regressor's loss L_reg diverged: 6 -> 706 in 15 steps
    # at width 1/16 on the CPU, 4.6e4 -> 4.2e8 in 13 steps at paper size on an H200
    # (``make bench-gpu``), while C2 on the same batches did not. On fresh random batches at width
    # 1/16 (40 steps), L_reg kept jumping between 2 and 8 at 1, settled noisily at 0.1 and fell
    # steadily from 4.2 to 0.3 at 0.01 and 0.001: 0.01 for SGD, not yet tried at paper size.
    control_lr_scale: float = CONTROL_LR_SCALE
    # the number of training blends ``steps`` and ``milestones`` are counted for: on shards of
    # more blends (of the kinds ``data.blend`` keeps) both stretch in proportion, so a run makes
    # as many passes over its data (``trainer.schedule``); 0: the steps as given, whatever the data
    schedule_blends: int = 0

    def __post_init__(self) -> None:
        positive(self, "lr", "steps", "batch", "control_lr_scale")
        at_least(self, 0, "schedule_blends", "warmup")
        require(
            self.decay == "step" or not self.milestones,
            "milestones",
            f"must be empty with decay=cosine, got {self.milestones}",
        )
        require(0 < self.anneal <= 1, "anneal", f"must be in (0, 1], got {self.anneal}")
        require(self.decay == "cosine" or self.anneal == 1, "anneal", "is for decay=cosine")
        if self.grad_accum != AUTO:
            positive(self, "grad_accum")
            require(
                self.batch % self.grad_accum == 0,
                "batch",
                f"must be divisible by grad_accum ({self.grad_accum}), got {self.batch}",
            )
        require(
            list(self.milestones) == sorted(set(self.milestones)),
            "milestones",
            f"must be strictly increasing, got {self.milestones}",
        )


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``RUN/config.json``.

    ``model_name`` is one of ``trainer.models.registry.MODEL_NAMES``. ``val_shards`` (a
    ``data.shards``-style spec; empty: no validation) is read in order without shuffling or
    remixing, and its first ``val_batches`` batches form the fixed validation set. Intervals are
    in optimiser steps; ``video_every`` logs example outputs.
    ``bf16`` (autocast) and ``channels_last`` (channels_last_3d) only act on CUDA.
    ``activation_checkpointing`` recomputes the encoder and decoder blocks in the backward pass.
    ``device="auto"`` takes CUDA when available. ``pixel_pool`` average-pools k x k pixels of
    every clip in the trainer, and ``data.frame_stride`` keeps every k-th frame in the loader;
    both 1 for the paper.
    ``cpu_threads`` > 0 sets torch's intra-op threads when training on the CPU (0: default).
    ``sync_batchnorm`` synchronises BatchNorm statistics across DDP ranks on CUDA (SyncBatchNorm),
    so that they are taken over the global micro-batch whatever the number of GPUs.
    ``peak_tflops`` and ``device_memory_gb`` (0: from ``trainer.devices`` and the driver) state
    the device's dense bf16 peak, for the MFU the trainer logs, and its memory, for
    ``optim.grad_accum=auto``.
    ``preset`` is the preset the config started from (``PRESETS``; see the module docstring).
    """

    preset: str = "paper"
    model_name: str = DEFAULT_MODEL
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(shards=""))
    optim: OptimConfig = field(default_factory=OptimConfig)
    val_shards: str = ""
    val_batches: int = 8
    run_dir: str = "runs/default"
    pixel_pool: int = 1
    cpu_threads: int = 0
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    sync_batchnorm: bool = True
    peak_tflops: float = 0.0
    device_memory_gb: float = 0.0
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    activation_checkpointing: bool = False
    log_every: int = 20
    ckpt_every: int = 1000
    keep_ckpts: int = 3
    eval_every: int = 2000
    video_every: int = 2000
    progress: bool = True

    def __post_init__(self) -> None:
        """Settings that cannot train; each message names the offending key (the sections
        check their own fields)."""
        one_of(self, "preset", PRESETS)
        one_of(self, "model_name", MODEL_NAMES)
        check_outputs(self.model.n_outputs, self.model_name, key="model.n_outputs")
        require(
            self.model.n_mels == self.data.n_mels,
            "model.n_mels",
            f"must equal data.n_mels ({self.data.n_mels}), got {self.model.n_mels}",
        )
        positive(self, "log_every", "ckpt_every", "eval_every", "video_every", "keep_ckpts")
        positive(self, "pixel_pool")
        at_least(self, 0, "cpu_threads", "peak_tflops", "device_memory_gb")


# ----------------------------------------------------------------------------- presets


def paper() -> TrainConfig:
    """The paper's setup: n = 4 outputs, 64x128x128 clips (set by the shards), batch 128, SGD,
    pixels in [-1, 1] (``model.pixel_range``: the range of its I3D pipeline, and the scale its
    learning rate of 0.5 is tuned for; ``trainer.pixels``).

    Clip size is a property of the shards (``blendkit make-shards`` writes 64-frame 128x128
    clips by default); the trainer takes whatever the shards hold.
    """
    model = dataclasses.replace(ModelConfig(), n_outputs=4, pixel_range=pixels.PAPER)
    return TrainConfig(model=model)


def tiny() -> TrainConfig:
    """A run that visibly learns on a 2-core CPU in minutes from the demo shards.

    What the paper does at scale, shrunk until a 2-core CPU gets through enough samples (the data
    side, ``tiny_data``, says what the stream does and what it cost):
    - clips subsampled to 8x32x32 (every 8th frame in the loader, which then converts only those
      frames; 4x4 pooling in the trainer): a step of 8 clips takes ~0.3 s instead of ~15 s for
      4 clips at 64x128x128 (trainer/bench_train.py);
    - width 1/4 of the paper's network (as fast as 1/8 at this size), m = 4 layers;
    - n = 4 outputs, as in the paper's Table 1 (c3_det takes the 2 of equation 5, ``load_config``).
      With n = 2, tiny C2 learnt which classes go to which output: it separated a blend of two
      classes sent to different outputs (~0.5x the identity) and hardly one of two classes sent
      to the same (~0.9x), and which classes shared an output changed with the seed, so its
      transparent ratio on the 24 validation blends ranged 0.63-0.77x over nine draws (demo data
      seeds 0-2 at 512 blends x training seeds 0-2; 2 over 0.7x). With four outputs to share
      seven classes out, the same nine draws gave 0.56-0.64x (occlusion 0.69-0.85x against
      0.84-0.99x), a C2 run taking 5.4-5.6 min instead of 5.2 (README, "How much the demo's C2
      depends on its draw");
    - ``model.input_skip``: outputs start near copies of the input (the identity baseline);
    - ``model.norm="group"``: GroupNorm instead of BatchNorm, whose running statistics from
      8-clip batches broke evaluation (trainer/models/norm.py);
    - masks gate the three skip levels but not the bottleneck (``model.mask_levels``): at 8x32x32
      the bottleneck is 1x1x1, so gating it scales each channel group by its mask's share of the
      whole clip; with it gated, tiny C2 fell back from 0.73x to 1.0x the identity baseline within
      100 steps (the mask-free c2_nomask did not);
    - equation 1 as in the paper (``model.mask_rescale`` off), though gating with m * M helped
      tiny C2 on occlusion blends (README, "What C2's masks cost at this scale");
    - Adam at 5e-4, divided by 10 late in the run, batch 8 (the paper's SGD at 0.5 is tuned for
      batch 128). On the earlier transparent-only demo, tiny C2's validation loss over the
      identity's at steps 200 / 400 / 600 was 0.78 / 0.78 / 0.82 at 1e-3 (0.78 / 0.78 / 0.77 with a
      decay to 3e-4 at step 400) and 0.71 / 0.63 / 0.66 at 5e-4 with no decay; at 3e-3 its training
      loss rose again after 200 steps. On the shards of x264 ``trellis=0`` (blendkit's default
      since), step 600 at 5e-4 gave 0.71 and 0.74 (seeds 0, 1) without the decay and 0.64, 0.68 and
      0.64 (seeds 0, 1, 2) with it. On nine draws of 512 blends (demo data seeds 0-2 x training
      seeds 0-2), with n = 2, this step decay gave 0.63-0.77x on transparent blends (2 over
      0.7x); a cosine decay (``optim.decay``, warm-up 50) 0.66-0.73x over the whole run (1 over),
      0.66-0.88x over its last third (1 over, the worst of all): not adopted (README, "How much
      the demo's C2 depends on its draw");
    - the 900 steps counted for the demo's 512 training blends (``optim.schedule_blends``,
      ``trainer.schedule``): on more blends the steps and the milestone stretch in proportion. With
      900 steps fixed, 1024 blends of demo data seed 0 gave C2 0.755x / 0.744x the identity on
      transparent blends (seeds 0, 1), its training loss higher than on 512 and its validation
      ratio flat after step 200; stretched to 1800 steps (lr / 10 at 1200), 0.643x / 0.682x
      (README, "How much the demo's C2 depends on its draw", gives every draw measured);
    - pixels in [0, 1] (``model.pixel_range``), where all of the above was tuned; its losses
      are computed there and logged in the paper's unit, [-1, 1], i.e. twice the computed value
      (``trainer.pixels``).
    """
    cfg = TrainConfig(
        preset="tiny",
        model=dataclasses.replace(
            ModelConfig(),
            n_outputs=4,
            width=0.25,
            input_skip=True,
            norm="group",
            mask_levels=("Conv3d_2c", "Mixed_3c", "Mixed_4f"),
            pixel_range=pixels.UNIT,
        ),
        optim=OptimConfig(
            name="adam",
            lr=5e-4,
            milestones=[600],
            steps=900,
            batch=8,
            control_lr_scale=1.0,
            schedule_blends=TINY_SCHEDULE_BLENDS,
        ),
        val_batches=3,
        run_dir="runs/tiny",
        pixel_pool=4,
        cpu_threads=1,
        bf16=False,
        log_every=10,
        ckpt_every=100,
        eval_every=200,
        video_every=200,
    )
    cfg.data = tiny_data(cfg.data)
    return cfg


def tiny_data(data: DataConfig) -> DataConfig:
    """``tiny``'s stream: ``data`` with what the demo shards need on a 2-core CPU.

    The ratios below were measured when tiny had n = 2 outputs (``tiny`` says why it has 4 now).

    - ``data.remix`` and ``data.augment``: fresh pairs and flipped / reversed clips every epoch
      (the demo then had 80 transparent mixtures of 160 clips; with remix alone the model memorised
      the clips: 0.84x identity on them, 1.00x on validation videos). No chroma symmetries
      (``data.augment_colour``): each demo class has its own hue (``blendkit.demo.palette``), which
      recolouring would take away; with them, tiny C2 at lr 1e-3 reached 0.80x in 600 steps,
      without 0.69x;
    - both blend kinds, evenly for the first 400 steps, then one occlusion blend kept in two
      (``data.occlusion_keep`` per 100-step loader epoch, i.e. per ``ckpt_every``): 900 steps, the
      learning rate divided by 10 at step 600. Tiny C2's validation loss over the identity's on
      the earlier demo shards of 160 blends (24 blends of each kind; transparent / occlusion) was
      0.64 / 1.09 after 600 steps on transparent blends only (the earlier tiny config: worse than
      the identity on occlusion), 0.75 / 0.83 on both kinds evenly (0.72 / 0.80 after 900 steps,
      0.69 / 0.77 after 1500), 0.71 / 0.98 with occlusion blends only from step 300 on, 0.68 /
      0.91 with one in four kept from step 300 on (600 steps), and 0.65 / 0.97 with one in four
      from step 400 (seed 1: 0.76 / 0.99). On today's 512 demo blends (``make demo-shards``) and
      on 512 blends of demo data seed 2, seeds 0 / 1 / data seed 2: one in four kept gave 0.66 /
      0.62 / 0.68 on transparent and 1.02 / 0.95 / 0.95 on occlusion blends, one in two 0.65 /
      0.65 / 0.69 and 0.99 / 0.88 / 0.87, every occlusion blend kept 0.73 / 0.93 (seed 0);
    - log-mel frames every 40 ms from 64 ms windows (``data.hop_length=640``, ``data.n_fft=1024``
      at 16 kHz) instead of every 10 ms from 32 ms: 64 frames a clip instead of 256 (the video has
      8). The audio nets at 256 frames cost more than the video encoder: a tiny C3 internal step
      (forward and backward) took 0.95 s against 0.55 s, and its 900 steps on 512 demo blends
      beside a C2 run 644 s against 430 s, with control accuracy 100% / 87.5% against 91.7% / 87.5%
      and losses 0.61x / 0.96x against 0.64x / 0.95x the identity (transparent / occlusion);
    - one torch thread, decoding in the trainer's process (``data.workers=0``) with every decoded
      sample kept (``data.cache_decoded``): the 512 demo blends are decoded once instead of ~14
      times each (two OpenMP threads beside a decoding worker on 2 cores ran 10x slower, not
      faster);
    """
    return dataclasses.replace(
        data,
        workers=0,
        cache_decoded=1024,  # about 1.4 MB each at this config: 1.4 GB at most
        frame_stride=8,
        remix=True,
        augment=True,
        augment_colour=False,
        blend=BOTH,
        occlusion_keep=(1.0, 1.0, 1.0, 1.0, 0.5),
        hop_length=640,
        n_fft=1024,
    )


PRESETS: dict[str, typing.Callable[[], TrainConfig]] = {"paper": paper, "tiny": tiny}


# ----------------------------------------------------------------------------- (de)serialisation


def apply_overrides(cfg: TrainConfig, overrides: typing.Iterable[str]) -> TrainConfig:
    """Return a copy of ``cfg`` with ``key=value`` overrides applied (and so validated)."""
    return typed_config.apply_overrides(cfg, overrides, DERIVED_KEYS)


def micro_batch(cfg: TrainConfig, world_size: int) -> int:
    """Per-rank samples per forward pass: optim.batch / (world_size * grad_accum)."""
    _require_resolved(cfg)
    per_step = cfg.optim.grad_accum * world_size
    if cfg.optim.batch % per_step:
        raise ConfigError(
            f"optim.batch ({cfg.optim.batch}) must be divisible by world_size * optim.grad_accum "
            f"({world_size} * {cfg.optim.grad_accum})"
        )
    return cfg.optim.batch // per_step


def segment_batches(cfg: TrainConfig) -> int:
    """Micro-batches per segment of a resampled stream: one checkpoint interval
    (``trainer.data.stream``)."""
    _require_resolved(cfg)
    return cfg.ckpt_every * cfg.optim.grad_accum


def _require_resolved(cfg: TrainConfig) -> None:
    if cfg.optim.grad_accum == AUTO:  # a bug, not bad input: the trainer resolves it first
        raise ValueError("optim.grad_accum=auto must be resolved (trainer.run_cost) first")


def load_config(
    spec: str,
    overrides: typing.Iterable[str] = (),
    *,
    notice: Callable[[str], None] | None = None,
) -> TrainConfig:
    """A preset name or a JSON file path (module docstring), then overrides. ``notice`` receives
    the one-line message saying which preset a partial file that names none starts from."""
    said = None
    if spec in PRESETS:
        cfg = PRESETS[spec]()
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"config {spec!r} is neither a preset {list(PRESETS)} nor a file")
        cfg, said = _from_file(path)
    cfg = apply_overrides(cfg, _exact_outputs(cfg, list(overrides)))
    if said and notice is not None:  # once the whole config is known to be good
        notice(said)
    return cfg


def _exact_outputs(cfg: TrainConfig, overrides: list[str]) -> list[str]:
    """``overrides``, led by ``model.n_outputs`` when the model they choose needs an exact n that
    ``cfg`` (a preset's n, the paper's 4 or tiny's 4) lacks and they do not set it themselves:
    ``--config tiny --model c3_det`` trains with the 2 outputs deterministic control needs."""
    keys = {k.strip(): v for k, _, v in (item.partition("=") for item in overrides)}
    name = keys.get("model_name", cfg.model_name)  # keys read as apply_overrides reads them
    if "model.n_outputs" in keys or name not in MODEL_NAMES:
        return overrides  # set by hand, or an unknown model: validation says what is wrong
    n = outputs_for(name, cfg.model.n_outputs)
    return overrides if n == cfg.model.n_outputs else [f"model.n_outputs={n}", *overrides]


def _from_file(path: Path) -> tuple[TrainConfig, str | None]:
    """The config of a JSON file (its preset's values, then the keys it sets), and the notice
    of a partial file that names no preset."""
    data = _upgraded(read_json_object(path))
    name = data.get("preset", "paper")
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"{path}: preset: expected one of {list(PRESETS)}, got {name!r}")
    base = to_dict(PRESETS[name]())
    try:
        cfg = from_dict(TrainConfig, _merged(base, data))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    unset = _leaves(base).keys() - _leaves(data).keys()
    if "preset" in data or not unset:
        return cfg, None
    return cfg, (
        f"{path} names no preset: the {len(unset)} keys it does not set take the paper "
        'preset\'s values (batch 128, full-width networks); add "preset": "tiny" to start '
        "from tiny"
    )


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf of a config tree."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def _merged(base: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the keys of ``data`` set (sections merged key by key)."""
    out = dict(base)
    for k, v in data.items():
        both = isinstance(v, dict) and isinstance(base.get(k), dict)
        out[k] = _merged(base[k], v) if both else v
    return out


# Values that saved configs of older versions may hold, under their dotted key, and what they are
# spelled now: a run's config.json must keep loading (to resume or evaluate it).
LEGACY_VALUES: dict[str, dict[Any, Any]] = {
    "data.blend": {"any": BOTH},  # every blend kind was "any" before blendkit.format.blends
}


def _upgraded(tree: dict[str, Any]) -> dict[str, Any]:
    """A config tree with its legacy values (``LEGACY_VALUES``) respelled."""
    for key, renames in LEGACY_VALUES.items():
        *sections, name = key.split(".")
        node: Any = tree
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict) and name in node and node[name] in renames:
            node[name] = renames[node[name]]
    return tree


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as indented JSON (atomically: a run killed meanwhile leaves the
    old file whole, so it still resumes)."""
    write_atomic(Path(path), (json.dumps(to_dict(cfg), indent=2, sort_keys=False) + "\n").encode())


def diff(a: TrainConfig, b: TrainConfig) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    fa, fb = _leaves(to_dict(a)), _leaves(to_dict(b))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
