"""Stage: group decoded samples into batches (dicts of stacked tensors)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypedDict

import torch
from torch.utils.data import default_collate

from trainer.audio_features import MelParams
from trainer.data.decoding import Sample


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack along a new batch dim; in a DataLoader worker ``default_collate`` stacks straight
    into shared memory, saving a copy of the (large) batch on its way to the main process."""
    return default_collate(tensors)


def _flags(values: list[bool]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool)


class Batch(TypedDict, total=False):
    """One batch of B samples of T frames at H x W: the one batch type of the trainer, as the
    loader yields it and as the device stage (``trainer.data.device.prepare``) hands it on.

    Videos stay uint8 Y, U, V planes, as stored, on their way to the device (4x less to stack,
    copy and ship than float); ``prepare`` converts them to float RGB and computes ``mix`` by
    equation 3 there, unless the batch carries the decoded ``mix.mp4``
    (``DataConfig.stored_mix``). Audio travels as waveforms: ``prepare`` replaces ``a*_wave``,
    ``a*_reversed`` and ``mel`` by the log-mel features ``a1`` and ``a2`` (B, 1, n_mels, frames),
    zeros where ``has_a*`` is False (``trainer.audio_features.batch_log_mel``). Batches injected
    by tests come in the device form: float RGB videos and ``a1`` / ``a2`` features.
    """

    mix: torch.Tensor  # (B, 3, T, H, W) uint8 YUV, only with stored_mix; float RGB on the device
    v1: torch.Tensor  # (B, 3, T, H, W) uint8 YUV; float RGB in [0, 1] on the device
    v2: torch.Tensor  # (B, 3, T, H, W) uint8 YUV; float RGB in [0, 1] on the device
    alpha: torch.Tensor  # (B, 1, T, H, W) float16 in [0, 1] (trainer.data.decoding)
    a1_wave: torch.Tensor  # (B, N) float32 waveform of V1's audio, zeros where has_a1 is False
    a2_wave: torch.Tensor  # (B, N) float32
    has_a1: torch.Tensor  # (B,) bool
    has_a2: torch.Tensor  # (B,) bool
    a1_reversed: torch.Tensor  # (B,) bool: time-reversed by augmentation, features run backwards
    a2_reversed: torch.Tensor  # (B,) bool
    mel: list[MelParams]  # the audio rate and log-mel settings of each sample
    a1: torch.Tensor  # (B, 1, n_mels, frames) log-mel of V1's audio, on the device (prepare)
    a2: torch.Tensor  # (B, 1, n_mels, frames) log-mel of V2's audio, on the device
    blend: list[str]
    key: list[str]


def collate(samples: list[Sample]) -> Batch:
    """Stack samples that share one shape (one shard set is written with one config)."""
    stored = [s.mix is not None for s in samples]
    if any(stored) and not all(stored):
        raise ValueError("some samples carry a stored mix and some do not")
    try:
        batch = Batch(
            v1=_stack([s.v1 for s in samples]),
            v2=_stack([s.v2 for s in samples]),
            alpha=_stack([s.alpha for s in samples]),
            a1_wave=_stack([s.a1_wave for s in samples]),
            a2_wave=_stack([s.a2_wave for s in samples]),
            has_a1=_flags([s.has_a1 for s in samples]),
            has_a2=_flags([s.has_a2 for s in samples]),
            a1_reversed=_flags([s.a1_reversed for s in samples]),
            a2_reversed=_flags([s.a2_reversed for s in samples]),
            mel=[s.mel for s in samples],
            blend=[s.blend for s in samples],
            key=[s.key for s in samples],
        )
        if all(stored):
            batch["mix"] = _stack([s.mix for s in samples])
        return batch
    except RuntimeError as exc:
        keys = [s.key for s in samples]
        raise ValueError(f"samples {keys} have different shapes; mixed shard sets?") from exc


def batched(samples: Iterable[Sample], *, batch_size: int) -> Iterator[Batch]:
    """Batches of ``batch_size``; the last one of a finite stream may be smaller (a single pass
    must see every sample)."""
    group: list[Sample] = []
    for sample in samples:
        group.append(sample)
        if len(group) == batch_size:
            yield collate(group)
            group = []
    if group:
        yield collate(group)
