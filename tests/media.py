"""Tiny synthetic media for tests, written with PyAV.

Every video frame carries its own index as a 12-bit code: the frame is a grid of
``GRID_ROWS x GRID_COLS`` flat cells, a cell is bright yellow for a 1 bit and dark blue for a 0
bit (bit ``r * GRID_COLS + c`` lives in cell ``(r, c)``). The cells are large and the two colours
are ~130 luma levels apart, so ``frame_index`` reads the index back from any decoded frame, after
lossy coding and after resizing to any size, which lets a test assert *which* source frame a
decoder picked for each output time.

Audio is a sine (``audio_freq`` Hz, amplitude ``audio_gains[ch]`` per channel) that is silent
before ``audio_onset_s``; ``audio_signal`` is the same signal as a function of time, so tests can
compare a decoded window against it at any sample rate.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

GRID_ROWS = 3
GRID_COLS = 4
MAX_FRAMES = 1 << (GRID_ROWS * GRID_COLS)  # 4096 distinct frame codes
ONE_RGB = (230, 200, 60)  # bit 1: bright yellow
ZERO_RGB = (20, 40, 120)  # bit 0: dark blue

# Container (by suffix) -> audio encoder used when audio=True.
AUDIO_CODECS = {
    ".mp4": "aac",
    ".m4a": "aac",
    ".mov": "aac",
    ".mkv": "aac",
    ".avi": "pcm_s16le",
    ".webm": "libopus",
    ".ogv": "vorbis",
}
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
VFR_TIME_BASE = Fraction(1, 1000)
# Interval pattern for variable frame rate, in units of the nominal frame interval 1/fps:
# runs of normal frames, dense bursts and long gaps.
VFR_PATTERN = (1.0, 0.5, 0.5, 2.5, 1.0, 0.25, 0.25, 3.0, 1.0, 1.0)


class EncoderMissing(RuntimeError):
    """The PyAV wheel has no encoder for the requested codec."""


def encoder_available(codec: str) -> bool:
    """True if PyAV can encode ``codec`` (e.g. the PyAV wheels ship no Theora encoder)."""
    try:
        av.codec.Codec(codec, "w")
    except Exception:  # noqa: BLE001 - av raises several types for unknown codecs
        return False
    return True


def frame_image(k: int, width: int, height: int) -> np.ndarray:
    """The RGB image of source frame ``k``: (height, width, 3) uint8."""
    if not 0 <= k < MAX_FRAMES:
        raise ValueError(f"frame index {k} outside [0, {MAX_FRAMES})")
    img = np.empty((height, width, 3), np.uint8)
    ys = np.linspace(0, height, GRID_ROWS + 1).round().astype(int)
    xs = np.linspace(0, width, GRID_COLS + 1).round().astype(int)
    for r in range(GRID_ROWS):
        for c in range(GRID_COLS):
            bit = (k >> (r * GRID_COLS + c)) & 1
            img[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = ONE_RGB if bit else ZERO_RGB
    return img


def frame_index(img: np.ndarray) -> int:
    """Read back the frame index from a decoded (H, W, 3) frame of any size."""
    h, w = img.shape[:2]
    luma = img.astype(np.float32).mean(axis=2)
    threshold = (sum(ONE_RGB) + sum(ZERO_RGB)) / 6.0
    k = 0
    for r in range(GRID_ROWS):
        for c in range(GRID_COLS):
            # central half of the cell, away from edges blurred by coding or resizing
            y0, y1 = (h * (4 * r + 1)) // (4 * GRID_ROWS), (h * (4 * r + 3)) // (4 * GRID_ROWS)
            x0, x1 = (w * (4 * c + 1)) // (4 * GRID_COLS), (w * (4 * c + 3)) // (4 * GRID_COLS)
            if luma[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean() > threshold:
                k |= 1 << (r * GRID_COLS + c)
    return k


def frame_indices(frames: np.ndarray) -> list[int]:
    """``frame_index`` of every frame of a (N, H, W, 3) array."""
    return [frame_index(f) for f in frames]


def frame_times(n_frames: int, fps: float, vfr: bool = False, start_s: float = 0.0) -> np.ndarray:
    """Presentation times (seconds) of the ``n_frames`` frames that ``make_video`` writes.

    CFR: ``(s + k) / fps`` with ``s = round(start_s * fps)`` (the start snaps to the frame
    grid). VFR: intervals follow ``VFR_PATTERN`` (times of the nominal interval), rounded to
    whole milliseconds (the VFR time base) and at least 1 ms.
    """
    if not vfr:
        return (round(start_s * fps) + np.arange(n_frames)) / fps
    ms = [round(start_s * 1000)]
    for k in range(1, n_frames):
        step = max(1, round(1000.0 / fps * VFR_PATTERN[(k - 1) % len(VFR_PATTERN)]))
        ms.append(ms[-1] + step)
    return np.asarray(ms, np.float64) / 1000.0


def audio_signal(
    t: np.ndarray,
    channels: int = 1,
    freq: float = 440.0,
    onset_s: float = 0.0,
    gains: tuple[float, ...] | None = None,
) -> np.ndarray:
    """The audio ``make_video`` writes, at times ``t`` (seconds): (channels, len(t)) float32."""
    gains = gains if gains is not None else (0.5,) * channels
    if len(gains) != channels:
        raise ValueError(f"{len(gains)} gains for {channels} channels")
    t = np.asarray(t, np.float64)
    tone = np.sin(2 * np.pi * freq * t) * (t >= onset_s)
    return (np.asarray(gains, np.float64)[:, None] * tone[None, :]).astype(np.float32)


def make_video(
    path: str | os.PathLike,
    *,
    codec: str = "h264",
    fps: float = 25,
    n_frames: int = 50,
    width: int = 64,
    height: int = 48,
    audio: bool = False,
    audio_rate: int = 22050,
    audio_channels: int = 1,
    vfr: bool = False,
    pix_fmt: str | None = None,
    gop: int = 12,
    start_s: float = 0.0,
    audio_freq: float = 440.0,
    audio_onset_s: float = 0.0,
    audio_gains: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Write a synthetic video and return the exact RGB frames encoded: (N, H, W, 3) uint8.

    The container follows the suffix of ``path``. Frame ``k`` is ``frame_image(k)`` shown at
    ``frame_times(...)[k]``; ``gop`` is the keyframe interval (small, so that seeks land
    mid-stream); ``start_s`` shifts every timestamp (a file whose streams do not start at 0).
    Audio covers the video's span ``[times[0], times[-1] + 1 / fps)`` with
    ``audio_signal``; Opus only takes 48 kHz (and friends), so other rates become 48 kHz in
    .webm. Raises ``EncoderMissing`` when the PyAV wheel lacks the encoder.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if vfr and suffix == ".avi":
        raise ValueError("AVI cannot store variable frame rate")
    if not encoder_available(codec):
        raise EncoderMissing(f"PyAV has no {codec} encoder")
    times = frame_times(n_frames, fps, vfr, start_s)
    frames = np.stack([frame_image(k, width, height) for k in range(n_frames)])

    options = {"movflags": "faststart"} if suffix in (".mp4", ".mov", ".m4a") else {}
    with av.open(str(path), "w", options=options) as out:
        vstream = _add_video_stream(out, codec, fps, width, height, pix_fmt, gop, vfr)
        tb = vstream.codec_context.time_base  # frame pts unit
        astream = None
        if audio:
            astream = _add_audio_stream(out, AUDIO_CODECS[suffix], audio_rate, audio_channels)
        audio_t = times[0]  # next audio sample time written
        audio_end = times[-1] + 1.0 / fps
        for k, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = round(Fraction(times[k]).limit_denominator(10**6) / tb)
            frame.time_base = tb
            for packet in vstream.encode(frame):
                out.mux(packet)
            if astream is not None:  # keep audio interleaved with video
                until = min(audio_end, times[k] + 1.0 / fps)
                audio_t = _write_audio(
                    out, astream, audio_t, until, audio_freq, audio_onset_s, audio_gains
                )
        for packet in vstream.encode(None):
            out.mux(packet)
        if astream is not None:
            _write_audio(
                out, astream, audio_t, audio_end, audio_freq, audio_onset_s, audio_gains, True
            )
            for packet in astream.encode(None):
                out.mux(packet)
    return frames


def _add_video_stream(out, codec, fps, width, height, pix_fmt, gop, vfr):
    rate = Fraction(fps).limit_denominator(1001)
    stream = out.add_stream(codec, rate=rate)
    cc = stream.codec_context
    cc.width, cc.height = width, height
    cc.gop_size = gop
    cc.time_base = VFR_TIME_BASE if vfr else 1 / rate
    stream.time_base = cc.time_base
    default_fmt = {"mjpeg": "yuvj420p"}.get(codec, "yuv420p")
    cc.pix_fmt = pix_fmt or default_fmt
    if codec in ("h264", "libx264"):
        cc.options = {
            "preset": "veryfast",
            "crf": "18",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
    elif codec in ("libvpx-vp9", "libvpx"):
        cc.options = {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        cc.bit_rate = 0
    else:  # mpeg4, mjpeg, theora: plenty of bits for tiny frames
        cc.bit_rate = 4_000_000
        cc.qmin, cc.qmax = 2, 4
    return stream


def _add_audio_stream(out, codec, rate, channels):
    if not encoder_available(codec):
        raise EncoderMissing(f"PyAV has no {codec} encoder")
    rates = av.codec.Codec(codec, "w").audio_rates
    if rates and rate not in rates:
        rate = 48000
    stream = out.add_stream(codec, rate=rate, layout=LAYOUTS[channels])
    if codec == "vorbis":
        stream.codec_context.options = {"strict": "experimental"}
    stream.codec_context.bit_rate = 128_000 * channels if codec != "pcm_s16le" else 0
    return stream


def _write_audio(out, astream, t0, t1, freq, onset_s, gains, final=False) -> float:
    """Encode the audio samples of [t0, t1) in whole encoder frames (and, if ``final``, the
    short remainder); return the time of the first sample not written."""
    cc = astream.codec_context
    rate = cc.sample_rate
    channels = cc.layout.nb_channels
    fmt = cc.format.name
    chunk = cc.frame_size or 1024
    first, last = round(t0 * rate), round(t1 * rate)
    while last - first >= chunk or (final and last > first):
        n = min(chunk, last - first)
        samples = audio_signal((first + np.arange(n)) / rate, channels, freq, onset_s, gains)
        if fmt == "s16":  # packed int16
            data = (samples.T.reshape(1, -1) * 32767).round().astype(np.int16)
        elif fmt == "flt":  # packed float
            data = np.ascontiguousarray(samples.T.reshape(1, -1))
        else:  # planar float
            data = samples
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=cc.layout.name)
        frame.sample_rate = rate
        frame.pts = first
        frame.time_base = Fraction(1, rate)
        for packet in astream.encode(frame):
            out.mux(packet)
        first += n
    return first / rate


def make_zero_byte(path: str | os.PathLike) -> Path:
    """An empty file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_truncated(path: str | os.PathLike, source: str | os.PathLike, keep: float = 0.4) -> Path:
    """A copy of the valid file ``source`` cut after ``keep`` of its bytes."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_not_video(path: str | os.PathLike, text: bool = False) -> Path:
    """A file named like a video that is random bytes (or plain text)."""
    path = Path(path)
    if text:
        path.write_text("this is not a video\n" * 50)
    else:
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    return path


def make_audio_only(
    path: str | os.PathLike, duration_s: float = 1.0, rate: int = 22050, channels: int = 1
) -> Path:
    """An .m4a/.mp4 with a single AAC audio stream (a 440 Hz tone)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        astream = _add_audio_stream(out, "aac", rate, channels)
        _write_audio(out, astream, 0.0, duration_s, 440.0, 0.0, None, final=True)
        for packet in astream.encode(None):
            out.mux(packet)
    return path


