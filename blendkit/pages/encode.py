"""Clips and sounds encoded for display in a browser (never for training: shards stay as they are).

- Video: H.264 High profile, 4:2:0 (``yuv420p``), BT.709 limited range, tagged as such in the
  stream, in mp4 with the index (``moov``) before the data (``+faststart``), a keyframe every
  second. Chromium (Debian's build), Firefox, Safari and hardware decoders all play it; the
  shards' 4:4:4 H.264 is played by Chromium's software decoder only, and not by Safari.
- Audio: 16-bit PCM WAV, mono, at the source rate: every browser plays it with no codec of its
  own, and it holds exactly the samples given (a 2.56 s clip at 16 kHz is 82 KB).

API (all pure functions of their input, no file names from data):

- ``encode_display_video(frames, fps, crf=DISPLAY_CRF) -> bytes``: (T, H, W, 3) uint8 RGB, or
  (T, H, W) grey (uint8, or float in [0, 1] such as an alpha mask) -> mp4 bytes.
- ``DisplayVideoWriter(path, fps, width, height)``: the same encoding streamed to a file chunk by
  chunk (``write(frames)``, ``close()``; a context manager), for videos too long to hold.
- ``encode_display_audio(samples, rate) -> bytes``: float mono samples in [-1, 1] -> WAV bytes;
  ``DisplayAudioWriter(path, rate)`` streams the same to a file (``write``, ``close``).
- ``as_rgb(video) -> (T, H, W, 3) uint8``: the frame conversion the encoders apply.

Frames of odd width or height are padded by one repeated row or column (4:2:0 needs even sizes).
"""

from __future__ import annotations

import io
import os
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

DISPLAY_CRF = 18
DISPLAY_PRESET = "fast"
DISPLAY_PIX_FMT = "yuv420p"
_COLOUR = "ITU709"  # the matrix frames are converted with, and the VUI tags below say so
_X264_PARAMS = "colorprim=bt709:transfer=bt709:colormatrix=bt709:range=tv"


def as_rgb(video: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB from RGB or grey frames (a float grey video is read in [0, 1])."""
    video = np.asarray(video)
    if video.ndim == 3:  # grey (T, H, W)
        if video.dtype != np.uint8:
            video = np.round(np.clip(video.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
        video = np.repeat(video[..., None], 3, axis=-1)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8 or not len(video):
        raise ValueError(
            f"expected (T, H, W, 3) uint8 or (T, H, W) grey frames, got {video.shape} {video.dtype}"
        )
    return video


def _even(video: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by repeating the last row or column."""
    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    if pad_h or pad_w:
        video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return video


class DisplayVideoWriter:
    """Streams frames into one browser-playable mp4 at ``path`` (see the module docstring).

    ``width`` and ``height`` are the frames' size; odd sizes are padded to even ones. The file is
    complete only after ``close()`` (the ``moov`` index is moved to the front then).
    """

    def __init__(
        self, path: str | Path, fps: float, width: int, height: int, crf: int = DISPLAY_CRF
    ) -> None:
        if fps <= 0 or width <= 0 or height <= 0:
            raise ValueError(f"bad video geometry: {width}x{height} at {fps} fps")
        self.path = Path(path)
        self.size = (height, width)
        self._container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.height, self._stream.width = height + height % 2, width + width % 2
        self._stream.pix_fmt = DISPLAY_PIX_FMT
        context = self._stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = 1, 1, 1  # BT.709
        context.color_range = 1  # limited ("tv", "MPEG")
        self._stream.options = {
            "crf": str(crf),
            "preset": DISPLAY_PRESET,
            "profile": "high",
            "g": str(max(1, round(fps))),
            "x264-params": _X264_PARAMS,
        }

    def write(self, frames: np.ndarray) -> None:
        """Append (T, H, W, 3) uint8 RGB or (T, H, W) grey frames of the declared size."""
        frames = as_rgb(frames)
        if frames.shape[1:3] != self.size:
            raise ValueError(f"frames of size {frames.shape[1:3]}, the writer's is {self.size}")
        for image in _even(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(
                format=DISPLAY_PIX_FMT, dst_colorspace=_COLOUR, dst_color_range="MPEG"
            )
            self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None

    def __enter__(self) -> DisplayVideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def encode_display_video(frames: np.ndarray, fps: float, crf: int = DISPLAY_CRF) -> bytes:
    """(T, H, W, 3) uint8 RGB or (T, H, W) grey frames -> browser-playable mp4 bytes.

    Goes through a temporary file: ``+faststart`` rewrites the file, which FFmpeg does only on
    a seekable file it can read back.
    """
    frames = as_rgb(frames)
    handle, name = tempfile.mkstemp(suffix=".mp4")
    os.close(handle)
    try:
        with DisplayVideoWriter(name, fps, frames.shape[2], frames.shape[1], crf) as writer:
            writer.write(frames)
        return Path(name).read_bytes()
    finally:
        os.unlink(name)


def _pcm(samples: np.ndarray, rate: int) -> bytes:
    samples = np.asarray(samples, np.float32)
    if samples.ndim != 1 or rate <= 0:
        raise ValueError(f"expected mono samples and a positive rate, got {samples.shape}, {rate}")
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class DisplayAudioWriter:
    """Streams float mono samples into one WAV file at ``path`` (as ``encode_display_audio``):
    ``write(samples)`` chunk by chunk, ``close()`` (the header's length is set then)."""

    def __init__(self, path: str | Path, rate: int) -> None:
        _pcm(np.zeros(0, np.float32), rate)  # checks the rate
        self.path, self.rate = Path(path), int(rate)
        self._out = wave.open(str(path), "wb")  # closed by close()
        self._out.setnchannels(1)
        self._out.setsampwidth(2)
        self._out.setframerate(self.rate)

    def write(self, samples: np.ndarray) -> None:
        self._out.writeframes(_pcm(samples, self.rate))

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self) -> DisplayAudioWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def encode_display_audio(samples: np.ndarray, rate: int) -> bytes:
    """Float mono samples in [-1, 1] (clipped) -> 16-bit PCM WAV bytes at ``rate`` Hz."""
    pcm = _pcm(samples, rate)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(rate))
        out.writeframes(pcm)
    return buf.getvalue()
