"""Encode and decode the members of a shard sample.

Every member decodes from its extension alone with standard tools, so a user can read the shards
without blendkit:

- ``.mp4``  H.264 in 4:4:4 (yuv444p), read with PyAV -> (T, H, W, 3) uint8 RGB
- ``.m4a``  mono AAC audio (or ``.flac``), read with PyAV -> float32 in [-1, 1]
- ``.npz``  ``np.savez_compressed(alpha=...)`` -> float32 (T, H, W) in [0, 1]

Encoders, decoders and colour conversions run single-threaded, so the same input gives the same
bytes on any machine and with any number of worker processes: PyAV's default swscale threading
(``threads=0``, automatic) was seen to change converted pixels from run to run.
"""

from __future__ import annotations

import io
import struct
import zipfile
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import deflate
import numpy as np
from av.video.reformatter import VideoReformatter

from blendkit.limits import DEFAULT_LIMITS, Limits

VIDEO_CODEC = "libx264"
PIX_FMT = "yuv444p"


def _x264_params() -> str:
    """x264 options that make its bitstream a function of the input alone.

    Threads are pinned to one inside x264 (FFmpeg's default SLICE thread type otherwise turns on
    sliced threads). And where the CPU has AVX-512, x264 is capped at AVX2: on the build machine
    (2 vCPUs with AVX-512), x264's AVX-512 code gave different bitstreams for byte-identical
    input in about half of the samples when the machine was loaded (16 processes on 2 cores),
    single-threaded; capped at AVX2 it never did, and its output equals the AVX-512 path's
    output whenever that one is right. See BENCHMARKS.md ("Determinism").
    """
    params = "threads=1:lookahead-threads=1:sliced-threads=0"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return params
    if "avx512" in flags and " avx2" in flags:
        params += ":asm=AVX2"
    return params


X264_PARAMS = _x264_params()
_PINNED_X264_KEYS = {"threads", "lookahead-threads", "sliced-threads", "asm"}


def check_x264_params(params: str) -> None:
    """Raise ``ValueError`` unless ``params`` is ``key=value`` pairs joined by ``:`` that leave
    the options ``X264_PARAMS`` pins for determinism alone."""
    for pair in filter(None, params.split(":")):
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{pair!r} is not key=value")
        if key in _PINNED_X264_KEYS:
            raise ValueError(f"{key} is fixed by blendkit (same bytes with any worker count)")