class _Unseekable:
    """A write-only sink without ``seek``: muxers cannot go back to fill in durations."""

    def __init__(self) -> None:
        self.data = io.BytesIO()

    def write(self, chunk: bytes) -> int:
        return self.data.write(chunk)


def make_without_duration(path: str | os.PathLike, fps: int = 25, n_frames: int = 50) -> Path:
    """A Matroska H.264 file written as a stream: no duration in any header or tag, so a
    reader must find the end from the packets. Frames as in ``make_video``."""
    sink = _Unseekable()
    with av.open(sink, "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(k, 64, 48), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    path = Path(path)
    path.write_bytes(sink.data.getvalue())
    return path


# ----------------------------------------------------------------------------- hostile media
# Small files that are expensive or impossible to decode; built from raw packets, so a test pays
# neither the encoding of a huge frame nor the memory for it.


@lru_cache(maxsize=4)
def png_image(width: int, height: int) -> bytes:
    """A black 8-bit grey PNG of ``width`` x ``height``: 16000x16000 (256 MB of pixels) is 250 KB
    (deflated rows of zeros, written a block of rows at a time)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    deflater = zlib.compressobj(9)
    rows = 256
    block = b"\0" * ((width + 1) * rows)  # each row: filter byte 0, then the pixels
    parts = [deflater.compress(block) for _ in range(height // rows)]
    parts += [deflater.compress(b"\0" * ((width + 1) * (height % rows))), deflater.flush()]
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join(
        [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", b"".join(parts)),
         chunk(b"IEND", b"")]
    )  # fmt: skip


def make_png_video(
    path: str | os.PathLike,
    images: list[bytes],
    time_base: Fraction = Fraction(1, 25),
    declare: tuple[int, int] = (64, 48),
) -> Path:
    """A QuickTime file of PNG ``images`` (bytes of ``png_image``), image ``k`` at ``k *
    time_base`` seconds; the container declares the frame size ``declare`` whatever the PNGs
    hold (FFmpeg trusts the PNG once it decodes one)."""
    path = Path(path)
    with av.open(str(path), "w", format="mov") as out:
        stream = out.add_stream("png", rate=25)
        stream.width, stream.height = declare
        stream.pix_fmt = "gray"
        stream.time_base = time_base
        for k, data in enumerate(images):
            packet = av.Packet(data)
            packet.stream = stream
            packet.pts = packet.dts = k
            packet.duration = 1
            packet.time_base = time_base
            out.mux(packet)
    return path


def make_unknown_codec(path: str | os.PathLike, n_frames: int = 25) -> Path:
    """An AVI whose video stream names a codec FFmpeg does not know (FourCC ``ZZZZ``)."""
    path = Path(path)
    make_video(path.with_suffix(".tmp.avi"), codec="mpeg4", n_frames=n_frames)
    data = path.with_suffix(".tmp.avi").read_bytes()
    path.with_suffix(".tmp.avi").unlink()
    path.write_bytes(data.replace(b"FMP4", b"ZZZZ"))
    return path


def make_corrupt(path: str | os.PathLike, source: str | os.PathLike, seed: int = 0) -> Path:
    """A copy of the valid file ``source`` whose middle third is random bytes."""
    data = bytearray(Path(source).read_bytes())
    a, b = len(data) // 3, 2 * len(data) // 3
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, np.uint8).tobytes()
    path = Path(path)
    path.write_bytes(bytes(data))
    return path


def zip_bomb_npz(inflated_bytes: int, extra_member: bool = False) -> bytes:
    """An npz whose ``alpha.npy`` (float32 zeros) inflates to ``inflated_bytes``: 256 MiB deflate
    to ~260 KB. ``extra_member`` adds a second array, so readers take ``np.load``'s path."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (inflated_bytes // 4,)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("alpha.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = b"\0" * (1 << 20)
            for _ in range(inflated_bytes // len(zeros)):
                member.write(zeros)
            member.write(b"\0" * (inflated_bytes % len(zeros)))
        if extra_member:
            archive.writestr("other.npy", b"")
    return buf.getvalue()
