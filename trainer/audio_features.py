"""Audio control features: the log-mel spectrogram of a clip's audio.

The paper (Sec. 3.2) follows [4]: "the log spectrogram of the raw audio signal is computed and
treated as an image" and fed to a VGG-like network. It does not give the parameters; we use a
torchaudio ``MelSpectrogram`` (power 2, centred frames, Hann window) and ``log(x + 1e-6)``, with
``n_mels``, ``n_fft`` and ``hop_length`` from ``DataConfig`` (64 / 512 / 160: 10 ms hops at
16 kHz).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio

LOG_EPS = 1e-6


def n_frames(n_samples: int, hop_length: int) -> int:
    """Number of spectrogram frames for ``n_samples`` (centred frames, as torchaudio)."""
    return n_samples // hop_length + 1


@lru_cache(maxsize=8)
def _mel(sample_rate: int, n_mels: int, n_fft: int, hop_length: int) -> torch.nn.Module:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
    )


def log_mel(
    samples: np.ndarray | torch.Tensor, sample_rate: int, n_mels: int, n_fft: int, hop_length: int
) -> torch.Tensor:
    """Mono float samples (N,) -> (1, n_mels, n_frames(N, hop_length)) float32 log-mel."""
    wave = torch.as_tensor(np.asarray(samples, np.float32))
    if wave.ndim != 1:
        raise ValueError(f"expected mono samples (N,), got shape {tuple(wave.shape)}")
    with torch.no_grad():
        mel = _mel(sample_rate, n_mels, n_fft, hop_length)(wave)  # (n_mels, frames)
    return torch.log(mel + LOG_EPS).unsqueeze(0)  # (1, n_mels, frames)


def silent_log_mel(n_samples: int, n_mels: int, hop_length: int) -> torch.Tensor:
    """Zeros shaped like ``log_mel`` of ``n_samples``: the placeholder for an absent track (the
    batch's ``has_a*`` flag says it is absent; zeros keep the batch rectangular)."""
    return torch.zeros(1, n_mels, n_frames(n_samples, hop_length))