def encode_video(
    frames: np.ndarray,
    fps: float,
    crf: int,
    preset: str = "medium",
    tune: str | None = None,
    x264_params: str = "",
) -> bytes:
    """(T, H, W, 3) uint8 RGB -> mp4 bytes (H.264, yuv444p, constant rate ``fps``).

    ``tune`` is x264's (e.g. ``"fastdecode"``: CAVLC and no deblocking, for readers that decode
    many clips per second); ``x264_params`` more x264 options (``check_x264_params``)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    check_x264_params(x264_params)
    params = f"{X264_PARAMS}:{x264_params}" if x264_params else X264_PARAMS
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream(VIDEO_CODEC, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = PIX_FMT
        stream.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        options = {"crf": str(crf), "preset": preset, "x264-params": params}
        stream.options = {**options, "tune": tune} if tune else options
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def _kept_frames(container, step: int, limits: Limits):
    """Decoded frames 0, step, 2*step, ... of the first video stream of an open container (every
    frame is decoded: inter-frame coding needs them; only the kept ones are returned).

    Caps (``blendkit.limits``): a stream that declares frames of more than ``limits.max_pixels``
    pixels is refused before decoding, FFmpeg's decoder refuses a frame of several times that
    before allocating it (its ``max_pixels`` option, which counts the coded size: whole
    macroblocks), any decoded frame over the cap is refused, and decoding stops with a
    ``ValueError`` past ``limits.max_frames`` frames.
    """
    stream = container.streams.video[0]
    stream.thread_count = 1  # no decoder threads: one process per core
    cc = stream.codec_context
    if cc is None:
        raise ValueError("unknown video codec: FFmpeg has no decoder for it")
    if cc.width * cc.height > limits.max_pixels:
        raise _over_pixels(cc.width, cc.height, limits)
    # read when the decoder opens; it checks the coded size (rounded up to whole blocks)
    cc.options = {"max_pixels": str(4 * limits.max_pixels + 128 * 128)}
    try:
        for i, frame in enumerate(container.decode(stream)):
            if i >= limits.max_frames:
                raise ValueError(f"over {limits.max_frames} frames (limits.max_frames)")
            if frame.width * frame.height > limits.max_pixels:
                raise _over_pixels(frame.width, frame.height, limits)
            if i % step == 0:
                yield frame
    except av.error.ArgumentError as e:  # how the decoder refuses a frame over the cap
        raise ValueError(
            f"the decoder refuses a frame over the cap ({e}; limits.max_pixels)"
        ) from e


def _over_pixels(width: int, height: int, limits: Limits) -> ValueError:
    return ValueError(
        f"frames of {width}x{height} are over the cap of {limits.max_pixels} pixels "
        "(limits.max_pixels)"
    )


def decode_video(data: bytes, step: int = 1, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """mp4 bytes -> (T, H, W, 3) uint8 RGB; with ``step`` k, frames 0, k, 2k, ... only.

    Only the kept frames are converted to RGB, which is most of the cost at 128x128. Frames over
    ``limits`` are never decoded (``_kept_frames``).
    """
    reformatter = VideoReformatter()  # one conversion context for all frames, not one per frame
    with av.open(io.BytesIO(data)) as container:
        frames = [
            reformatter.reformat(f, format="rgb24", threads=1).to_ndarray()
            for f in _kept_frames(container, step, limits)
        ]
    if not frames:
        raise ValueError("no video frames")
    return np.stack(frames)


def decode_video_yuv(data: bytes, step: int = 1, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """mp4 bytes -> (3, T, H, W) uint8 Y, U, V planes at full resolution, as stored (4:4:4,
    BT.601 limited range: ``trainer.colour.yuv_to_rgb`` turns them into RGB); frames 0, k, 2k...

    The planes are copied straight out of the decoder's frames, with no colour conversion: about
    a third of ``decode_video``'s cost goes. Video stored in another pixel format is converted to
    yuv444p first. Each frame is copied into the output, sized from the frame count the
    container declares, as soon as it is decoded, and then released, so the decoder reuses its
    buffers; holding every frame to the end made it allocate new buffers for each frame:
    7.0 -> 6.4 ms a 64x128x128 clip of the demo shards, one core, with the loader workers' malloc
    settings (``trainer.data.loader.keep_freed_memory``). Frames over ``limits`` are never
    decoded (``_kept_frames``), and room for no more than ``limits.max_frames`` is made.
    """
    reformatter = VideoReformatter()
    with av.open(io.BytesIO(data)) as container:
        declared = min(container.streams.video[0].frames, limits.max_frames)  # 0: none declared
        declared = -(-declared // step)
        planes: np.ndarray | None = None  # (C, T, H, W)
        n = 0
        for frame in _kept_frames(container, step, limits):
            if frame.format.name != PIX_FMT:
                frame = reformatter.reformat(frame, format=PIX_FMT, threads=1)
            if planes is None or n == planes.shape[1]:  # first frame, or more than declared
                planes = _more_frames(planes, frame, declared)
            for c, plane in enumerate(frame.planes):
                planes[c, n] = _plane_view(plane)
            n += 1
    if planes is None:
        raise ValueError("no video frames")
    return planes if n == planes.shape[1] else np.ascontiguousarray(planes[:, :n])


def _more_frames(planes: np.ndarray | None, frame, declared: int) -> np.ndarray:
    """Room for more (C, T, H, W) frames: ``declared`` of ``frame``'s size at first, then double."""
    if planes is None:
        return np.empty((3, max(declared, 1), frame.height, frame.width), np.uint8)
    return np.concatenate([planes, np.empty_like(planes)], axis=1)


def _plane_view(plane) -> np.ndarray:
    """(H, W) uint8 view of one plane of a frame, without its row padding."""
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


