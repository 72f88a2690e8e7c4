"""Control regressor for C3 with internal prediction (Sec. 3.2 and 3.3, eq. 6).

Paper: the network outputs n real values s_i, the predicted dissimilarity between the desired
video (the one whose audio is given) and each output O_i; the attended output is argmin_i s_i.
It is trained with L_reg = sum_i |s_i - l(V1, sg(O_i))|, and "its training is not allowed to
influence the output videos themselves". Appendix B's figure of the regressor is not in the
text, so the design below is ours.

Design: each output video is embedded by a small shared 3D CNN (strided Conv3d + BN + ReLU,
global average pool); a clip context is the pooled visual bottleneck concatenated with pooled
audio features; an MLP on [context, embedding_i] gives s_i (no output activation: a plain
regression to a loss value).

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
        self, visual_channels: int, audio_channels: int, widths: tuple[int, ...], hidden: int
    ) -> None:
        super().__init__()
        self.video_encoder = OutputEncoder(widths)
        in_features = visual_channels + audio_channels + self.video_encoder.out_channels
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)
        )

    def forward(self, outputs: Tensor, visual: Tensor, audio: Tensor) -> Tensor:
        # outputs (B, n, 3, T, H, W); visual (B, C_v, T_b, H_b, W_b); audio (B, C_a, F', T')
        b, n = outputs.shape[:2]
        videos = outputs.detach().flatten(0, 1) * 2 - 1  # (B*n, 3, T, H, W)  sg(O_i), eq. 6
        embed = self.video_encoder(videos).reshape(b, n, -1)  # (B, n, C_e)
        context = torch.cat(
            [visual.detach().mean(dim=(2, 3, 4)), audio.mean(dim=(2, 3))], dim=1
        )  # (B, C_v + C_a)
        x = torch.cat([context[:, None].expand(-1, n, -1), embed.to(context.dtype)], dim=2)
        return self.mlp(x).squeeze(2)  # (B, n)
