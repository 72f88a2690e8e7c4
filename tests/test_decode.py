"""Tests for blendkit.decode on tiny generated media (tests/media.py).

Every generated frame carries its index, so the tests assert exactly which source frame the
decoder shows at each output time.
"""

from __future__ import annotations

import shutil
import tracemalloc
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from blendkit.decode import DecodeError, ProbeInfo, VideoDecoder, probe, pts_to_seconds
from blendkit.limits import Limits
from tests.media import (
    audio_signal,
    encoder_available,
    frame_indices,
    frame_times,
    make_audio_only,
    make_not_video,
    make_png_video,
    make_truncated,
    make_unknown_codec,
    make_video,
    make_without_duration,
    make_zero_byte,
    png_image,
)

FORMATS = [  # (suffix, encoder)
    ("mp4", "h264"),
    ("avi", "mpeg4"),
    ("avi", "mjpeg"),
    ("mkv", "libvpx-vp9"),
    ("webm", "libvpx-vp9"),
    ("ogv", "libtheora"),
    ("mov", "h264"),
    ("mkv", "h264"),
]


def expected_indices(times: np.ndarray, start_s: float, n: int, fps: float) -> list[int]:
    """Source frame on screen at start_s + k/fps: the last one whose time is <= it."""
    rel = times - times[0]
    out_t = start_s + np.arange(n) / fps
    idx = np.searchsorted(rel, out_t + 1e-6, side="right") - 1
    return np.maximum(idx, 0).tolist()


def audio_lag(got: np.ndarray, start_s: float, rate: int, max_lag: int = 16) -> tuple[int, float]:
    """(lag in samples, rms error) of the best match of ``got`` with the test tone shifted by up
    to ``max_lag`` samples (the 440 Hz tone repeats every 36 samples at 16 kHz: keep it < 18)."""
    t = start_s + np.arange(len(got)) / rate
    errs = [
        np.sqrt(np.mean((got - audio_signal(t + lag / rate)[0]) ** 2))
        for lag in range(-max_lag, max_lag + 1)
    ]
    best = int(np.argmin(errs))
    return best - max_lag, float(errs[best])


FIXTURES = Path(__file__).parent / "data"


