"""Seconds-based video and audio decoding with PyAV.

The paper (section 4) trains on 64-frame clips of Kinetics-600 videos resampled to 25 fps, and
C3 uses the audio of one source as the control signal; it says nothing about decoding. What we
chose:

* Time axis. Every time in this module is in seconds from the *first video frame* of the file
  (its pts is the origin), for video and audio alike, so a file whose streams start at
  pts != 0 behaves like one that starts at 0 and audio stays in sync with video.
* Frame selection. Output frame ``k`` of ``frames(start_s, n, fps, ...)`` is the source frame on
  screen at ``t_k = start_s + k / fps``: the last frame whose time is ``<= t_k`` (sample and
  hold, with ``TIME_EPS_S`` of slack for rounded timestamps). Frames are chosen by presentation
  timestamps, never by index, so 10-200 fps and variable frame rate sources all come out at
  ``fps``. A time before the first frame shows the first frame; a time at or after the end of
  the last frame (its pts plus its duration) raises ``DecodeError("truncated: ...")``.
* Seeking. A seek is never trusted: we decode the first frame of the file before any seek (some
  x264 4:4:4 files decode garbage after a seek otherwise), drop frames decoded after a seek until
  the first key frame, check that this key frame's time is ``<= start_s``, and otherwise decode
  from the beginning of a freshly opened file.
* Skipping. Frames more than ``SKIP_MARGIN_S`` before the window are only decoded when other
  frames reference them: until the first packet at or after that point, the decoder runs with
  ``skip_frame="NONREF"`` (exact: a non-reference picture changes no other picture). On H.264
  with B-frames this halves the decoding before the window, which is most of a clip's cost when
  the key frame is seconds earlier. A B-frame on screen at the window's start is never skipped
  (the later picture it references comes first in decode order and ends skipping); should a
  skipped picture still be one a target needs (a non-reference P-frame), the clip is decoded
  again without skipping.
* Resizing. Conversion to RGB and resizing happen in one swscale call through one reused
  ``VideoReformatter`` with area interpolation (2.5-3x faster than ``to_ndarray`` followed by
  ``cv2.resize``); only frames that are actually output are converted, each once.
* Caps (``blendkit.limits``). A file whose frames (as stored, or once resized) have more than
  ``limits.max_pixels`` pixels is refused from its header when it declares its size, else by the
  decoder itself before the frame is allocated (FFmpeg's ``max_pixels`` option); cutting a clip
  or an audio window demuxes at most ``limits.max_frames`` packets. Any failure on a file's data
  (a codec FFmpeg has no decoder for, an exception of PyAV or numpy) raises ``DecodeError`` with
  a one-line reason, so a caller can skip that file and go on.
* Audio. ``audio`` returns mono float32 at the requested rate, resampled and downmixed by
  ``av.AudioResampler`` (libswresample's standard matrix, so a 5.1 centre channel is mixed in,
  LFE is not). Up to ``MAX_AUDIO_PAD_S`` of missing samples at either edge of the window are
  zero-filled; more raises ``DecodeError``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from blendkit.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)

TIME_EPS_S = 1e-4  # slack when comparing frame times with output times (< 1/200 fps)
MAX_AUDIO_PAD_S = 0.05  # missing audio at a window edge that is zero-filled
AUDIO_PREROLL_S = 0.25  # seek this far before an audio window (codec priming, MDCT overlap)
FRESH_DECODE_S = 1.0  # windows starting earlier than this decode from the start, no seek
SKIP_MARGIN_S = 0.5  # non-reference pictures earlier than this before a window are not decoded


class DecodeError(Exception):
    """A file cannot be decoded as asked; the message is a one-line reason."""


def one_line_reason(e: BaseException) -> str:
    """Why ``e`` happened, in one line: a ``DecodeError``'s message, else the exception's type and
    the first line of its message."""
    if isinstance(e, DecodeError):
        return str(e)
    first = (str(e).splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {first}"


@contextmanager
def _reasons() -> Iterator[None]:
    """Turn any failure while reading one file into ``DecodeError`` with a one-line reason: the
    caller skips that file, whatever PyAV, FFmpeg or numpy raised."""
    try:
        yield
    except DecodeError:
        raise
    except Exception as e:  # noqa: BLE001 - one bad file must never end a run
        raise DecodeError(f"cannot decode: {one_line_reason(e)}") from e


def resized_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) of a frame resized so that its shorter side has ``short_side`` pixels
    (aspect kept, the other side rounded half up); ``None`` keeps the size."""
    if short_side is None:
        return height, width
    if short_side <= 0:
        raise ValueError(f"short_side must be positive, got {short_side}")
    if height <= width:
        return short_side, max(1, math.floor(width * short_side / height + 0.5))
    return max(1, math.floor(height * short_side / width + 0.5)), short_side


