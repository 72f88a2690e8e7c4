"""Control regressor for C3 with internal prediction (Sec. 3.2 and 3.3, eq. 6).

Paper: the network outputs n real values s_i, the predicted dissimilarity between the desired
video (the one whose audio is given) and each output O_i; the attended output is argmin_i s_i.
It is trained with L_reg = sum_i |s_i - l(V1, sg(O_i))|, and "its training is not allowed to
influence the output videos themselves". Appendix B's figure of the regressor is not in the
text, so the design below is ours.

Design: each output video is embedded by a small shared 3D CNN (strided Conv3d + BN + ReLU,
global average pool); the sound a is the audio features averaged over time and pooled to
``audio_bins`` frequency bands, kept apart (averaged over frequency too, a 220 Hz tone and a
440 Hz one look alike to a convolutional net); a clip context is the pooled visual bottleneck
concatenated with a. s_i is the sum of two terms (no output activation: a plain regression to a
loss value):

* an MLP on [context, embedding_i]: how large the losses of this clip are;
* a bilinear match between the sound and output i, <A a, E e_i> / sqrt(d): how well output i
  fits the sound, which is what argmin_i s_i must get right, and what an MLP on the
  concatenation learns only slowly.

Measured with tiny C3 (in-memory demo clips, 400 steps, 28 validation pairs): the MLP alone on
frequency-averaged audio chose right 39-75% of the time over the run (chance: 50%); with the match
term and 4 bands, 57-89% (89% at the end).

Stop-gradient, made explicit here rather than left to the loss: the regressor ``detach()``es
the output videos and the visual bottleneck it reads, so neither L_reg nor anything else
computed from ``s`` can reach the encoder, mask generator, layer generator or decoder. The
audio features it reads come from its own ``AudioNet`` by default (``control_audio="own"`` in
``ModelConfig``), which makes the isolation complete: the gradient of s w.r.t. every parameter
that produces the outputs is None. ``control_audio="shared"`` instead feeds it the shared audio
net's features *without* detaching, so the shared audio net also learns from L_reg (and, through
the fusion, that does change the outputs: a weaker reading of the paper's stop-gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.models.i3d import Unit3d


class OutputEncoder(nn.Module):
    """Small 3D CNN: one RGB video (B, 3, T, H, W) -> embedding (B, widths[-1])."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers = []
        c = 3
        for width in widths:
            layers.append(Unit3d(c, width, (3, 3, 3), (2, 2, 2)))
            c = width
        self.body = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, video: Tensor) -> Tensor:
        return self.body(video).mean(dim=(2, 3, 4))  # (B, C_e)


class ControlRegressor(nn.Module):
    """(outputs, visual bottleneck, audio features) -> scores s (B, n); argmin_i s_i is attended."""

    def __init__(
        self,
        visual_channels: int,
        audio_channels: int,
        widths: tuple[int, ...],
        hidden: int,
        audio_bins: int = 1,
    ) -> None:
        super().__init__()
        self.video_encoder = OutputEncoder(widths)
        self.audio_bins = audio_bins
        audio_channels *= audio_bins
        in_features = visual_channels + audio_channels + self.video_encoder.out_channels
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)
        )
        self.audio_key = nn.Linear(audio_channels, hidden, bias=False)
        self.video_key = nn.Linear(self.video_encoder.out_channels, hidden, bias=False)

    def forward(self, outputs: Tensor, visual: Tensor, audio: Tensor) -> Tensor:
        # outputs (B, n, 3, T, H, W); visual (B, C_v, T_b, H_b, W_b); audio (B, C_a, F', T')
        b, n = outputs.shape[:2]
        videos = outputs.detach().flatten(0, 1) * 2 - 1  # (B*n, 3, T, H, W)  sg(O_i), eq. 6
        embed = self.video_encoder(videos).reshape(b, n, -1)  # (B, n, C_e)
        sound = F.adaptive_avg_pool2d(audio, (self.audio_bins, 1)).flatten(1)  # (B, C_a * bins)
        context = torch.cat([visual.detach().mean(dim=(2, 3, 4)), sound], dim=1)  # (B, C_v + C_a')
        embed = embed.to(context.dtype)
        x = torch.cat([context[:, None].expand(-1, n, -1), embed], dim=2)  # (B, n, C)
        level = self.mlp(x).squeeze(2)  # (B, n)
        key = self.audio_key(sound)  # (B, d)
        match = (self.video_key(embed) * key[:, None]).sum(2) / key.shape[1] ** 0.5  # (B, n)
        return level + match  # (B, n)
