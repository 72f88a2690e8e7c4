"""Stage on the device: a loader batch as the model takes it (the last stage of the stream).

Used by training, its validation, evaluation and Table 3's classifier alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer import pixels
from trainer.audio_features import batch_log_mel
from trainer.colour import yuv_to_rgb
from trainer.data.batch import Batch

VIDEO_KEYS = ("mix", "v1", "v2", "alpha")  # (B, C, T, H, W) members subsampled together


def prepare(
    batch: Batch, device: torch.device, *, pixel_pool: int, pixel_range: str, channels_last: bool
) -> Batch:
    """A loader batch on the device as the model takes it: float RGB videos (``mix``, ``v1``,
    ``v2``) in ``pixel_range`` (``trainer.pixels``; the run's ``model.pixel_range``), ``mix``
    by equation 3 when the loader did not decode the stored one, clips pooled, channels_last_3d
    if asked. ``alpha`` stays in [0, 1].

    The loader ships uint8 Y, U, V planes as stored (4x less to stack and copy than float, and
    no colour conversion on its CPU cores) and alpha as float16, and leaves the conversion to RGB
    (``trainer.colour``) and equation 3 to the device. ``pixel_pool`` average-pools k x k
    pixels after the mix is formed (1 for the paper; frames are subsampled in the loader,
    ``data.frame_stride``).
    Float videos (tests, injected batches) are taken as RGB in [0, 1], as the loader's are;
    non-tensors pass through. Audio comes as waveforms (``a*_wave``, with ``mel``): their
    log-mel features ``a1`` and ``a2`` are computed here, a batch at a time
    (``batch_log_mel``); batches that already carry ``a1`` / ``a2`` features (injected) keep
    them.
    """
    out: Batch = {}
    for key, value in batch.items():
        if isinstance(value, Tensor):
            value = value.to(device, non_blocking=True)
            if key in VIDEO_KEYS and value.dtype == torch.uint8:
                value = yuv_to_rgb(value)  # (B, 3, T, H, W) float RGB in [0, 1]
            elif key == "alpha":
                value = value.float()  # float16 from the loader
        out[key] = value
    if "mel" in out:  # waveforms from the loader
        mels = set(out.pop("mel"))
        if len(mels) != 1:
            raise ValueError(f"a batch mixes audio rates or mel settings: {sorted(mels)}")
        mel = mels.pop()
        for track in ("a1", "a2"):
            wave, reversed_ = out.pop(f"{track}_wave"), out.pop(f"{track}_reversed")
            out[track] = batch_log_mel(wave, out[f"has_{track}"], reversed_, mel)
    if "mix" not in out and "alpha" in out:
        out["mix"] = out["alpha"] * out["v1"] + (1.0 - out["alpha"]) * out["v2"]  # eq. 3
    for key in (k for k in VIDEO_KEYS if k in out):
        value = out[key]
        if pixel_pool > 1:
            value = F.avg_pool3d(value, (1, pixel_pool, pixel_pool))  # (B, C, T', H/k, W/k)
        if key != "alpha":
            value = pixels.to_model(value, pixel_range)  # [0, 1] -> the model's range
        if channels_last:
            value = value.contiguous(memory_format=torch.channels_last_3d)
        out[key] = value
    return out
