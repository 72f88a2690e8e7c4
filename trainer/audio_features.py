"""Audio control features: the log-mel spectrogram of a clip's audio.

The paper (Sec. 3.2) follows [4]: "the log spectrogram of the raw audio signal is computed and
treated as an image" and fed to a VGG-like network. It does not give the parameters; we use a
torchaudio ``MelSpectrogram`` (power 2, centred frames, Hann window) and ``log(x + 1e-6)``, with
``n_mels``, ``n_fft`` and ``hop_length`` from ``DataConfig`` (64 / 512 / 160: 10 ms hops at
16 kHz).

The loader ships the decoded waveforms and ``trainer.data.device.prepare`` computes their log-mel
on the device, a batch at a time (``batch_log_mel``): on the loader's CPU cores it cost ~0.7 ms a
track, one core, about 5% of a worker's time per sample.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
import torchaudio

LOG_EPS = 1e-6


class MelParams(NamedTuple):
    """What a log-mel is computed with: the audio's rate and ``DataConfig``'s mel settings."""

    sample_rate: int
    n_mels: int
    n_fft: int
    hop_length: int


def n_frames(n_samples: int, hop_length: int) -> int:
    """Number of spectrogram frames for ``n_samples`` (centred frames, as torchaudio)."""
    return n_samples // hop_length + 1


@lru_cache(maxsize=8)
def _mel(
    sample_rate: int, n_mels: int, n_fft: int, hop_length: int, device: torch.device
) -> torch.nn.Module:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
    ).to(device)


def log_mel(
    samples: np.ndarray | torch.Tensor, sample_rate: int, n_mels: int, n_fft: int, hop_length: int
) -> torch.Tensor:
    """Mono float samples (N,) -> (1, n_mels, n_frames(N, hop_length)) float32 log-mel, or a batch
    (B, N) -> (B, 1, n_mels, frames), computed where the samples are (a numpy array: the CPU).

    A batch gives each row's log-mel exactly as one row alone would (on the CPU, bit for bit)."""
    if isinstance(samples, torch.Tensor):
        wave = samples.float()
    else:
        wave = torch.from_numpy(np.asarray(samples, np.float32))
    if wave.ndim not in (1, 2):
        raise ValueError(f"expected mono samples (N,) or (B, N), got shape {tuple(wave.shape)}")
    with torch.no_grad():
        mel = _mel(sample_rate, n_mels, n_fft, hop_length, wave.device)(wave)  # (..., n_mels, F)
    return torch.log(mel + LOG_EPS).unsqueeze(-3)  # (..., 1, n_mels, frames)


def batch_log_mel(
    waves: torch.Tensor, present: torch.Tensor, reversed_: torch.Tensor, params: MelParams
) -> torch.Tensor:
    """One track of a loader batch -> (B, 1, n_mels, frames) log-mel, on the batch's device.

    ``waves`` (B, N) are the stored waveforms (zeros where the track is absent); ``present`` (B,)
    bool is ``has_a*``: an absent track's features are zeros, the placeholder that keeps the
    batch rectangular. ``reversed_`` (B,) bool marks samples the loader reversed in time
    (``trainer.data.augment``): their features run backwards, frame by frame.
    """
    mel = log_mel(waves, *params)
    mel = torch.where(reversed_.view(-1, 1, 1, 1), mel.flip(-1), mel)
    return torch.where(present.view(-1, 1, 1, 1), mel, 0.0)
