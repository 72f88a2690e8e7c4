"""Networks of the paper: Centrifuge, CentrifugePC, C2 (w/o masking) and C3 (two controls).

``build_model(name, cfg)`` assembles small modules (``i3d``, ``masking``, ``decoder``,
``composition``, ``audio``, ``control``) into one ``DecompositionNet`` code path (two of them
for ``centrifuge_pc``). Every model is called as ``model(video, audio=None) -> ModelOutput``
with video (B, 3, T, H, W) in ``cfg.pixel_range`` (T % 8 == 0, H, W % 32 == 0; the ranges are
``trainer.pixels``) and audio a log-mel spectrogram (B, 1, n_mels, frames) for the audio
models, None otherwise.

The variants (which modules each has, its control kind) are listed once, in
``trainer.models.registry``; the paper's sizes are in ``trainer.paper``.

Output activation: Centrifuge outputs go through a sigmoid; C2/C3 layers go through a sigmoid
and beta through a softmax over the m layers, so outputs are convex combinations of layers in
[0, 1] and eq. 2 holds exactly (no clamp anywhere). ``DecompositionNet`` maps the sigmoid's
[0, 1] affinely onto the run's pixel range (itself for [0, 1]), which keeps both properties.

How the sizes match Table 1 (paper size: n = m = 4, width 1.0; ``python -m trainer.params``):
the I3D encoder without logits is fixed at 12.29M. Table 1 leaves 22.6 - 12.3 = 10.3M for the
Centrifuge decoder, so ``decoder_widths = (192, 128, 96, 64, 32)`` (one up-conv + one 3x3x3
conv per stage) gives 10.18M and Centrifuge 22.47M (-0.6%). CentrifugePC is two Centrifuges,
the second with a 15-channel stem (45.20M, -0.4%). C2 w/o masking adds the beta head to the
layer generator (22.49M, -3.9%: the paper's layer generator is 0.8M bigger than its Centrifuge
decoder, but how is not said). C2's masking adds 27.1 - 23.4 = 3.7M, which we spend on a
mask generator decoder of ``mask_widths = (64, 64, 64, 32, 16)`` (3.56M; C2 26.05M, -3.9%).
n and m change only the heads, so the counts barely depend on them.

Where the paper is silent we chose (and document in each module): gated levels (all four
decoder inputs by default, ``mask_levels``), mask resolution (full, ``len(mask_widths)``),
per-pixel beta (``beta_mode``), the control regressor design and its own audio net
(``control_audio``), and the audio net widths of [4].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from blendkit.typed_config import ConfigError, one_of, positive, require
from trainer import pixels
from trainer.models.audio import AudioNet, AudioVisualFusion
from trainer.models.composition import Composition, LayerHead, ScalarBetaHead
from trainer.models.control import ControlRegressor
from trainer.models.decoder import UNetDecoder, VideoHead
from trainer.models.i3d import FEATURE_LEVELS, I3DEncoder, scale_channels
from trainer.models.masking import FeatureGating, MaskGenerator
from trainer.models.network import AudioModules, DecompositionNet, ModelOutput, PredictorCorrector
from trainer.models.norm import NORMS, convert_to_group_norm
from trainer.models.registry import (
    CONTROLS,
    INTERNAL,
    NO_CONTROL,
    Variant,
    check_outputs,
    variant,
)

__all__ = [
    "ModelConfig",
    "ModelOutput",
    "build_model",
    "count_parameters",
    "resolve_config",
    "to_channels_last",
]

BETA_MODES = ("pixel", "scalar")


@dataclass
class ModelConfig:
    """Sizes and options; ``resolve_config`` fills ``audio`` and ``control`` from the name."""

    n_outputs: int = 4  # n output videos
    n_layers: int = 4  # m layers (and masks)
    width: float = 1.0  # channel multiplier for every module (rounded to multiples of 8)
    audio: bool | None = None  # None: True for c3_*, else False; True on others adds fusion only
    control: str | None = None  # none|deterministic|internal; None: from the name
    n_mels: int = 64  # mel bands of the audio input
    beta_mode: str = "pixel"  # pixel: beta (B,n,m,T,H,W); scalar: beta (B,n,m)
    mask_levels: tuple[str, ...] = FEATURE_LEVELS  # I3D levels gated by the masks (eq. 1)
    mask_rescale: bool = False  # gate with m * M: a uniform mask passes features (not in the paper)
    decoder_widths: tuple[int, ...] = (192, 128, 96, 64, 32)  # layer generator / decoder
    mask_widths: tuple[int, ...] = (64, 64, 64, 32, 16)  # 5 stages: masks at full resolution
    audio_widths: tuple[int, ...] = (64, 128, 256, 512)  # VGG blocks of the audio net
    beta_hidden: int = 512  # hidden units of the scalar beta MLP
    control_widths: tuple[int, ...] = (32, 64, 128)  # output-video encoder of the regressor
    control_hidden: int = 256  # hidden units of the regressor MLP
    control_audio_bins: int = 4  # frequency bands of the audio features the regressor keeps
    control_audio: str = "own"  # own: regressor has its own audio net; shared: not detached
    input_skip: bool = False  # heads correct the input in logit space (not in the paper)
    norm: str = "batch"  # batch (the paper's I3D) | group: GroupNorm, for small batches (norm.py)
    # the range of the videos the model takes and gives and the loss sees (trainer.pixels):
    # "[-1,1]" (the paper's, the paper preset) or "[0,1]", the default because every run before
    # this option used it, so their saved configs load as what they were
    pixel_range: str = pixels.LEGACY

    def __post_init__(self) -> None:
        check_outputs(self.n_outputs)
        positive(self, "n_layers", "width")
        one_of(self, "norm", NORMS)
        one_of(self, "pixel_range", pixels.PIXEL_RANGES)
        one_of(self, "beta_mode", BETA_MODES)
        one_of(self, "control_audio", ("own", "shared"))
        if self.control is not None:
            one_of(self, "control", CONTROLS)
        unknown = sorted(set(self.mask_levels) - set(FEATURE_LEVELS))
        require(not unknown, "mask_levels", f"unknown {unknown}; choose from {FEATURE_LEVELS}")
        require(
            len(self.decoder_widths) == 5,
            "decoder_widths",
            f"needs 5 stages (full resolution), got {self.decoder_widths}",
        )
        require(
            not self.audio or self.n_mels >= 8,
            "n_mels",
            f"must be at least 8 for the audio net, got {self.n_mels}",
        )


def resolve_config(name: str, cfg: ModelConfig) -> ModelConfig:
    """The config with ``audio``/``control`` set for ``name``; raises ``ConfigError`` on
    contradictions."""
    control = variant(name).control
    if cfg.control is not None and cfg.control != control:
        raise ConfigError(f"model {name!r} has control {control!r}, cfg says {cfg.control!r}")
    controlled = control != NO_CONTROL
    if controlled and cfg.audio is False:
        raise ConfigError(f"model {name!r} is controlled by audio; cfg.audio cannot be False")
    return replace(cfg, audio=controlled or bool(cfg.audio), control=control)


def build_model(name: str, cfg: ModelConfig) -> nn.Module:
    """The model ``name`` (one of ``registry.MODEL_NAMES``) at the sizes of ``cfg``."""
    cfg = resolve_config(name, cfg)
    kind = variant(name)
    if kind.predictor_corrector:
        predictor = _build_net(cfg, kind, in_channels=3)
        corrector = _build_net(cfg, kind, in_channels=3 + 3 * cfg.n_outputs)
        model: nn.Module = PredictorCorrector(predictor, corrector)
    else:
        model = _build_net(cfg, kind, in_channels=3)
    return convert_to_group_norm(model) if cfg.norm == "group" else model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(p.numel() for p in model.parameters())


def to_channels_last(model: nn.Module) -> nn.Module:
    """Puts 5-D weights in ``channels_last_3d`` and 4-D ones (audio net) in ``channels_last``.

    ``model.to(memory_format=torch.channels_last_3d)`` raises on the audio net's 4-D Conv2d
    weights, so use this instead; inputs are converted by the caller. Returns ``model``.
    """
    for p in model.parameters():
        if p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
        elif p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return model


def _widths(widths: tuple[int, ...], width: float) -> tuple[int, ...]:
    return tuple(scale_channels(w, width) for w in widths)


def _build_net(cfg: ModelConfig, variant: Variant, in_channels: int) -> DecompositionNet:
    encoder = I3DEncoder(in_channels, cfg.width)
    channels = encoder.channels
    mask_generator = gating = None
    if variant.masking:
        for level in cfg.mask_levels:
            if channels[level] % cfg.n_layers:
                msg = f"{level} has {channels[level]} channels, not a multiple of m={cfg.n_layers}"
                raise ValueError(msg)
        mask_generator = MaskGenerator(channels, _widths(cfg.mask_widths, cfg.width), cfg.n_layers)
        gating = FeatureGating(cfg.n_layers, tuple(cfg.mask_levels), cfg.mask_rescale)
    audio = None
    bottleneck = channels["Mixed_5c"]
    if cfg.audio:
        audio_widths = _widths(cfg.audio_widths, cfg.width)
        own = variant.control == INTERNAL and cfg.control_audio == "own"
        audio = AudioModules(
            AudioNet(audio_widths), AudioVisualFusion(), AudioNet(audio_widths) if own else None
        )
        bottleneck += audio.net.out_channels
    decoder = UNetDecoder(bottleneck, channels, _widths(cfg.decoder_widths, cfg.width))
    composition = beta_head = None
    if variant.composition:
        pixel = cfg.beta_mode == "pixel"
        head = LayerHead(
            decoder.out_channels, cfg.n_layers, cfg.n_outputs, pixel_beta=pixel,
            input_skip=cfg.input_skip,
        )  # fmt: skip
        composition = Composition()
        if not pixel:
            hidden = scale_channels(cfg.beta_hidden, cfg.width)
            beta_head = ScalarBetaHead(bottleneck, cfg.n_outputs, cfg.n_layers, hidden)
    else:
        head = VideoHead(decoder.out_channels, cfg.n_outputs, input_skip=cfg.input_skip)
    control = None
    if variant.control == INTERNAL:
        control = ControlRegressor(
            channels["Mixed_5c"],
            audio.net.out_channels,
            _widths(cfg.control_widths, cfg.width),
            scale_channels(cfg.control_hidden, cfg.width),
            audio_bins=cfg.control_audio_bins,
        )
    return DecompositionNet(
        encoder,
        decoder,
        head,
        composition=composition,
        beta_head=beta_head,
        mask_generator=mask_generator,
        gating=gating,
        audio=audio,
        control=control,
        n_mels=cfg.n_mels if cfg.audio else None,
        pixel_range=cfg.pixel_range,
    )
