"""A small synthetic dataset in the exact Kinetics-600 layout, for ``make demo`` and tests.

Seven classes, each a moving object whose sound is driven by its own motion, so the audio of a clip
tells which of two blended videos it belongs to (what C3's audio control must learn). Behind the
object, every class has its own drifting oriented texture (``Texture``), so the layers of a blend
are separable by orientation and motion, as real layers are by their structure.

Every class is also filmed in its own light (``palette``): all its colours, texture and object,
are shades of one hue (hue = class / 7, full saturation), so each video's pixels lie on one line
through black in RGB. A transparent blend of two classes is then separable pixel by pixel once the
two hues are known, as real scenes are by their typical colours. Measured with tiny C2 (width 1/4,
8x32x32 clips, in-memory batches, 600 steps): random colours per video left validation at
0.96-1.01x the identity baseline; class palettes reached 0.63x.

============== ================================= =========================================
class          motion                            sound
============== ================================= =========================================
bouncing_ball  ball falls and bounces            a click at every bounce
sliding_block  block slides left and right       a tone whose pitch follows x (220-440 Hz)
pulsing_disc   disc grows and shrinks            noise whose loudness follows the size
spinning_bar   bar rotates                       660 Hz tone, tremolo at the rotation rate
blinking_lamp  square lamp switches on and off   1 kHz beep while on
orbiting_dot   dot circles the centre            two tones alternating each half orbit
falling_rain   drops fall                        a tick per drop landing
============== ================================= =========================================

Layout (as the Kinetics download script writes it)::

    DIR/annotations/train.csv        label,youtube_id,time_start,time_end,split
    DIR/annotations/validate.csv
    DIR/train/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4      H.264 + AAC stereo
    DIR/validate/<label>/...

Like the real dataset, a few inputs are bad: one annotated clip has no file, one file is zero bytes,
and one video has no audio track. Frame rates vary (24, 25, 30 fps) so resampling is exercised.
"""

from __future__ import annotations

import colorsys
import csv
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from blendkit import codec
from blendkit.kinetics import clip_stem
from blendkit.typed_config import at_least, positive

TRAIN, VALIDATE = "train", "validate"  # the demo's splits: its folders and annotation CSVs
CLASSES = (
    "bouncing_ball",
    "sliding_block",
    "pulsing_disc",
    "spinning_bar",
    "blinking_lamp",
    "orbiting_dot",
    "falling_rain",
)
WIDTH, HEIGHT = 224, 160
AUDIO_RATE = 44100


@dataclass(frozen=True)
class DemoConfig:
    """What ``blendkit demo-data`` writes: videos per class and split, their length, the seed."""

    folder: str
    per_class: int = 8
    val_per_class: int = 2
    seconds: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        at_least(self, 1, "per_class")
        at_least(self, 0, "val_per_class", "seed")
        positive(self, "seconds")


def palette(label: str, value: float) -> np.ndarray:
    """A shade (RGB float32 in [0, 255]) of class ``label``'s hue, at brightness ``value``."""
    hue = CLASSES.index(label) / len(CLASSES)
    return np.array(colorsys.hsv_to_rgb(hue, 1.0, value), np.float32) * 255


class Texture:
    """A drifting oriented grating between a bright and a dark shade of the class's hue, with the
    class's own orientation, spatial frequency and drift. In a blend, the two videos' textures
    differ in orientation and motion, which is what makes the layers separable (smooth random
    fields summed are not: any smooth split of their sum explains it equally well)."""

    def __init__(self, label: str, rng: np.random.Generator):
        c = CLASSES.index(label)
        theta = np.pi * c / len(CLASSES) + rng.uniform(-0.1, 0.1)
        freq = (0.04 + 0.012 * (c % 4)) * rng.uniform(0.9, 1.1)  # cycles per pixel
        y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        self.phase0 = 2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta))
        self.speed = (0.15 + 0.05 * c) * rng.choice([-1.0, 1.0])  # radians per frame
        self.a = palette(label, rng.uniform(0.7, 1.0))
        self.b = palette(label, rng.uniform(0.1, 0.4))
        self.offset = rng.uniform(0, 2 * np.pi)

    def frame(self, k: int) -> np.ndarray:
        g = 0.5 + 0.5 * np.cos(self.phase0 + self.offset + self.speed * k)
        return (g[..., None] * self.a + (1 - g[..., None]) * self.b).astype(np.uint8)