AUDIO_FORMATS = {"aac": ("m4a", "ipod"), "flac": ("flac", "flac")}  # codec -> (extension, muxer)


AUDIO_EXTENSIONS = tuple(ext for ext, _ in AUDIO_FORMATS.values())


def audio_extension(codec: str) -> str:
    """The member extension of audio encoded with ``codec`` ("m4a" for aac, "flac")."""
    return AUDIO_FORMATS[codec][0]


def encode_audio(
    samples: np.ndarray, rate: int, codec: str = "aac", bit_rate: int = 64000
) -> bytes:
    """float32 mono samples in [-1, 1] -> AAC-in-m4a (lossy, default) or FLAC (16 bit) bytes.

    AAC at 64 kbit/s keeps a 2.56 s window at about 21 KB, plenty for log-mel features; FLAC is
    lossless but 60-80 KB. Both decode to exactly ``len(samples)`` samples. AAC uses FFmpeg's
    ``fast`` coder: on a 2.56 s window of the bench's proxy audio it took 4.5 ms instead of the
    default two-loop coder's 14.7 ms, for the same size and 39.7 dB SNR instead of 36.6 (two-loop
    spends its bits by a perceptual model; log-mel features want the waveform).
    """
    if codec not in AUDIO_FORMATS:
        raise ValueError(f"audio codec {codec!r} is not one of {', '.join(AUDIO_FORMATS)}")
    x = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)[None, :]
    if codec == "flac":
        x = np.round(x * 32767.0).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format=AUDIO_FORMATS[codec][1]) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        stream.thread_count = 1
        if codec == "aac":
            stream.bit_rate = bit_rate
            stream.options = {"aac_coder": "fast"}
        hop = 1024  # the AAC frame size; FLAC takes any
        for i in range(0, x.shape[1], hop):
            chunk = np.ascontiguousarray(x[:, i : i + hop])
            frame = av.AudioFrame.from_ndarray(
                chunk, format="s16" if codec == "flac" else "fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def decode_audio(data: bytes, max_samples: int | None = None) -> tuple[np.ndarray, int]:
    """m4a / FLAC (any audio PyAV reads) bytes -> (float32 mono samples, sample rate); with
    ``max_samples``, decoding stops with a ``ValueError`` once more samples than that came out."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        chunks, n = [], 0
        for frame in container.decode(stream):
            chunks.append(frame.to_ndarray())
            n += frame.samples
            if max_samples is not None and n > max_samples:
                raise ValueError(f"audio of more than {max_samples} samples")
    pcm = np.concatenate(chunks, axis=-1)
    if pcm.dtype == np.int16:
        pcm = pcm.astype(np.float32) / 32768.0
    return np.ascontiguousarray(pcm.mean(axis=0) if pcm.shape[0] > 1 else pcm[0], np.float32), rate


def encode_alpha(alpha: np.ndarray) -> bytes:
    """(T, H, W) float alpha in [0, 1] -> npz bytes holding one float32 array named ``alpha``.

    A constant alpha (every transparent blend) is compressed once per shape and value and its
    bytes reused: deflating 4 MB of 0.5 took ~12 ms a sample, a twentieth of make-shards' time."""
    alpha = np.asarray(alpha, np.float32)
    if alpha.size and alpha.min() == alpha.max():
        return _constant_alpha(alpha.shape, float(alpha.flat[0]))
    return _npz(alpha)


@lru_cache(maxsize=8)
def _constant_alpha(shape: tuple[int, ...], value: float) -> bytes:
    return _npz(np.full(shape, value, np.float32))


def _npz(alpha: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, alpha=alpha)
    return buf.getvalue()


_NPY_HEADER_BYTES = 12 + 0xFFFF  # room for any version 1.0 .npy header
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def decode_alpha(data: bytes, max_bytes: int = DEFAULT_LIMITS.max_alpha_bytes) -> np.ndarray:
    """npz bytes -> (T, H, W) float32 alpha: ``np.load(...)["alpha"]``, the same values, dtype,
    shape and order, checked against the zip's CRC-32 as ``np.load`` does.

    An npz as ``encode_alpha`` writes it (one deflated ``alpha.npy``) is inflated by libdeflate
    in one call into the buffer the array is read from, with no copy into a second array.
    ``np.load`` (zlib's inflate, zipfile's CRC pass, a chunked copy) took 3.7 ms a transparent
    64x128x128 alpha of the demo shards and 8.2 ms an occlusion one; this takes 0.8 and 0.4 ms
    (one core, with the loader workers' malloc settings; 2.7 and 2.5 ms without, mostly page
    faults on the fresh 4 MB). Any other npz (another member or compression, an object dtype,
    ...) goes through ``np.load``.

    An alpha that would inflate to more than ``max_bytes`` (``limits.max_alpha_bytes``) raises
    ``ValueError`` before anything is inflated: the sizes the zip and the ``.npy`` header declare
    are checked first (a zip bomb of a few KB can declare gigabytes), and neither inflater writes
    past a declared size.
    """
    alpha = _inflate_one_npy(data, "alpha.npy", max_bytes)
    if alpha is None:
        _check_npy_size(data, "alpha.npy", max_bytes)
        with np.load(io.BytesIO(data)) as npz:
            alpha = npz["alpha"]
    return alpha


def _too_large(name: str, size: int, max_bytes: int) -> ValueError:
    return ValueError(
        f"{name} inflates to {size} bytes, over the cap of {max_bytes} (limits.max_alpha_bytes)"
    )


def _check_npy_size(data: bytes, name: str, max_bytes: int) -> None:
    """Raise ``ValueError`` if member ``name`` of an npz declares more than ``max_bytes``, in the
    zip or in its ``.npy`` header (``np.load`` allocates the header's shape before reading)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError:
            return  # np.load says what is missing
        if info.file_size > max_bytes:
            raise _too_large(name, info.file_size, max_bytes)
        with archive.open(info) as member:  # inflates the header only
            try:
                version = np.lib.format.read_magic(member)
            except ValueError:
                return  # not a .npy: np.load says so
            if version not in _NPY_HEADER_READERS:  # blendkit writes 1.0
                raise ValueError(f"{name}: .npy version {version} is not read here")
            shape, _, dtype = _NPY_HEADER_READERS[version](member)
    size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if size > max_bytes:
        raise _too_large(name, size, max_bytes)


def _inflate_one_npy(data: bytes, name: str, max_bytes: int) -> np.ndarray | None:
    """The array of an npz holding just ``name``, deflated; None for any other layout."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
    if len(members) != 1 or members[0].filename != name:
        return None
    info = members[0]
    offset = info.header_offset
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & 1:  # 1: encrypted
        return None
    if data[offset : offset + 4] != b"PK\x03\x04":
        return None
    if info.file_size > max_bytes:  # libdeflate allocates the declared size up front
        raise _too_large(name, info.file_size, max_bytes)
    name_len, extra_len = struct.unpack_from("<HH", data, offset + 26)
    start = offset + 30 + name_len + extra_len
    raw = deflate.deflate_decompress(
        memoryview(data)[start : start + info.compress_size], info.file_size
    )
    if deflate.crc32(raw) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
    npy = io.BytesIO(raw[:_NPY_HEADER_BYTES])  # the header: BytesIO(raw) would copy 4 MB
    try:
        shape, fortran_order, dtype = _NPY_HEADER_READERS[np.lib.format.read_magic(npy)](npy)
    except (KeyError, ValueError):  # another .npy version, a longer header, not a .npy
        return None
    count = int(np.prod(shape, dtype=np.int64))
    if dtype.hasobject or len(raw) - npy.tell() != count * dtype.itemsize:
        return None
    array = np.frombuffer(raw, dtype, count, offset=npy.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two arrays on the same scale (inf when equal)."""
    diff = np.subtract(a, b, dtype=np.float32)  # float32 differences, summed in float64
    mse = float(np.square(diff, out=diff).sum(dtype=np.float64)) / max(1, diff.size)
    return float("inf") if mse == 0.0 else 10.0 * np.log10(peak * peak / mse)
