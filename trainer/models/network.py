"""The composed networks: ``DecompositionNet`` (Centrifuge, C2, C3) and ``PredictorCorrector``.

Every variant runs the same code path: I3D encoder -> [mask generator + channel gating] ->
[audio net + fusion] -> U-Net decoder -> video head (Centrifuge) or layer generator head +
composition (C2/C3) -> [control regressor]. Bracketed modules are ``None`` when absent. The
modules are built by ``trainer.models.build_model`` and handed in.

The video input and the outputs are in the model's pixel range (``ModelConfig.pixel_range``,
``trainer.pixels``); the encoder sees the input in [-1, 1] (I3D's usual range). The heads work in
[0, 1] (sigmoids, convex combinations, ``input_skip``'s logit of the input) and their results
are mapped onto the range at the end: an affine map, so outputs stay convex combinations of the
layers (eq. 2) and ``input_skip``'s outputs start at the input exactly as in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer import pixels
from trainer.models.audio import AudioNet, AudioVisualFusion
from trainer.models.composition import Composition, LayerHead, ScalarBetaHead
from trainer.models.control import ControlRegressor
from trainer.models.decoder import UNetDecoder, VideoHead
from trainer.models.i3d import I3DEncoder
from trainer.models.masking import FeatureGating, MaskGenerator


@dataclass
class ModelOutput:
    """What every model returns; fields a variant does not produce are None."""

    outputs: Tensor  # (B, n, 3, T, H, W) in the model's pixel range
    layers: Tensor | None = None  # (B, m, 3, T, H, W)  C2/C3, in the pixel range too
    beta: Tensor | None = None  # (B, n, m) scalar or (B, n, m, T, H, W) pixel mode  C2/C3
    masks: Tensor | None = None  # (B, m, T, H, W)  C2/C3 with masking, upsampled to full size
    scores: Tensor | None = None  # (B, n)  control regressor s (c3_internal)
    predictor: Tensor | None = None  # (B, n, 3, T, H, W)  centrifuge_pc's first stage


@dataclass
class AudioModules:
    """Audio net + fusion for the decoder, and the audio net the control regressor reads."""

    net: AudioNet
    fusion: AudioVisualFusion
    control_net: AudioNet | None = None  # None: the regressor reads ``net``'s features


class DecompositionNet(nn.Module):
    """One encoder-decoder; ``head``: a ``VideoHead``, or a ``LayerHead`` with ``composition``."""

    def __init__(
        self,
        encoder: I3DEncoder,
        decoder: UNetDecoder,
        head: VideoHead | LayerHead,
        *,
        composition: Composition | None = None,
        beta_head: ScalarBetaHead | None = None,
        mask_generator: MaskGenerator | None = None,
        gating: FeatureGating | None = None,
        audio: AudioModules | None = None,
        control: ControlRegressor | None = None,
        n_mels: int | None = None,
        pixel_range: str = pixels.LEGACY,
    ) -> None:
        super().__init__()
        if (mask_generator is None) != (gating is None):
            raise ValueError("mask_generator and gating go together")
        if control is not None and audio is None:
            raise ValueError("the control regressor needs the audio modules")
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.composition, self.beta_head = composition, beta_head
        self.mask_generator, self.gating = mask_generator, gating
        self.audio_net = audio.net if audio else None
        self.fusion = audio.fusion if audio else None
        self.control_audio_net = audio.control_net if audio else None
        self.control = control
        self.n_mels = n_mels
        self.pixel_range = pixels.check(pixel_range)

    def control_parameters(self) -> list[nn.Parameter]:
        """The parameters that learn from L_reg alone: the control regressor and its own audio
        net (none without internal control). ``trainer.optim`` gives them their learning rate."""
        parts = (self.control, self.control_audio_net)
        return [p for part in parts if part is not None for p in part.parameters()]

    def forward(self, video: Tensor, audio: Tensor | None = None) -> ModelOutput:
        self._check_inputs(video, audio)
        encoded = pixels.convert(video, self.pixel_range, pixels.I3D_INPUT)
        features = self.encoder(encoded)  # level -> (B, C_l, T_l, H_l, W_l)
        masks = None
        if self.mask_generator is not None:
            masks = self.mask_generator(features)  # (B, m, T', H', W')
            features = self.gating(features, masks)  # eq. 1 on the chosen levels
        visual = features["Mixed_5c"]  # (B, C_b, T/8, H/32, W/32)
        audio_features = self.audio_net(audio) if self.audio_net is not None else None
        bottleneck = visual if self.fusion is None else self.fusion(visual, audio_features)
        x = self.decoder(bottleneck, features)  # (B, w, T, H, W)
        # V in [0, 1] for input_skip (a corrector's input is [V, predictor outputs])
        rgb = pixels.convert(video[:, :3], self.pixel_range, pixels.UNIT)
        layers = beta = None
        if self.composition is None:
            outputs = self.head(x, rgb)  # (B, n, 3, T, H, W)
        else:
            layers, beta = self.head(x, rgb)  # (B, m, 3, T, H, W), (B, n, m, T, H, W) or None
            if self.beta_head is not None:
                beta = self.beta_head(bottleneck)  # (B, n, m)
            outputs = self.composition(layers, beta)  # eq. 2: (B, n, 3, T, H, W)
        scores = None
        if self.control is not None:
            control_audio = audio_features
            if self.control_audio_net is not None:
                control_audio = self.control_audio_net(audio)  # (B, C_a, F', T')
            scores = self.control(outputs, visual, control_audio)  # (B, n)
        if masks is not None and masks.shape[2:] != video.shape[2:]:
            masks = F.interpolate(masks, size=video.shape[2:], mode="trilinear")  # (B, m, T, H, W)
        outputs = pixels.convert(outputs, pixels.UNIT, self.pixel_range)  # heads gave [0, 1]
        if layers is not None:
            layers = pixels.convert(layers, pixels.UNIT, self.pixel_range)
        return ModelOutput(outputs, layers, beta, masks, scores)

    def _check_inputs(self, video: Tensor, audio: Tensor | None) -> None:
        in_channels = self.encoder.in_channels
        if video.dim() != 5 or video.shape[1] != in_channels:
            raise ValueError(f"video must be (B, {in_channels}, T, H, W), got {tuple(video.shape)}")
        if self.audio_net is None:
            if audio is not None:
                raise ValueError("this model takes no audio; pass audio=None")
            return
        if audio is None:
            raise ValueError("this model needs the audio log-mel spectrogram")
        if audio.dim() != 4 or audio.shape[1] != 1 or audio.shape[2] != self.n_mels:
            shape = tuple(audio.shape)
            raise ValueError(f"audio must be (B, 1, {self.n_mels}, frames), got {shape}")
        if audio.shape[0] != video.shape[0]:
            raise ValueError(f"batch sizes differ: video {video.shape[0]}, audio {audio.shape[0]}")


class PredictorCorrector(nn.Module):
    """CentrifugePC [3]: a second network sees the input and the first one's outputs.

    The corrector's input is [V, O^pred_1, ..., O^pred_n] concatenated on channels
    (B, 3 + 3n, T, H, W); its outputs are the model's outputs, the predictor's are kept in
    ``ModelOutput.predictor``. Gradients flow through both stages (trained end to end).
    """

    def __init__(self, predictor: DecompositionNet, corrector: DecompositionNet) -> None:
        super().__init__()
        self.predictor, self.corrector = predictor, corrector

    def forward(self, video: Tensor, audio: Tensor | None = None) -> ModelOutput:
        first = self.predictor(video, audio).outputs  # (B, n, 3, T, H, W)
        stacked = torch.cat([video, first.flatten(1, 2).to(video.dtype)], dim=1)  # (B, 3+3n, ...)
        return replace(self.corrector(stacked, audio), predictor=first)