def _tone(t: np.ndarray, freq) -> np.ndarray:
    return np.sin(2 * np.pi * np.cumsum(np.broadcast_to(freq, t.shape)) / AUDIO_RATE)


def render(label: str, seconds: float, fps: float, rng: np.random.Generator):
    """Frames (N, H, W, 3) uint8 and audio (samples,) float32 of one video of class ``label``."""
    n = int(round(seconds * fps))
    texture = Texture(label, rng)
    colour = tuple(float(c) for c in palette(label, rng.uniform(0.4, 1.0)))
    rate = rng.uniform(0.6, 1.4)  # motion speed, shared by picture and sound
    phase = rng.uniform(0, 1)
    ta = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    cyc_a = rate * ta + phase  # motion cycles at audio times
    audio = np.zeros_like(ta)
    drops = rng.uniform(0, WIDTH, 12), rng.uniform(0, 1, 12)
    frames = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for k in range(n):
        img = texture.frame(k)
        c = rate * k / fps + phase
        x = c % 1.0
        if label == "bouncing_ball":
            y = int(20 + (HEIGHT - 50) * (1 - abs(2 * x - 1)) ** 0.5)
            cv2.circle(img, (WIDTH // 2 + int(30 * math.sin(c)), HEIGHT - y), 16, colour, -1)
        elif label == "sliding_block":
            cx = int(30 + (WIDTH - 60) * (0.5 - 0.5 * math.cos(2 * math.pi * c)))
            cv2.rectangle(img, (cx - 18, 60), (cx + 18, 100), colour, -1)
        elif label == "pulsing_disc":
            r = int(10 + 40 * (0.5 - 0.5 * math.cos(2 * math.pi * c)))
            cv2.circle(img, (WIDTH // 2, HEIGHT // 2), r, colour, -1)
        elif label == "spinning_bar":
            a = 2 * math.pi * c
            d = (int(60 * math.cos(a)), int(60 * math.sin(a)))
            cv2.line(
                img,
                (WIDTH // 2 - d[0], HEIGHT // 2 - d[1]),
                (WIDTH // 2 + d[0], HEIGHT // 2 + d[1]),
                colour,
                10,
            )
        elif label == "blinking_lamp":
            if x < 0.5:
                cv2.rectangle(img, (80, 50), (144, 110), colour, -1)
        elif label == "orbiting_dot":
            a = 2 * math.pi * c
            cv2.circle(
                img,
                (int(WIDTH / 2 + 55 * math.cos(a)), int(HEIGHT / 2 + 55 * math.sin(a))),
                12,
                colour,
                -1,
            )
        elif label == "falling_rain":
            for dx, dp in zip(*drops, strict=True):
                y = int(((c + dp) % 1.0) * HEIGHT)
                cv2.line(img, (int(dx), y - 8), (int(dx), y), colour, 3)
        frames[k] = img
    x_a = cyc_a % 1.0
    if label == "bouncing_ball":
        since = (x_a - 0.0) % 1.0  # ball is on the floor at x = 0 (and 1)
        audio = np.exp(-since * 40) * _tone(ta, 1500.0)
    elif label == "sliding_block":
        audio = 0.6 * _tone(ta, 220 + 220 * (0.5 - 0.5 * np.cos(2 * np.pi * cyc_a)))
    elif label == "pulsing_disc":
        audio = rng.standard_normal(ta.shape) * 0.4 * (0.5 - 0.5 * np.cos(2 * np.pi * cyc_a))
    elif label == "spinning_bar":
        audio = 0.6 * _tone(ta, 660.0) * (0.5 + 0.5 * np.cos(4 * np.pi * cyc_a))
    elif label == "blinking_lamp":
        audio = 0.6 * _tone(ta, 1000.0) * (x_a < 0.5)
    elif label == "orbiting_dot":
        audio = 0.5 * _tone(ta, np.where(x_a < 0.5, 330.0, 495.0))
    elif label == "falling_rain":
        for dp in drops[1]:
            since = (cyc_a + dp) % 1.0
            audio = audio + 0.3 * np.exp(-since * 60) * rng.standard_normal(ta.shape)
    audio = audio + 0.01 * rng.standard_normal(ta.shape)  # room noise
    return frames, np.clip(audio, -1, 1).astype(np.float32)


def write_video(path: Path, frames: np.ndarray, fps: float, audio: np.ndarray | None) -> None:
    """H.264 yuv420p video (+ AAC stereo audio) in mp4, as most Kinetics files are."""
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        # x264 pinned as for shards (codec.X264_PARAMS): the same demo data on every run
        vs.options = {"crf": "20", "preset": "veryfast", "x264-params": codec.X264_PARAMS}
        vs.thread_count = 1
        vs.codec_context.thread_type = "NONE"
        aus = None
        if audio is not None:
            aus = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            aus.bit_rate = 96000
        for img in frames:
            container.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(vs.encode(None))
        if aus is not None:
            pcm = np.repeat(audio[None, :], 2, axis=0).astype(np.float32)
            hop = 1024
            for i in range(0, pcm.shape[1], hop):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(pcm[:, i : i + hop]), format="fltp", layout="stereo"
                )
                frame.sample_rate, frame.pts = AUDIO_RATE, i
                container.mux(aus.encode(frame))
            container.mux(aus.encode(None))


def make_demo_data(cfg: DemoConfig, progress: bool = True) -> dict:
    """Write the demo dataset; returns counts and paths."""
    root = Path(cfg.folder)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    plan = [
        (split, label, i)
        for split, count in ((TRAIN, cfg.per_class), (VALIDATE, cfg.val_per_class))
        for label in CLASSES
        for i in range(count)
    ]
    rows: dict[str, list[dict]] = {TRAIN: [], VALIDATE: []}
    written = 0
    for j, (split, label, i) in enumerate(tqdm(plan, desc="demo-data", disable=not progress)):
        youtube_id = f"demo{j:03d}{label[:3]}".ljust(11, "x")[:11]
        start = int(rng.integers(0, 200))
        row = dict(
            label=label, youtube_id=youtube_id, time_start=start, time_end=start + 10, split=split
        )
        rows[split].append(row)
        path = root / split / label / f"{clip_stem(youtube_id, start, start + 10)}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        fps = (24.0, 25.0, 30.0)[j % 3]
        frames, audio = render(label, cfg.seconds, fps, np.random.default_rng([cfg.seed, j]))
        if split == TRAIN and i == 0 and label == CLASSES[0]:
            continue  # annotated but never downloaded, like ~1-2% of Kinetics
        if split == TRAIN and i == 0 and label == CLASSES[1]:
            path.write_bytes(b"")  # a zero-byte download
            continue
        write_video(
            path,
            frames,
            fps,
            None if (split == TRAIN and i == 0 and label == CLASSES[2]) else audio,
        )
        written += 1
    for split, split_rows in rows.items():
        with open(root / "annotations" / f"{split}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["label", "youtube_id", "time_start", "time_end", "split"])
            writer.writeheader()
            writer.writerows(split_rows)
    return {
        "folder": str(root),
        "classes": len(CLASSES),
        "annotated": len(plan),
        "videos_written": written,
        "annotations": [str(root / "annotations" / f"{s}.csv") for s in rows],
    }