def check_frame_size(
    width: int, height: int, short_side: int | None, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Raise ``DecodeError`` if a frame of this size, or resized to ``short_side``, has more than
    ``limits.max_pixels`` pixels."""
    cap = limits.max_pixels
    if width * height > cap:
        raise DecodeError(
            f"frame size {width}x{height} is over the cap of {cap} pixels (limits.max_pixels)"
        )
    out_h, out_w = resized_size(width, height, short_side)
    if out_w * out_h > cap:
        raise DecodeError(
            f"frame size {width}x{height} resized to {out_w}x{out_h} is over the cap of {cap} "
            "pixels (limits.max_pixels)"
        )


@dataclass(frozen=True)
class ProbeInfo:
    """Stream metadata of a video file (no frames decoded)."""

    duration_s: float
    width: int
    height: int
    fps: float | None
    video_codec: str
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None


def pts_to_seconds(pts: int, time_base: Fraction) -> float:
    """Seconds of a timestamp ``pts`` counted in ``time_base`` units (the one conversion)."""
    return float(pts * time_base)


def probe(
    path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS, short_side: int | None = None
) -> ProbeInfo:
    """Open ``path`` and read its stream metadata; raises ``DecodeError`` if unusable, or if its
    frames (resized to ``short_side`` when given) are over ``limits.max_pixels``."""
    with _reasons(), _open(path, limits) as container:
        info = _probe(container, limits)[0]
        check_frame_size(info.width, info.height, short_side, limits)
        return info


class VideoDecoder:
    """Decode clips and audio windows of one file, addressed in seconds.

    ``threads`` sets the video codec's thread count: 1 (default) suits one decoding process per
    core; 0 lets FFmpeg pick and enables frame and slice threads. ``limits`` caps the pixels of a
    frame and the packets demuxed for one clip (see "Caps").
    """

    def __init__(
        self, path: str | os.PathLike, threads: int = 1, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self.limits = limits
        self._packets_left = limits.max_frames  # see _decoded
        self._reformatter = VideoReformatter()
        self._container_used = False
        self._audio_container: av.container.InputContainer | None = None
        self.skipped = 0  # pictures the last ``frames`` call did not decode (see "Skipping")
        self.redecoded = 0  # clips decoded again because a skipped picture was needed
        self._skip_before_pts: int | None = None  # see _decoded
        self._sent_while_skipping: set[int] = set()
        self._seen_pts: set[int | None] = set()
        self._container = None
        try:
            with _reasons():
                self._container = _open(self.path, limits)
                self.info, scanned = _probe(self._container, limits)
                if scanned:  # probing read packets: start over from a freshly opened file
                    self._container.close()
                    self._container = None
                self._reset()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release both containers; the decoder cannot be used afterwards."""
        for container in (self._container, self._audio_container):
            if container is not None:
                container.close()
        self._container = self._audio_container = None
        self._fresh = None

    # ----------------------------------------------------------------- video

    def frames(
        self, start_s: float, n: int, fps: float, short_side: int | None = None
    ) -> np.ndarray:
        """The ``n`` frames on screen at ``start_s + k / fps``: (n, H', W', 3) uint8 RGB.

        ``short_side`` resizes so that the shorter side has that many pixels (aspect kept,
        the other side rounded half up); ``None`` keeps the source size.
        """
        if n < 0 or fps <= 0 or start_s < 0:
            raise ValueError(f"bad clip request start_s={start_s} n={n} fps={fps}")
        if self._container is None:
            raise ValueError("decoder is closed")
        with _reasons():
            return self._frames(start_s, n, fps, short_side)

    def _frames(self, start_s: float, n: int, fps: float, short_side: int | None) -> np.ndarray:
        check_frame_size(self._first.width, self._first.height, short_side, self.limits)
        out_h, out_w = resized_size(self._first.width, self._first.height, short_side)
        out = np.empty((n, out_h, out_w, 3), np.uint8)  # (T, H, W, 3)
        if n == 0:
            return out
        self._packets_left = self.limits.max_frames
        targets = start_s + np.arange(n) / fps
        skip_until = start_s - SKIP_MARGIN_S
        first_t = self._fill(out, targets, skip_until if skip_until > 0 else None)
        skipped = self._skipped_s()
        self.skipped = len(skipped)
        if any(first_t < t <= start_s + TIME_EPS_S for t in skipped):
            log.debug(
                "%s: a skipped picture is on screen at %.3fs: decode again", self.path, start_s
            )
            self.redecoded += 1
            self._reset()
            self._fill(out, targets, None)
            self.skipped = 0
        return out

    def _fill(self, out: np.ndarray, targets: np.ndarray, skip_until_s: float | None) -> float:
        """Decode the frames on screen at ``targets`` into ``out``; returns the time of the frame
        shown at ``targets[0]``. Non-reference pictures before ``skip_until_s`` are skipped."""
        n, out_h, out_w = out.shape[:3]
        start_s = float(targets[0])
        self._skip_before_pts = (
            None if skip_until_s is None else self._origin_pts + math.floor(skip_until_s / self._tb)
        )
        self._sent_while_skipping = set()
        self._seen_pts = set()
        k = 0
        first_t = None
        held = None  # (time_s, frame): the last frame at or before the current target
        written = None  # the frame last converted into `out`, and where
        for t, frame in self._frames_from(start_s):
            if held is None:
                held = (t, frame)  # times before the first frame show the first frame
            while k < n and targets[k] < t - TIME_EPS_S:
                first_t = held[0] if k == 0 else first_t
                written = self._emit(out, k, held[1], written, out_w, out_h)
                k += 1
            if k == n:
                break
            held = (t, frame)
        else:  # end of stream: the last frame stays on screen for its duration
            if held is not None:
                end_t = held[0] + self._frame_duration_s(held[1])
                while k < n and targets[k] < end_t - TIME_EPS_S:
                    first_t = held[0] if k == 0 else first_t
                    written = self._emit(out, k, held[1], written, out_w, out_h)
                    k += 1
        self._fresh = None  # the container is mid-stream now
        self._skip_before_pts = None
        if k < n:
            raise DecodeError(f"truncated: got {k} of {n} frames")
        return first_t

    def _skipped_s(self) -> list[float]:
        """Times of the pictures sent to the decoder while skipping that never came out."""
        missing = self._sent_while_skipping - self._seen_pts
        return [pts_to_seconds(p - self._origin_pts, self._tb) for p in missing]

    def _emit(self, out, k, frame, written, out_w, out_h):
        """Write ``frame`` into ``out[k]``, converting it only if it is not already there."""
        if written is not None and written[0] is frame:
            out[k] = out[written[1]]
            return (frame, k)
        rgb = self._reformatter.reformat(  # threads=1: PyAV's default (auto) slices the
            # conversion across threads and its output then varies from run to run
            frame,
            out_w,
            out_h,
            "rgb24",
            interpolation=Interpolation.AREA,
            threads=1,
        )
        out[k] = rgb.to_ndarray()  # a strided view of the plane: one copy into `out`
        return (frame, k)

    def _frame_duration_s(self, frame: av.VideoFrame) -> float:
        if frame.duration:
            return pts_to_seconds(frame.duration, self._tb)
        if self.info.fps:
            return 1.0 / self.info.fps
        return 0.0

    def _reset(self) -> None:
        """(Re)open the file unless it is freshly opened, and decode its first video frame,
        which sets the time origin."""
        if self._container is None or self._container_used:
            if self._container is not None:
                self._container.close()
            self._container = _open(self.path, self.limits)
        self._container_used = True
        if not self._container.streams.video:
            raise DecodeError("no video stream")
        self._stream = self._container.streams.video[0]
        cc = _video_codec(self._stream)
        cc.options = _decoder_options(self.limits)  # read when the decoder opens
        cc.thread_count = self.threads  # PyAV's default, 0, would start one thread per core
        if self.threads != 1:
            cc.thread_type = "AUTO"  # frame and slice threads
        self._tb = self._stream.time_base
        decoded = self._decoded()
        first = next(decoded, None)
        if first is None:
            raise DecodeError("truncated: no video frame decodes")
        self._first = first
        self._origin_pts = _frame_pts(first)
        self._origin_s = pts_to_seconds(self._origin_pts, self._tb)
        self._fresh = chain([first], decoded)  # frames from the beginning, not yet consumed

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames of the video stream from the container's current position; skips
        non-reference pictures while packets are before ``_skip_before_pts`` (see ``_fill``)."""
        cc = self._stream.codec_context
        cap = self.limits.max_pixels
        try:
            for packet in self._container.demux(self._stream):
                self._packets_left -= 1
                if self._packets_left < 0:
                    raise DecodeError(_over_frames(self.limits))
                if packet.size == 0 and packet.pts is not None:
                    continue  # an empty packet ("repeat the last frame" in Ogg/Theora), not EOF
                skipping = self._skip_before_pts is not None and (
                    packet.pts is not None and packet.pts < self._skip_before_pts
                )
                if not skipping:
                    self._skip_before_pts = None  # once past the point, never skip again
                mode = "NONREF" if skipping else "DEFAULT"
                if cc.skip_frame != mode:
                    cc.skip_frame = mode
                if skipping:
                    self._sent_while_skipping.add(packet.pts)
                try:
                    for frame in packet.decode():
                        if frame.width * frame.height > cap:  # FFmpeg's own check missed it
                            check_frame_size(frame.width, frame.height, None, self.limits)
                        self._seen_pts.add(frame.pts)
                        yield frame
                except av.error.InvalidDataError as e:  # a damaged packet: skip it
                    log.debug("%s: skipping undecodable packet: %s", self.path, e)
                except av.error.ArgumentError as e:  # how the decoder refuses a frame > cap
                    raise DecodeError(
                        f"the decoder refuses a frame ({e}); frames over {cap} pixels "
                        "(limits.max_pixels) are refused this way"
                    ) from e
        except av.error.FFmpegError as e:  # demuxing failed (e.g. a cut file): stream ends
            log.debug("%s: demuxing stopped: %s", self.path, e)

    def _timed(self, frames: Iterator[av.VideoFrame]) -> Iterator[tuple[float, av.VideoFrame]]:
        for frame in frames:
            yield pts_to_seconds(_frame_pts(frame) - self._origin_pts, self._tb), frame

    def _frames_from(self, start_s: float) -> Iterator[tuple[float, av.VideoFrame]]:
        """Timed frames from one at or before ``start_s`` on (or from the first frame)."""
        if start_s < FRESH_DECODE_S:
            if self._fresh is None:
                self._reset()
            return self._timed(self._fresh)
        target = self._origin_pts + math.floor(start_s / self._tb)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        timed = self._timed(self._decoded())
        for t, frame in timed:
            if t > start_s + TIME_EPS_S:
                log.debug("%s: seek to %.3fs landed at %.3fs", self.path, start_s, t)
                break
            if frame.key_frame:
                return chain([(t, frame)], timed)
            # frames before the first key frame (leading pictures of an open GOP) may reference
            # pictures the seek skipped: never show them
        self._reset()
        return self._timed(self._fresh)

    # ----------------------------------------------------------------- audio

    def audio(self, start_s: float, duration_s: float, rate: int) -> np.ndarray:
        """Mono float32 audio of ``[start_s, start_s + duration_s)``: round(duration_s * rate)
        samples, resampled to ``rate`` and downmixed by ``av.AudioResampler``."""
        if not self.info.has_audio:
            raise DecodeError("no audio stream")
        if duration_s < 0 or rate <= 0 or start_s < 0:
            raise ValueError(f"bad audio request start_s={start_s} duration_s={duration_s}")
        with _reasons():
            return self._audio(start_s, duration_s, rate)

    def _audio(self, start_s: float, duration_s: float, rate: int) -> np.ndarray:
        n = round(duration_s * rate)
        seek = start_s >= AUDIO_PREROLL_S + FRESH_DECODE_S
        got = self._audio_from(start_s, start_s + duration_s, rate, seek)
        if got is None:  # the seek landed after the window: decode from the start
            got = self._audio_from(start_s, start_s + duration_s, rate, False)
            assert got is not None
        first_s, signal = got
        offset = round((start_s - first_s) * rate)
        max_pad = round(MAX_AUDIO_PAD_S * rate)
        if offset < -max_pad:
            raise DecodeError(f"audio starts {first_s - start_s:.3f}s after the window")
        lead = max(0, -offset)
        window = signal[max(0, offset) : max(0, offset) + n - lead]
        if lead + len(window) < n - max_pad:
            raise DecodeError(f"truncated audio: got {lead + len(window)} of {n} samples")
        if lead or len(window) < n - lead:
            window = np.concatenate(
                [np.zeros(lead, np.float32), window, np.zeros(n - lead - len(window), np.float32)]
            )
        return np.ascontiguousarray(window, np.float32)

    def _audio_from(
        self, start_s: float, end_s: float, rate: int, seek: bool
    ) -> tuple[float, np.ndarray] | None:
        """Resampled audio from a frame before ``start_s`` to past ``end_s``: (time of the first
        sample, samples), or None if a seek did not land at least ``AUDIO_PREROLL_S / 2`` before
        ``start_s`` (decoders need a frame or two to settle after a seek)."""
        container = self._audio_container
        if container is None or not seek:  # a used container: reopen to read from the start
            if container is not None:
                container.close()
            container = self._audio_container = _open(self.path, self.limits)
        stream = container.streams.audio[0]
        tb = stream.time_base
        if seek:
            target = self._origin_s + start_s - AUDIO_PREROLL_S
            container.seek(math.floor(target / tb), stream=stream, backward=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        first_s = None
        total = 0
        packets_left = self.limits.max_frames
        try:
            for packet in container.demux(stream):
                packets_left -= 1
                if packets_left < 0:
                    raise DecodeError(_over_frames(self.limits, "audio "))
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as e:
                    log.debug("%s: skipping undecodable audio packet: %s", self.path, e)
                    continue
                for frame in frames:
                    if first_s is None:
                        first_s = pts_to_seconds(_frame_pts(frame), tb) - self._origin_s
                        if seek and first_s > start_s - AUDIO_PREROLL_S / 2:
                            return None  # too close: the first frames after a seek are primed
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray()[0].copy())
                        total += out.samples
                if first_s is not None and first_s + total / rate > end_s + AUDIO_PREROLL_S:
                    break
        except av.error.FFmpegError as e:
            log.debug("%s: audio demuxing stopped: %s", self.path, e)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray()[0].copy())
        if first_s is None:
            raise DecodeError("truncated audio: no audio frame decodes")
        return first_s, np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _frame_pts(frame: av.frame.Frame) -> int:
    pts = frame.pts if frame.pts is not None else frame.dts
    if pts is None:
        raise DecodeError("frame without timestamp")
    return pts


def _over_frames(limits: Limits, what: str = "") -> str:
    return f"over {limits.max_frames} {what}packets to demux (limits.max_frames)"


def _decoder_options(limits: Limits) -> dict[str, str]:
    """Codec options of every decoder we open: FFmpeg refuses a frame over ``max_pixels`` before
    allocating it."""
    return {"max_pixels": str(limits.max_pixels)}


def _video_codec(video: av.video.stream.VideoStream) -> av.codec.context.CodecContext:
    """The stream's codec context; ``DecodeError`` if FFmpeg has no decoder for its codec."""
    if video.codec_context is None:
        raise DecodeError("unknown video codec: FFmpeg has no decoder for it")
    return video.codec_context


def _open(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> av.container.InputContainer:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DecodeError(f"cannot open: {e.strerror}") from e
    if size == 0:
        raise DecodeError("zero-byte file")
    try:
        # the options reach the decoders that probing the streams opens
        return av.open(str(path), metadata_errors="ignore", options=_decoder_options(limits))
    except av.error.FFmpegError as e:
        raise DecodeError(f"cannot open: {e.strerror or e}") from e


def _probe(
    container: av.container.InputContainer, limits: Limits = DEFAULT_LIMITS
) -> tuple[ProbeInfo, bool]:
    """Stream metadata, and whether finding the duration had to read packets."""
    if not container.streams.video:
        raise DecodeError("no video stream")
    video = container.streams.video[0]
    cc = _video_codec(video)
    if not cc.width or not cc.height:  # FFmpeg could not tell without decoding a frame > cap
        raise DecodeError(
            "cannot open: video stream has no frame size (none declared, or frames over "
            f"{limits.max_pixels} pixels: limits.max_pixels)"
        )
    check_frame_size(cc.width, cc.height, None, limits)
    rate = video.average_rate or video.guessed_rate
    audio = container.streams.audio[0] if container.streams.audio else None
    duration_s, scanned = _duration_s(container, video, limits)
    info = ProbeInfo(
        duration_s=duration_s,
        width=cc.width,
        height=cc.height,
        fps=float(rate) if rate else None,
        video_codec=cc.name,
        has_audio=audio is not None,
        audio_rate=audio.codec_context.sample_rate if audio is not None else None,
        audio_channels=audio.codec_context.layout.nb_channels if audio is not None else None,
    )
    return info, scanned


def _duration_s(
    container: av.container.InputContainer,
    video: av.video.stream.VideoStream,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[float, bool]:
    """Duration from the video stream (its duration, else Matroska's per-stream DURATION tag),
    else the container (which may include a longer audio track), else the last packet's end;
    and whether packets were read to find it."""
    if video.duration and video.time_base:
        return pts_to_seconds(video.duration, video.time_base), False
    tag = _parse_hms(video.metadata.get("DURATION") or video.metadata.get("duration"))
    if tag:
        return tag, False
    if container.duration:
        return container.duration / av.time_base, False
    # No metadata: demux (not decode) the packets and take the latest end time.
    start = end = None
    for i, packet in enumerate(container.demux(video)):
        if i >= limits.max_frames:
            raise DecodeError(f"no duration in the headers and {_over_frames(limits)}")
        if packet.pts is None:
            continue
        start = packet.pts if start is None else min(start, packet.pts)
        end = max(end or packet.pts, packet.pts + (packet.duration or 0))
    if start is None:
        raise DecodeError("no video packets")
    return pts_to_seconds(end - start, video.time_base), True


def _parse_hms(text: str | None) -> float | None:
    """Seconds of an ``HH:MM:SS.fraction`` tag (as Matroska writes), or None."""
    try:
        h, m, sec = (text or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None
