"""Decompose any video file with a trained run (the paper's graphics use case, section 4.3).

What we chose (the paper shows real-video results, Figures 8-9, without the procedure):

* Geometry. Frames are resampled to the fps the model was trained at (the run's record,
  ``RUN/trained_on.json``: the shards' fps over ``data.frame_stride``) with
  ``blendkit.decode.VideoDecoder`` (any codec, length, frame rate), the shorter side is resized
  to the model's input size S (the shards' frame size over ``pixel_pool``) and the
  centre S x S square is kept: one crop for every frame, so the layers stay consistent over
  time. Tiling the long side would cover the whole frame but would need the output slots of
  separately decomposed tiles to be matched, which the uncontrolled models do not guarantee.
* Windows. The video is processed in consecutive windows of ``window`` frames (64, the clip
  length of the paper); the last, shorter window is padded by repeating its last frame and the
  padding is dropped from the outputs. The outputs of the n slots are written as
  ``layer_1.mp4`` ... ``layer_n.mp4`` (the pages' display encoding, ``blendkit.pages.encode``:
  H.264 4:2:0 with ``+faststart``, at the model's fps, exactly as many frames as the input has
  at that fps), plus the cropped input as ``input.mp4`` and its soundtrack, mono at the run's
  audio rate, as ``input.wav``.
* Page. ``decompose.html`` (``trainer.eval.decompose_page``) plays the input, every layer and
  the soundtrack in sync, the layer the audio selects marked.
* Slot order. An uncontrolled model may put a layer in a different slot in the next window, so
  each window's outputs are permuted to best match (the paper's l, Hungarian/exhaustive
  matching) the previous window's last frame; C3 with deterministic control keeps its order.
* Audio control (C3). With a soundtrack, each window's audio (resampled to the run's rate,
  zero-padded with the frames) is the control signal, and the selected output is O_1
  (deterministic) or O_argmin s (internal), per window and overall (the slot chosen for the
  most frames). Without a soundtrack the control is silence and no selection is reported.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from blendkit.confine import inside
from blendkit.decode import DecodeError, VideoDecoder, probe
from blendkit.format import Geometry
from blendkit.pages.encode import DisplayAudioWriter, DisplayVideoWriter
from trainer import pixels
from trainer.audio_features import log_mel
from trainer.data import DataConfig
from trainer.eval.decompose_page import DECOMPOSE_PAGE, write_decompose_page
from trainer.eval.runs import LoadedRun, load_run
from trainer.eval.scoring import _uint8  # the one conversion of outputs to displayable frames
from trainer.losses import pit_from_cost, video_loss
from trainer.models import resolve_config
from trainer.models.registry import DETERMINISTIC, NO_CONTROL
from trainer.run_record import TrainedOn

DEFAULT_WINDOW = 64
INPUT_VIDEO, LAYER_VIDEO, INPUT_AUDIO = "input.mp4", "layer_{}.mp4", "input.wav"


class _Files:
    """What ``decompose`` writes as it goes, in the pages' display encoding
    (``blendkit.pages.encode``): ``input.mp4`` (the cropped input at the model's rate),
    ``layer_1.mp4`` ... ``layer_n.mp4``, and ``input.wav`` (the soundtrack under those frames,
    mono at the run's audio rate; only when the video has one)."""

    def __init__(self, out: Path, n: int, fps: float, size: int, audio_rate: int | None) -> None:
        self.input = out / INPUT_VIDEO
        self.layers = [out / LAYER_VIDEO.format(i + 1) for i in range(n)]
        self.sound = out / INPUT_AUDIO if audio_rate else None
        with ExitStack() as stack:  # a writer that fails to open closes those opened before
            self._videos = [
                stack.enter_context(DisplayVideoWriter(p, fps, size, size))
                for p in (self.input, *self.layers)
            ]
            self._audio = (
                stack.enter_context(DisplayAudioWriter(self.sound, audio_rate))
                if (self.sound)
                else None
            )
            self._stack = stack.pop_all()

    def write(self, frames: np.ndarray, outputs: Tensor, wave: np.ndarray | None) -> None:
        """One window: its input frames, the n outputs (n, 3, t, S, S), its soundtrack."""
        self._videos[0].write(frames)
        for writer, output in zip(self._videos[1:], outputs, strict=True):
            writer.write(_uint8(output))
        if self._audio is not None and wave is not None:
            self._audio.write(wave)

    def close(self) -> None:
        self._stack.close()


def centre_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) with min(H, W) == size -> the centre (T, size, size, 3)."""
    h, w = frames.shape[1:3]
    top, left = (h - size) // 2, (w - size) // 2
    return frames[:, top : top + size, left : left + size]


def _frame_count(duration_s: float, fps: float) -> int:
    return max(0, math.floor(duration_s * fps + 1e-6))


def _read_frames(dec: VideoDecoder, start: int, n: int, fps: float, size: int) -> np.ndarray:
    """Frames [start, start + n) at ``fps``; a stream shorter than its probed duration loses
    its last frames (the count is re-tried down to what decodes)."""
    while n > 0:
        try:
            return centre_crop(dec.frames(start / fps, n, fps, short_side=size), size)
        except DecodeError as e:
            if not str(e).startswith("truncated"):
                raise
            n -= 1
    return np.zeros((0, size, size, 3), np.uint8)


def _channels_first(frames: np.ndarray) -> Tensor:
    """(T, H, W, 3) uint8 RGB -> contiguous (3, T, H, W) uint8."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)))


def _pad_time(video: Tensor, length: int) -> Tensor:
    """(1, 3, T, H, W) -> (1, 3, length, H, W) repeating the last frame."""
    missing = length - video.shape[2]
    if missing <= 0:
        return video
    return torch.cat([video, video[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)


def _align(prev_last: Tensor | None, outputs: Tensor) -> Tensor:
    """Permutation of this window's slots that best continues the previous window: (n,) long.

    prev_last: (n, 3, 1, H, W) last output frames of the previous window; outputs (n, 3, T, H, W).
    """
    n = outputs.shape[0]
    if prev_last is None:
        return torch.arange(n)
    first = outputs[:, :, :1]  # (n, 3, 1, H, W)
    cost = video_loss(first.unsqueeze(1), prev_last.unsqueeze(0))  # (n_cur, n_prev)
    _, assignment = pit_from_cost(cost.unsqueeze(0))  # (1, n_prev): current slot per previous slot
    return assignment[0].cpu()


def _open_video(video_path: Path) -> Any:
    if not video_path.exists():
        raise FileNotFoundError(f"{video_path}: no such file")
    if not video_path.is_file():
        raise ValueError(f"{video_path}: not a file")
    try:
        info = probe(video_path)
    except DecodeError as e:
        raise ValueError(f"{video_path}: not a readable video ({e})") from None
    if info.duration_s <= 0 or info.width <= 0:
        raise ValueError(f"{video_path}: not a readable video (no video frames)")
    return info


@torch.no_grad()
def decompose(
    run: str | Path,
    video_path: str | Path,
    out_dir: str | Path,
    *,
    window: int | None = None,
    size: int | None = None,
    fps: float | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Write the n output layers of ``video_path`` as mp4s into ``out_dir``; returns a summary.

    Summary keys: video, run, model, frames, fps, size, window, outputs (paths), input (path),
    sound (``input.wav``'s path, or None without a soundtrack), page (``decompose.html``),
    windows ([{start, frames, chosen}]), control ({has_audio, per_window, overall} for C3,
    else None). ``decompose.json`` in ``out_dir`` holds the same. Raises ``FileNotFoundError``
    (no such video or run) or ``ValueError`` (not a video, run without a checkpoint, bad
    window/size) with a one-line message.
    """
    video_path = Path(video_path)
    info = _open_video(video_path)
    loaded = load_run(run, device)
    window, size, fps = _model_geometry(loaded.record, window, size, fps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rate = loaded.record.geometry.audio_rate
    files = _Files(out, loaded.cfg.model.n_outputs, fps, size, rate if info.has_audio else None)
    try:
        with VideoDecoder(video_path) as dec:
            windows = _run_windows(loaded, dec, info, files, window, size, fps, progress)
    finally:
        files.close()
    written = sum(w["frames"] for w in windows)
    if written == 0:
        raise ValueError(f"{video_path}: no frame decodes at {fps:g} fps")
    summary = {
        "video": str(video_path),
        "run": str(loaded.path),
        "model": loaded.kind,
        "frames": written,
        "fps": fps,
        "size": size,
        "window": window,
        "outputs": [str(p) for p in files.layers],
        "input": str(files.input),
        "sound": None if files.sound is None else str(files.sound),
        "page": str(out / DECOMPOSE_PAGE),
        "windows": windows,
        "control": _control_summary(loaded.control, info.has_audio, windows),
    }
    write_decompose_page(summary, loaded.control)
    inside(out, "decompose.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _run_windows(
    loaded: LoadedRun,
    dec: VideoDecoder,
    info: Any,
    files: _Files,
    window: int,
    size: int,
    fps: float,
    progress: bool,
) -> list[dict[str, Any]]:
    """Decompose the video window by window into ``files``; ``[{start, frames, chosen}]``."""
    geometry, data = loaded.record.geometry, loaded.cfg.data
    use_audio = bool(resolve_config(loaded.kind, loaded.cfg.model).audio)
    total, has_audio = _frame_count(info.duration_s, fps), info.has_audio
    windows: list[dict[str, Any]] = []
    prev_last: Tensor | None = None
    for start in tqdm(
        range(0, total, window), desc="decompose", unit="window", disable=not progress
    ):
        frames = _read_frames(dec, start, min(window, total - start), fps, size)
        t = frames.shape[0]
        if t == 0:
            break
        clip = _pad_time(_channels_first(frames).unsqueeze(0), window)  # (1, 3, W, S, S)
        clip = pixels.to_model(clip.to(loaded.device).float() / 255, loaded.pixel_range)
        got = _window_wave(dec, has_audio, start, t, fps, geometry.audio_rate)
        audio = None
        if use_audio:
            audio = _window_mel(got, window, fps, geometry, data)
            audio = audio.unsqueeze(0).to(loaded.device)  # (1, 1, n_mels, frames)
        outputs, chosen = _window_outputs(loaded, clip, audio, t, prev_last, has_audio)
        prev_last = outputs[:, :, -1:]
        windows.append({"start": start, "frames": t, "chosen": chosen})
        span = _samples_between(start, start + t, fps, geometry.audio_rate)
        shown = pixels.to_display(outputs, loaded.pixel_range)  # (n, 3, t, S, S) in [0, 1]
        files.write(frames, shown, None if got is None else _fit(got, span))
    return windows


def _model_geometry(
    record: TrainedOn, window: int | None, size: int | None, fps: float | None
) -> tuple[int, int, float]:
    """(window, size, fps) as given, else what the run was trained at (its record): its
    shards' clips, subsampled as its loader and trainer did (``data.frame_stride``,
    ``pixel_pool``; both 1 for the paper)."""
    seen = record.model_input
    size = size or min(seen.height, seen.width)
    fps = fps or seen.fps
    window = window or DEFAULT_WINDOW // record.frame_stride
    if size % 32 or window % 8 or window < 8:
        raise ValueError(f"size must be a multiple of 32 and window of 8, got {size}, {window}")
    return window, size, fps


def _window_outputs(
    loaded: LoadedRun,
    clip: Tensor,
    audio: Tensor | None,
    t: int,
    prev_last: Tensor | None,
    has_audio: bool,
) -> tuple[Tensor, int | None]:
    """The model's outputs on one window (its first ``t`` frames), slots re-ordered to continue
    the previous window -> ((n, 3, t, S, S), the audio-chosen slot after the re-ordering)."""
    result = loaded.model(clip, audio)
    outputs = result.outputs[0, :, :, :t].float()  # (n, 3, t, S, S)
    keep_order = loaded.control == DETERMINISTIC  # V1 is O_1 in every window
    order = torch.arange(outputs.shape[0]) if keep_order else _align(prev_last, outputs)
    outputs = outputs[order.to(outputs.device)]
    chosen = None
    if loaded.control != NO_CONTROL and has_audio:
        slot = 0 if loaded.control == DETERMINISTIC else int(result.scores[0].argmin())
        chosen = int((order == slot).nonzero()[0, 0])
    return outputs, chosen


def _window_wave(
    dec: VideoDecoder, has_audio: bool, start: int, t: int, fps: float, rate: int
) -> np.ndarray | None:
    """The soundtrack under frames [start, start + t) at ``rate`` (empty where it has ended),
    or None for a video without one."""
    if not has_audio:
        return None
    try:
        return dec.audio(start / fps, t / fps, rate)
    except DecodeError:
        return np.zeros(0, np.float32)  # the soundtrack ends before this window


def _samples_between(first: int, last: int, fps: float, rate: int) -> int:
    """Audio samples under frames [first, last): consecutive windows add up with no drift."""
    return round(last / fps * rate) - round(first / fps * rate)


def _fit(samples: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` samples: cut, or padded with silence."""
    return np.pad(samples[:n], (0, max(0, n - len(samples))))


def _window_mel(
    got: np.ndarray | None, window: int, fps: float, geometry: Geometry, data: DataConfig
) -> Tensor:
    """Log-mel (1, n_mels, frames) of a window's audio (silence without), zero-padded to
    ``window`` frames."""
    n_samples = round(window / fps * geometry.audio_rate)
    samples = np.zeros(n_samples, np.float32)
    if got is not None:
        samples[: min(len(got), n_samples)] = got[:n_samples]
    return log_mel(samples, geometry.audio_rate, data.n_mels, data.n_fft, data.hop_length)


def _control_summary(control: str, has_audio: bool, windows: list[dict]) -> dict | None:
    if control == NO_CONTROL:
        return None
    per_window = [w["chosen"] for w in windows]
    votes: Counter[int] = Counter()
    for w in windows:
        if w["chosen"] is not None:
            votes[w["chosen"]] += w["frames"]
    overall = votes.most_common(1)[0][0] if votes else None
    return {
        "has_audio": has_audio,
        "rule": "O_1" if control == DETERMINISTIC else "argmin_i s_i",
        "per_window": per_window,
        "overall": overall,  # 0-based slot: layer_{overall + 1}.mp4
    }
