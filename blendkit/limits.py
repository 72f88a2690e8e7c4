"""Caps on what one input may cost: the one home of every limit on hostile or broken media.

A small file can declare frames of 16000x16000 (3.85 GB and 17.6 s a clip to decode), a frame rate
that puts millions of frames in a clip's window, or an ``alpha.npz`` that inflates to gigabytes.
Each cap below bounds one of these; an input over a cap is refused with a one-line reason naming
the cap (``make-shards`` records it as a skipped input), never decoded. The defaults are well
above any Kinetics video; raise them through the ``limits`` section of a config (or
``make-shards --max-pixels / --max-frames``) for larger media.

- ``max_pixels``: pixels of one frame, as stored (width x height) and after resizing to the clip's
  short side (a 2x4096 frame resized to a 148 short side would be 148x303104). The default,
  4096x2160 (DCI 4K), holds any 4K video in either orientation. FFmpeg's own ``max_pixels``
  decoder option is set to it too, so an over-sized frame is refused before it is allocated,
  also when the container declares a small size.
- ``max_frames``: video packets (about one frame each) demuxed to cut one clip (or audio packets
  for its audio window), and packets scanned to find a duration that no header gives. 20000 is
  13 minutes of 25 fps video decoded for one clip; a 10 s Kinetics clip has at most ~2000.
- ``max_alpha_bytes``: the inflated size of an ``alpha.npz`` member, checked against the sizes
  the zip and the ``.npy`` header declare before anything is inflated. 64 MiB is 16 times a
  64x128x128 float32 alpha.

Readers of shards (the trainer's loader, ``inspect --verify``) hold each sample's members to
what its ``KEY.json`` states, within these caps (``Limits.for_clip``): a video member is refused
past the clip's frame count or at a larger frame, an alpha past the bytes of its array.
"""

from __future__ import annotations

from dataclasses import dataclass

from blendkit.typed_config import positive

NPY_HEADER_ROOM = 4096  # bytes an alpha.npy may hold besides its array (numpy writes 128)


@dataclass(frozen=True)
class Limits:
    """Caps on one input (see the module docstring)."""

    max_pixels: int = 4096 * 2160
    max_frames: int = 20_000
    max_alpha_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        positive(self, "max_pixels", "max_frames", "max_alpha_bytes")

    def for_clip(self, frames: int, height: int, width: int) -> Limits:
        """The caps of the members of a sample whose json states clips of ``frames`` frames of
        ``width`` x ``height``: exactly those sizes (an alpha: its float32 array and header),
        within these caps. ``ValueError`` when the stated sizes are over them."""
        pixels = height * width
        if pixels > self.max_pixels or frames > self.max_frames:
            raise ValueError(
                f"clips of {frames} frames of {width}x{height} are over the caps "
                f"({self.max_frames} frames, {self.max_pixels} pixels: limits)"
            )
        alpha = 4 * frames * pixels + NPY_HEADER_ROOM
        return Limits(pixels, frames, min(alpha, self.max_alpha_bytes))


DEFAULT_LIMITS = Limits()
