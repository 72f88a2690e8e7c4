"""The loader's fast member decoders give exactly what the plain ones give (tiny media)."""

from __future__ import annotations

import io
import sys
import tracemalloc
import zipfile

import av
import deflate
import numpy as np
import pytest
import torch

from blendkit.codec import (
    decode_alpha,
    decode_audio,
    decode_video_yuv,
    encode_alpha,
    encode_audio,
    encode_video,
)
from tests.media import zip_bomb_npz
from trainer.data.decoding import _alpha
from trainer.data.loader import keep_freed_memory


def _npz(compressed: bool = True, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _np_load(data: bytes) -> np.ndarray:
    with np.load(io.BytesIO(data)) as npz:
        return npz["alpha"]


ALPHAS = {
    "transparent": np.full((4, 6, 5), 0.5, np.float32),
    "occlusion": (np.random.default_rng(0).random((4, 6, 5)) > 0.7).astype(np.float32),
    "fortran": np.asfortranarray(np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)),
    "big-endian f8": np.arange(24, dtype=">f8").reshape(2, 3, 4) / 24,
    "0-d": np.array(0.25, np.float32),
    "empty": np.zeros((0, 3), np.float32),
}


@pytest.mark.parametrize("name", list(ALPHAS))
@pytest.mark.parametrize("compressed", [True, False], ids=["deflated", "stored"])
def test_decode_alpha_equals_np_load(name, compressed):
    data = _npz(compressed, alpha=ALPHAS[name])
    ours, theirs = decode_alpha(data), _np_load(data)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert ours.flags.f_contiguous == theirs.flags.f_contiguous
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", ["transparent", "occlusion", "0-d", "empty"])
def test_encode_alpha_is_savez_compressed_also_when_reused(name):
    alpha = ALPHAS[name]
    first, again = encode_alpha(alpha), encode_alpha(alpha.copy())
    assert first == again == _npz(alpha=alpha)  # a constant alpha's bytes come from the cache
    np.testing.assert_array_equal(_np_load(first), alpha)


def test_decode_alpha_other_layouts_and_corrupt_data():
    both = _npz(alpha=np.ones(3, np.float32), other=np.zeros(2))  # np.load's path
    np.testing.assert_array_equal(decode_alpha(both), np.ones(3, np.float32))
    data = encode_alpha(ALPHAS["occlusion"])
    corrupt = data[:60] + bytes(b ^ 0x5A for b in data[60:70]) + data[70:]  # in the deflate stream
    with pytest.raises(deflate.DeflateError):  # an error (the sample is skipped), never made up
        decode_alpha(corrupt)
    at = data.index(b"PK\x01\x02") + 16  # the CRC-32 in the central directory
    wrong_crc = data[:at] + bytes(b ^ 1 for b in data[at : at + 4]) + data[at + 4 :]
    for decode in (decode_alpha, _np_load):  # both check it
        with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
            decode(wrong_crc)


def test_alpha_cache_decodes_repeated_bytes_once():
    _alpha.cache_clear()
    transparent = encode_alpha(ALPHAS["transparent"])
    first, again = _alpha(transparent), _alpha(bytes(transparent))  # equal bytes, new object
    assert again is first and _alpha.cache_info().hits == 1
    assert torch.equal(first, torch.from_numpy(_np_load(transparent)))
    occlusion = _alpha(encode_alpha(ALPHAS["occlusion"]))
    assert torch.equal(occlusion, torch.from_numpy(ALPHAS["occlusion"]))


def _remux(data: bytes, container_format: str) -> bytes:
    """The same coded frames in another container (one that declares no frame count)."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format=container_format) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out.getvalue()


@pytest.mark.parametrize("step", [1, 2, 4])
def test_decode_video_yuv_without_a_declared_frame_count(step):
    frames = np.random.default_rng(2).integers(0, 256, (9, 16, 24, 3), dtype=np.uint8)
    mp4 = encode_video(frames, 25, 12, "ultrafast")
    mkv = _remux(mp4, "matroska")
    with av.open(io.BytesIO(mkv)) as container:
        assert container.streams.video[0].frames == 0  # the planes array grows as frames come
    planes = decode_video_yuv(mkv, step)
    assert planes.shape == (3, len(range(0, 9, step)), 16, 24) and planes.flags.c_contiguous
    np.testing.assert_array_equal(planes, decode_video_yuv(mp4, step))
    np.testing.assert_array_equal(planes, decode_video_yuv(mp4)[:, ::step])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_keep_freed_memory_sets_glibc_malloc():
    assert keep_freed_memory(0) is True  # Linux / glibc here; False (and no change) elsewhere


@pytest.mark.parametrize(("codec", "min_snr_db"), [("aac", 40.0), ("flac", 80.0)])
def test_audio_members_keep_length_rate_and_waveform(codec, min_snr_db):
    t = np.arange(40960) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)).astype(
        np.float32
    )
    samples, rate = decode_audio(encode_audio(tone, 16000, codec))
    assert rate == 16000 and samples.shape == tone.shape and samples.dtype == np.float32
    snr = 10 * np.log10(np.sum(tone**2) / np.sum((samples - tone) ** 2))
    assert snr > min_snr_db, snr


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """npz files whose alpha.npy inflates to 256 MiB: deflated alone (libdeflate's path) or
    beside a second member (np.load's path); and one whose .npy header alone declares 1 TB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 38,)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("alpha.npy", header.getvalue() + b"\0" * 64)
        archive.writestr("other.npy", b"")
    return {
        "one member": zip_bomb_npz(256 << 20),
        "two members": zip_bomb_npz(256 << 20, extra_member=True),
        "header": buf.getvalue(),
    }


@pytest.mark.parametrize("name", ["one member", "two members", "header"])
def test_alpha_over_the_cap_is_refused_before_it_is_inflated(bombs, name):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"alpha.npy inflates to \d+ bytes, over the cap"):
            decode_alpha(bombs[name])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # numpy and bytes allocations are traced: nothing near 256 MiB
    small = np.zeros((2, 3, 4), np.float32)
    for data in (_npz(alpha=small), _npz(alpha=small, other=small)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            size = archive.getinfo("alpha.npy").file_size  # 96 bytes of alpha and the header
        with pytest.raises(ValueError, match=f"over the cap of {size - 1}"):
            decode_alpha(data, max_bytes=size - 1)
        np.testing.assert_array_equal(decode_alpha(data, max_bytes=size), small)
