"""Figure 10: control accuracy when the control audio is shifted in time against the video.

The shards store only the clip's own audio window, so a shift is a circular roll of the log-mel
of V1's audio: audio that leaves the end of the clip comes back at its start. Content is kept
(what the paper's test of semantic vs. synchronisation cues needs) but, unlike the paper's shift
of the audio window along the source video, an offset of one clip length (2.56 s) wraps back to
(almost: frames = samples/hop + 1) the unshifted audio; the largest misalignment is at half a
clip.
"""

from __future__ import annotations

from torch import Tensor, nn

from trainer.data.batch import Batch
from trainer.losses import pairwise_loss
from trainer.metrics import chosen_output, control_correct

# Figure 10's offsets of the control audio: 0 to 2.56 s (one 64-frame clip at 25 fps).
DEFAULT_OFFSETS_S: tuple[float, ...] = (0.0, 0.32, 0.64, 0.96, 1.28, 1.6, 1.92, 2.24, 2.56)
METHOD = "circular roll of the log-mel of V1's audio (trainer.eval.audio_shift.roll_audio)"


def shift_frames(offset_s: float, audio_rate: int, hop_length: int) -> int:
    """Log-mel frames spanned by ``offset_s`` seconds of audio (one frame per hop)."""
    return round(offset_s * audio_rate / hop_length)


def roll_audio(a1: Tensor, offset_s: float, audio_rate: int, hop_length: int) -> Tensor:
    """Figure 10's shifted control signal: ``a1`` (B, 1, n_mels, frames) rolled circularly in
    time by ``shift_frames(offset_s)`` frames, so log-mel frame f moves to f + shift (mod frames).
    """
    return a1.roll(shifts=shift_frames(offset_s, audio_rate, hop_length), dims=-1)


def shifted_correct(
    model: nn.Module,
    control: str,
    batch: Batch,
    offsets_s: tuple[float, ...],
    audio_rate: int,
    hop: int,
    has_audio: Tensor,
) -> list[list[bool | None]]:
    """Control correctness at each offset of the control audio: (offsets) x (B) bool, None where
    V1 has no audio. ``control`` is the model's control kind."""
    result = []
    for offset in offsets_s:
        a1 = roll_audio(batch["a1"], offset, audio_rate, hop)
        out = model(batch["mix"], a1)
        to_v1 = pairwise_loss(out.outputs.float(), batch["v1"].unsqueeze(1)).squeeze(2)  # (B, n)
        scores = out.scores.float() if out.scores is not None else None
        chosen = chosen_output(control, scores, batch_size=to_v1.shape[0]).to(to_v1.device)
        correct = control_correct(to_v1, chosen)
        result.append(
            [bool(c) if bool(h) else None for c, h in zip(correct, has_audio, strict=True)]
        )
    return result
