"""Typed configuration of the training data stream (the trainer's config nests it)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from blendkit.format import BLEND_CHOICES, BOTH
from blendkit.limits import DEFAULT_LIMITS, Limits
from blendkit.typed_config import at_least, one_of, positive, require


@dataclass(frozen=True)
class DataConfig:
    """How to stream blendkit shards (docs/contract.md) into batches.

    ``shards`` is a directory holding ``shard-*.tar``, a brace pattern
    (``/data/shard-{000000..000099}.tar``) or a text file listing one shard path per line.
    ``resampled=True`` draws shards with replacement forever (training); ``False`` reads every
    shard exactly once (validation). ``shuffle_buffer`` <= 1 turns shuffling off: shards are then
    read in sorted order and samples in tar order. ``remix`` re-pairs stored clips on the fly
    (see ``trainer.data.remix``); ``remix_pool`` is how many decoded samples it keeps to draw
    partners from (our choice, the paper does not remix). ``blend`` keeps one blend kind, or
    ``both`` (``blendkit.format.blends``), and ``require_audio`` drops samples whose V1 has no
    audio (C3 is conditioned on V1's audio).
    ``limits`` caps what one sample may state and decode to (``blendkit.limits``; each sample is
    held to its own json's sizes within them, ``trainer.data.decoding``).
    ``occlusion_keep`` thins out occlusion blends: in loader epoch ``i`` (for a resampled stream
    one checkpoint interval, ``trainer.data.stream``) each is kept with probability
    ``occlusion_keep[i]``, the last value holding from then on; ``(1.0,)`` keeps every one. Ours,
    not the paper's: the tiny config ends its run leaning towards transparent blends.
    ``cache_decoded`` keeps up to that many decoded samples in memory (``trainer.data.cache``),
    for shard sets small enough to be read many times (the demo's).
    ``allow_pipe`` lets ``shards`` (and ``val_shards``) be or list ``pipe:`` commands, which run
    in a shell (``blendkit.format.layout``); off, they are refused.
    The log-mel parameters follow the paper's "log spectrogram treated as an image" (Sec. 3.2);
    the values are ours.
    """

    shards: str
    batch_size: int = 8
    workers: int = 2
    shuffle_buffer: int = 256
    resampled: bool = True
    remix: bool = False
    # False: mix = alpha*v1 + (1-alpha)*v2 from the decoded layers (exact equation 3, and a third
    # fewer videos to decode); True: decode the stored mix.mp4 (what readers without blendkit see)
    stored_mix: bool = False
    augment: bool = False  # random flips / time reversal / chroma symmetry (augment.py)
    augment_colour: bool = True  # False: augment without the chroma symmetries
    remix_pool: int = 8
    blend: str = BOTH
    require_audio: bool = False
    n_mels: int = 64
    n_fft: int = 512
    hop_length: int = 160
    seed: int = 0
    # keep every k-th frame of each clip (it still spans its audio's time); only the kept frames
    # are converted to RGB and float. 1 for the paper; the tiny config subsamples.
    frame_stride: int = 1
    occlusion_keep: tuple[float, ...] = (1.0,)
    cache_decoded: int = 0
    allow_pipe: bool = False  # run pipe: shard commands (the CLI's --allow-pipe)
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        one_of(self, "blend", BLEND_CHOICES)
        positive(self, "batch_size", "n_mels", "n_fft", "hop_length", "frame_stride")
        at_least(self, 0, "workers", "seed", "cache_decoded")
        require(
            len(self.occlusion_keep) > 0 and all(0.0 <= p <= 1.0 for p in self.occlusion_keep),
            "occlusion_keep",
            f"must be one or more probabilities in [0, 1], got {list(self.occlusion_keep)}",
        )
        require(
            not self.remix or self.remix_pool >= 2,
            "remix_pool",
            f"must be at least 2 to find a partner, got {self.remix_pool}",
        )

    def fixed_pass(self, shards: str) -> DataConfig:
        """This stream made a fixed pass over ``shards`` (validation): every sample once, in
        order, as stored: no resampling, shuffle, thinning, remix, augmentation or cache."""
        return replace(
            self,
            shards=str(shards),
            resampled=False,
            shuffle_buffer=0,
            occlusion_keep=(1.0,),
            cache_decoded=0,
            remix=False,
            augment=False,
        )

    def occlusion_keep_at(self, epoch: int) -> float:
        """The chance an occlusion blend is kept in loader epoch ``epoch``."""
        return self.occlusion_keep[min(epoch, len(self.occlusion_keep) - 1)]