def need_encoder(codec: str) -> None:
    """PyAV wheels have no Theora encoder: Theora files come from tests/data instead (made once
    with Debian's ffmpeg from the same frame pattern, see tests/data/README.md)."""
    if not encoder_available(codec) and codec != "libtheora":
        pytest.skip(f"this PyAV wheel has no {codec} encoder")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Generate each file once per module: media(name, **make_video kwargs) -> (path, frames)."""
    root = tmp_path_factory.mktemp("media")
    cache = {}

    def get(name: str, **kwargs):
        if name not in cache:
            path = root / name
            if kwargs.get("codec") == "libtheora" and not encoder_available("libtheora"):
                shutil.copy(FIXTURES / name, path)  # the frames it holds, encoded here as VP9
                cache[name] = (
                    path,
                    make_video(root / f"{name}.mkv", **{**kwargs, "codec": "libvpx-vp9"}),
                )
            else:
                cache[name] = (path, make_video(path, **kwargs))
        return cache[name]

    return get


# ------------------------------------------------------------------ formats


@pytest.mark.parametrize("audio", [False, True], ids=["noaudio", "audio"])
@pytest.mark.parametrize(("suffix", "codec"), FORMATS, ids=[f"{s}-{c}" for s, c in FORMATS])
def test_formats_pick_exact_frames_and_audio(media, suffix, codec, audio):
    need_encoder(codec)
    name = f"fmt_{codec}_{int(audio)}.{suffix}"
    path, src = media(name, codec=codec, fps=25, n_frames=75, audio=audio)

    info = probe(path)
    assert (info.width, info.height, info.fps) == (64, 48, 25.0)
    # the video's, not the audio's; Ogg records the last frame's granule, one frame short at most
    assert info.duration_s == pytest.approx(3.0, abs=0.041 if suffix == "ogv" else 1e-6)
    assert info.has_audio is audio
    assert info.audio_channels == (1 if audio else None)

    times = frame_times(75, 25)
    with VideoDecoder(path) as dec:
        assert dec.info == info
        head = dec.frames(0.0, 10, 25, None)
        assert frame_indices(head) == list(range(10))
        # full-size RGB close to what was encoded (channel order, colour range and matrix)
        assert np.abs(head.astype(int) - src[:10].astype(int)).mean() < 6
        resets = []
        original = dec._reset
        dec._reset = lambda: (resets.append(1), original())[1]
        mid = dec.frames(1.7, 12, 10, None)  # seeks; output at 10 fps from a 25 fps source
        assert frame_indices(mid) == expected_indices(times, 1.7, 12, 10)
        assert resets == []  # the seek was trusted: no decoding from the start
        if audio:
            for start in (0.2, 1.3):  # from the start, after a seek
                got = dec.audio(start, 1.0, 16000)
                assert got.shape == (16000,) and got.dtype == np.float32
                lag, rms = audio_lag(got, start, 16000)
                assert rms < 0.02
                # Matroska stores millisecond timestamps: after a seek, up to 0.5 ms off; the Ogg
                # fixture was made from a Matroska file, so it carries that and Vorbis framing: 1 ms
                assert abs(lag) <= {"mkv": 8, "webm": 8, "ogv": 16}.get(suffix, 1)
        else:
            with pytest.raises(DecodeError, match="no audio stream"):
                dec.audio(0.0, 1.0, 16000)


# ------------------------------------------------------------------ frame rates


@pytest.mark.parametrize("src_fps", [12, 30, 120])
def test_resampling_by_timestamp(media, src_fps):
    n_src = 3 * src_fps
    path, _ = media(f"rate{src_fps}.mp4", fps=src_fps, n_frames=n_src, gop=src_fps)
    times = frame_times(n_src, src_fps)
    with VideoDecoder(path) as dec:
        for start, n, fps in [(0.0, 30, 25), (1.1, 40, 25), (1.55, 30, 60)]:
            got = frame_indices(dec.frames(start, n, fps, None))
            assert got == expected_indices(times, start, n, fps), (start, n, fps)


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_variable_frame_rate(media, suffix):
    path, _ = media(f"vfr.{suffix}", fps=25, n_frames=80, vfr=True)
    times = frame_times(80, 25, vfr=True)
    assert len(set(np.round(np.diff(times), 3))) > 3  # really irregular
    with VideoDecoder(path) as dec:
        for start in (0.0, 0.37, 1.3):
            got = frame_indices(dec.frames(start, 30, 25, None))
            assert got == expected_indices(times, start, 30, 25), start


def test_stream_not_starting_at_zero(media):
    path, _ = media("offset.mkv", fps=25, n_frames=50, start_s=1.0)
    with VideoDecoder(path) as dec:
        assert frame_indices(dec.frames(0.0, 10, 25, None)) == list(range(10))
        assert frame_indices(dec.frames(1.2, 10, 25, None)) == list(range(30, 40))


def test_too_short_raises_truncated(media):
    path, _ = media("short.mp4", n_frames=50)  # 2.0 s
    with VideoDecoder(path) as dec:
        assert frame_indices(dec.frames(1.0, 25, 25, None)) == list(range(25, 50))
        with pytest.raises(DecodeError, match="truncated: got 13 of 20 frames"):
            dec.frames(1.5, 20, 25, None)
        with pytest.raises(DecodeError, match="truncated: got 25 of 26 frames"):
            dec.frames(1.0, 26, 25, None)  # the last frame ends at 2.0 s


# ------------------------------------------------------------------ seeking


def test_seek_equals_decoding_from_start(media):
    path, _ = media("seek.mp4", fps=30, n_frames=240, gop=15)  # 8 s
    with VideoDecoder(path) as dec:
        whole = dec.frames(0.0, 200, 25, None)
    with VideoDecoder(path) as dec:
        resets = []
        original = dec._reset
        dec._reset = lambda: (resets.append(1), original())[1]
        clip = dec.frames(5.0, 40, 25, None)
        again = dec.frames(2.04, 20, 25, 24)
        assert resets == []  # both seeks were trusted, not replaced by a full decode
    np.testing.assert_array_equal(clip, whole[125:165])
    assert frame_indices(again) == frame_indices(whole[51:71])


def test_nonreference_pictures_before_the_window_are_not_decoded(media):
    path, _ = media("onegop.mp4", fps=30, n_frames=150, gop=150)  # one key frame, B-frames
    times = frame_times(150, 30)
    with VideoDecoder(path) as dec:
        got = frame_indices(dec.frames(3.3, 25, 25, None))
        assert dec.skipped > 20 and dec.redecoded == 0  # of the 84 pictures before 2.8 s
    assert got == expected_indices(times, 3.3, 25, 25)


def test_a_skipped_picture_that_is_needed_is_decoded_again(media, monkeypatch):
    # With B-frames this cannot happen (the later reference picture comes first in decode order
    # and ends skipping), so the decoder is told that the picture on screen was skipped.
    path, _ = media("onegop.mp4", fps=30, n_frames=150, gop=150)
    times = frame_times(150, 30)
    monkeypatch.setattr(VideoDecoder, "_skipped_s", lambda self: [3.305])  # frame 99 is at 3.3 s
    with VideoDecoder(path) as dec:
        got = frame_indices(dec.frames(3.31, 25, 25, None))
        assert dec.redecoded == 1 and dec.skipped == 0
    assert got == expected_indices(times, 3.31, 25, 25)


class _LateSeek:
    """Container proxy whose seeks land 2 s after the target (an untrustworthy seek)."""

    def __init__(self, container, stream):
        self._c, self._stream = container, stream

    def seek(self, offset, **kwargs):
        self._c.seek(offset + int(2 / self._stream.time_base), **kwargs)

    def __getattr__(self, name):
        return getattr(self._c, name)


def test_bad_seek_falls_back_to_decoding_from_start(media):
    path, _ = media("seek.mp4", fps=30, n_frames=240, gop=15)
    times = frame_times(240, 30)
    with VideoDecoder(path) as dec:
        dec._container = _LateSeek(dec._container, dec._stream)
        resets = []
        original = dec._reset
        dec._reset = lambda: (resets.append(1), original())[1]
        got = frame_indices(dec.frames(3.0, 20, 25, None))
    assert resets == [1]
    assert got == expected_indices(times, 3.0, 20, 25)


# ------------------------------------------------------------------ resizing


def test_small_video_is_upscaled_to_short_side(media):
    path, _ = media("small.mp4", width=40, height=30)
    with VideoDecoder(path) as dec:
        out = dec.frames(0.2, 8, 25, 148)
        assert out.shape == (8, 148, 197, 3)  # 40 * 148 / 30 = 197.3
        assert frame_indices(out) == list(range(5, 13))


def test_portrait_and_area_resize_matches_reference(media):
    path, _ = media("portrait.mp4", width=48, height=64)
    with VideoDecoder(path) as dec:
        full = dec.frames(0.4, 4, 25, None)
        small = dec.frames(0.4, 4, 25, 18)
    assert full.shape == (4, 64, 48, 3)
    assert small.shape == (4, 24, 18, 3)  # 64 * 18 / 48 = 24
    ref = np.stack([cv2.resize(f, (18, 24), interpolation=cv2.INTER_AREA) for f in full])
    assert np.abs(small.astype(int) - ref.astype(int)).mean() < 4
    assert frame_indices(small) == list(range(10, 14))


def test_frame_threads_give_identical_frames(media):
    path, _ = media("seek.mp4", fps=30, n_frames=240, gop=15)
    with VideoDecoder(path, threads=1) as a, VideoDecoder(path, threads=0) as b:
        np.testing.assert_array_equal(a.frames(4.0, 16, 25, 32), b.frames(4.0, 16, 25, 32))


# ------------------------------------------------------------------ audio


def test_audio_window_length_is_exact(media):
    path, _ = media("aud.mp4", n_frames=100, audio=True, audio_rate=44100)
    with VideoDecoder(path) as dec:
        assert dec.audio(0.0, 64 / 25, 16000).shape == (40960,)
        assert dec.audio(0.31, 0.7777, 22050).shape == (round(0.7777 * 22050),)
        assert dec.audio(1.5, 1.0, 8000).shape == (8000,)


def test_audio_window_is_at_the_right_time(media):
    path, _ = media("onset.mp4", n_frames=100, audio=True, audio_onset_s=1.0)
    path2, _ = media("onset2.mp4", n_frames=100, audio=True, audio_onset_s=2.5)
    with VideoDecoder(path) as dec, VideoDecoder(path2) as dec2:
        a = dec.audio(0.5, 1.0, 16000)  # decoded from the start
        b = dec2.audio(2.0, 1.0, 16000)  # decoded after a seek
    for x in (a, b):
        assert np.abs(x[:7900]).max() < 0.05  # silence before the onset
        onset = int(np.argmax(np.abs(x) > 0.25))
        assert abs(onset - 8000) <= 48  # within 3 ms of 0.5 s into the window
        assert np.abs(x[8200:]).max() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("gains", "level"),
    [
        ((0, 0, 0.5, 0, 0, 0), 0.5),  # centre only: mixed in at unity
        ((0.5, 0, 0, 0, 0, 0), 0.5 * 0.7071),  # front left only: -3 dB
        ((0, 0, 0, 0.5, 0, 0), 0.0),  # LFE is not mixed into mono
    ],
    ids=["centre", "left", "lfe"],
)
def test_surround_downmix(media, gains, level):
    path, _ = media(f"surround{gains}.mp4", audio=True, audio_channels=6, audio_gains=gains)
    assert probe(path).audio_channels == 6
    with VideoDecoder(path) as dec:
        x = dec.audio(0.5, 1.0, 16000)
    assert np.abs(x).max() == pytest.approx(level, abs=0.03)


def test_missing_audio_at_the_end(media):
    path, _ = media("pcm.avi", codec="mpeg4", n_frames=50, audio=True)  # exactly 2.0 s of PCM
    with VideoDecoder(path) as dec:
        x = dec.audio(1.0, 1.03, 16000)  # 30 ms past the end: zero-filled
        assert x.shape == (16480,)
        want = audio_signal(1.0 + np.arange(16000) / 16000)[0]
        assert np.abs(x[:15900] - want[:15900]).max() < 0.01
        assert not x[16010:].any()
        with pytest.raises(DecodeError, match="truncated audio"):
            dec.audio(1.5, 1.0, 16000)


# ------------------------------------------------------------------ bad files


def test_zero_byte(tmp_path):
    path = make_zero_byte(tmp_path / "empty.mp4")
    for call in (probe, VideoDecoder):
        with pytest.raises(DecodeError, match="zero-byte file"):
            call(path)


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_truncated(tmp_path, suffix):
    src = tmp_path / f"whole.{suffix}"
    make_video(src, n_frames=100, width=96, height=64)
    path = make_truncated(tmp_path / f"cut.{suffix}", src)
    assert probe(path).duration_s == pytest.approx(4.0, abs=0.05)  # metadata still says 4 s
    with VideoDecoder(path) as dec:
        with pytest.raises(DecodeError, match=r"truncated: got \d+ of 100 frames"):
            dec.frames(0.0, 100, 25, None)


@pytest.mark.parametrize("text", [False, True], ids=["random", "text"])
def test_not_a_video(tmp_path, text):
    path = make_not_video(tmp_path / "fake.mp4", text=text)
    with pytest.raises(DecodeError, match="cannot open: "):
        probe(path)
    with pytest.raises(DecodeError, match="cannot open: "):
        VideoDecoder(path)


def test_audio_only(tmp_path):
    path = make_audio_only(tmp_path / "sound.m4a")
    for call in (probe, VideoDecoder):
        with pytest.raises(DecodeError, match="no video stream"):
            call(path)


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="cannot open: "):
        probe(tmp_path / "nope.mp4")


# ------------------------------------------------------------------ small things


def test_probe_fields(media):
    path, _ = media("probe.mov", fps=30, n_frames=45, audio=True, audio_channels=2)
    assert probe(path) == ProbeInfo(
        duration_s=1.5,
        width=64,
        height=48,
        fps=30.0,
        video_codec="h264",
        has_audio=True,
        audio_rate=22050,
        audio_channels=2,
    )


def test_probe_without_duration_metadata(tmp_path):
    path = make_without_duration(tmp_path / "stream.mkv", fps=25, n_frames=50)
    assert probe(path).duration_s == pytest.approx(2.0)  # last packet's pts + duration
    with VideoDecoder(path) as dec:
        assert frame_indices(dec.frames(1.0, 25, 25, None)) == list(range(25, 50))


def test_pts_to_seconds():
    assert pts_to_seconds(512, Fraction(1, 12800)) == 0.04
    assert pts_to_seconds(-1001, Fraction(1, 30000)) == pytest.approx(-1001 / 30000)


def test_close(media):
    path, _ = media("short.mp4", n_frames=50)
    dec = VideoDecoder(path)
    dec.close()
    with pytest.raises(ValueError, match="closed"):
        dec.frames(0.0, 1, 25, None)


# ------------------------------------------------------------------ caps on hostile media


def test_frames_over_the_pixel_cap_are_never_decoded(tmp_path):
    huge = png_image(16000, 16000)  # 256 MB of pixels in 250 KB
    declared = make_png_video(tmp_path / "huge.mov", [huge] * 3, declare=(16000, 16000))
    grows = make_png_video(tmp_path / "grows.mov", [png_image(64, 48)] + [huge] * 9)
    tracemalloc.start()
    try:
        for call in (probe, VideoDecoder):
            with pytest.raises(DecodeError, match="limits.max_pixels"):
                call(declared)
        assert probe(grows).width == 64  # its first frame is small, and so is what it declares
        with VideoDecoder(grows) as dec, pytest.raises(DecodeError, match="limits.max_pixels"):
            dec.frames(0.0, 8, 25.0, 20)  # the decoder refuses the first large frame
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # the out array is 8x20x27x3; one 16000x16000 frame would be 256 MB


def test_pixel_cap_also_bounds_the_resized_frame(tmp_path, media):
    thin = make_png_video(tmp_path / "thin.mov", [png_image(65535, 1)] * 10, declare=(65535, 1))
    with pytest.raises(DecodeError, match=r"65535x1 resized to 1310700x20 is over the cap"):
        probe(thin, short_side=20)
    path, _ = media("cap.mp4", n_frames=25, width=64, height=48)
    small = Limits(max_pixels=64 * 48)
    assert probe(path, small, short_side=48).width == 64  # 64x48 stays 64x48
    for call in (probe, VideoDecoder):  # the size the header declares
        with pytest.raises(DecodeError, match="^frame size 64x48 is over the cap of 3071 pixels"):
            call(path, limits=Limits(max_pixels=64 * 48 - 1))
    with pytest.raises(DecodeError, match="resized to 85x64 is over the cap of 3072"):
        probe(path, small, short_side=64)
    with VideoDecoder(path, limits=small) as dec:
        with pytest.raises(DecodeError, match="resized to 85x64 is over the cap of 3072"):
            dec.frames(0.0, 4, 25.0, 64)
        assert dec.frames(0.0, 4, 25.0, 48).shape == (4, 48, 64, 3)


def test_frame_cap_bounds_the_packets_demuxed_for_a_clip(tmp_path, media):
    flood = make_png_video(  # 80000 fps: a 0.32 s window spans 25600 frames
        tmp_path / "flood.mov", [png_image(16, 16)] * 40000, Fraction(1, 80000), declare=(16, 16)
    )
    assert probe(flood).duration_s == pytest.approx(0.5)
    with VideoDecoder(flood) as dec, pytest.raises(DecodeError, match=r"over 20000 packets"):
        dec.frames(0.0, 8, 25.0, None)
    path, _ = media("cap_audio.mp4", n_frames=50, audio=True)
    few = Limits(max_frames=10)
    with VideoDecoder(path, limits=few) as dec:
        assert frame_indices(dec.frames(0.0, 8, 25.0, None)) == list(range(8))
        with pytest.raises(DecodeError, match=r"over 10 packets to demux \(limits.max_frames\)"):
            dec.frames(0.0, 12, 25.0, None)
        with pytest.raises(DecodeError, match="over 10 audio packets"):
            dec.audio(0.0, 2.0, 8000)
    streamed = make_without_duration(tmp_path / "stream.mkv", n_frames=50)  # scanned for one
    with pytest.raises(DecodeError, match="no duration in the headers and over 10 packets"):
        probe(streamed, few)


def test_a_codec_ffmpeg_does_not_know_and_any_failure_are_decode_errors(tmp_path, monkeypatch):
    path = make_unknown_codec(tmp_path / "unknown.avi")
    for call in (probe, VideoDecoder):
        with pytest.raises(DecodeError, match="unknown video codec: FFmpeg has no decoder"):
            call(path)
    good = tmp_path / "good.mp4"
    make_video(good, n_frames=25)

    def broken(*args, **kwargs):
        raise OverflowError("a numpy surprise\nover two lines")

    with VideoDecoder(good) as dec:
        monkeypatch.setattr(dec, "_fill", broken)
        with pytest.raises(DecodeError, match="^cannot decode: OverflowError: a numpy surprise$"):
            dec.frames(0.0, 4, 25.0, None)
