"""Synthetic media for every benchmark: a window panning over a natural photograph, with moving
flat-shaded shapes and sensor grain.

Kinetics cannot be downloaded on the build machine; this is the documented proxy for real video.
The photographs are scikit-image's (``IMAGES``). One idea, three uses:

- :func:`clip`: a (T, H, W, 3) clip panned about one pixel per frame along a straight line, with
  ``n_shapes`` moving shapes and their exact object labels (the superpixel benchmark);
- :func:`source_video`: a longer, larger pan (eased, over the whole photo) with one moving disc,
  as a 360p-720p camera clip (the make-shards sources);
- :func:`write_sources`: such videos with a tone as audio, H.264 yuv420p + AAC stereo, in a flat
  Kinetics layout (``blendkit.demo.write_video``), which ``make-shards`` turns into the shards the
  loader benchmark reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from blendkit.demo import AUDIO_RATE, write_video
from blendkit.kinetics import clip_stem

IMAGES = ("astronaut", "coffee", "chelsea", "rocket")
SOURCE_SIZES = ((640, 360), (640, 360), (640, 360), (1280, 720), (1280, 720), (1280, 720))
CORNERS = ((0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0))  # (y, x) fractions of the free range


@dataclass(frozen=True)
class Clip:
    """A synthetic clip; ``truth`` is (T, H, W) int object labels (0 = background) or None."""

    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    truth: np.ndarray | None


def photo(name: str, min_height: float, min_width: float) -> np.ndarray:
    """scikit-image's photograph ``name`` as RGB uint8, scaled (aspect kept) to cover at least
    ``min_height`` x ``min_width``."""
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = np.ascontiguousarray(img[..., :3])
    scale = max(min_height / img.shape[0], min_width / img.shape[1])
    size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def pan_path(
    image_shape: tuple[int, ...],
    frames: int,
    height: int,
    width: int,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    ease: bool = False,
    max_speed: float | None = None,
) -> list[tuple[int, int]]:
    """Top-left corners of a ``height`` x ``width`` window moving in a straight line from
    ``start`` to ``end`` ((y, x) fractions of the free range) over an image of ``image_shape``.
    ``ease``: the vertical motion starts and stops slowly; ``max_speed``: at most that many
    pixels per frame (the window may stop short of ``end``)."""
    h, w = image_shape[:2]
    (y0, x0), (y1, x1) = (
        (round(fy * (h - height)), round(fx * (w - width))) for fy, fx in (start, end)
    )
    span = max(abs(y1 - y0), abs(x1 - x0), 1)
    reach = 1.0 if max_speed is None else min(1.0, max_speed * (frames - 1) / span)
    corners = []
    for t in range(frames):
        u = reach * t / max(frames - 1, 1)
        v = 0.5 - 0.5 * np.cos(np.pi * u) if ease else u
        corners.append((round(y0 + v * (y1 - y0)), round(x0 + u * (x1 - x0))))
    return corners


class Shapes:
    """``n`` flat-shaded shapes (a disc, a square, an ellipse, in turn) moving in straight lines
    across a ``height`` x ``width`` frame, later ones in front."""

    def __init__(self, n: int, frames: int, height: int, width: int, rng: np.random.Generator):
        size = min(height, width)
        self.shapes = []
        for _ in range(n):
            colour = rng.uniform(20, 235, size=3).astype(np.float32)
            radius = rng.uniform(0.12, 0.2) * size
            start = rng.uniform(radius, np.array([height, width]) - radius)
            velocity = rng.uniform(-1.0, 1.0, size=2) * size / frames
            self.shapes.append((colour, radius, start, velocity))
        self.yy, self.xx = np.mgrid[:height, :width].astype(np.float32)

    def draw(self, image: np.ndarray, t: int) -> np.ndarray:
        """Draw frame ``t``'s shapes into the float (H, W, 3) ``image``; returns its (H, W)
        int32 object labels (shape k is k + 1, background 0)."""
        labels = np.zeros(image.shape[:2], np.int32)
        for k, (colour, radius, start, velocity) in enumerate(self.shapes):
            cy, cx = start + velocity * t
            box = (  # the shape's bounding box: only its pixels are tested
                slice(max(0, int(cy - radius)), max(0, int(cy + radius) + 2)),
                slice(max(0, int(cx - radius)), max(0, int(cx + radius) + 2)),
            )
            dy, dx = (self.yy[box] - cy) / radius, (self.xx[box] - cx) / radius
            if k % 3 == 0:
                inside = dy**2 + dx**2 <= 1.0
            elif k % 3 == 1:
                inside = (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8)
            else:
                inside = (dy / 0.6) ** 2 + dx**2 <= 1.0
            image[box][inside] = colour * (1.0 + 0.15 * dy[inside, None])  # vertical shading
            labels[box][inside] = k + 1
        return labels


def render(
    image: np.ndarray,
    corners: list[tuple[int, int]],
    height: int,
    width: int,
    n_shapes: int,
    rng: np.random.Generator,
    sigma: float = 3.0,
    labels: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The windows of ``image`` at ``corners`` with ``n_shapes`` moving shapes and Gaussian grain
    of ``sigma`` levels: (T, H, W, 3) uint8 frames, and (T, H, W) int32 object labels when there
    are shapes and ``labels`` (else None)."""
    shapes = Shapes(n_shapes, len(corners), height, width, rng)
    frames = np.empty((len(corners), height, width, 3), np.uint8)
    truth = np.zeros((len(corners), height, width), np.int32) if n_shapes and labels else None
    for t, (y, x) in enumerate(corners):  # one frame at a time: 720p sources are long
        img = image[y : y + height, x : x + width].astype(np.float32)
        drawn = shapes.draw(img, t)
        if truth is not None:
            truth[t] = drawn
        img += rng.normal(0.0, sigma, size=img.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames, truth


def clip(index: int, frames: int = 64, size: int = 128, n_shapes: int = 0) -> Clip:
    """Photograph ``index`` (cycling through ``IMAGES``) panned about one pixel per frame by a
    ``size`` x ``size`` window, with ``n_shapes`` moving shapes (and their labels) and grain."""
    rng = np.random.default_rng(index)
    name = IMAGES[index % len(IMAGES)]
    image = photo(name, size * 1.5, size * 1.5)
    start, end = CORNERS[index % 4], CORNERS[(index + 1) % 4]
    corners = pan_path(image.shape, frames, size, size, start, end, max_speed=1.0)
    video, truth = render(image, corners, size, size, n_shapes, rng)
    tag = f"{n_shapes} shapes" if n_shapes else "pan"
    return Clip(f"{name}-{tag}-{index}", video, truth)


def source_video(index: int, width: int, height: int, seconds: float, fps: float) -> np.ndarray:
    """(N, height, width, 3) uint8: an eased pan over the whole of photograph ``index`` scaled to
    1.5x the frame width, with one moving disc and grain, like a camera clip (the sources of the
    make-shards benchmark: their labels are not kept)."""
    rng = np.random.default_rng(index)
    image = photo(IMAGES[index % len(IMAGES)], height * 1.3, width * 1.5)
    n = int(seconds * fps)
    corners = pan_path(image.shape, n, height, width, (0.0, 0.0), (1.0, 1.0), ease=True)
    frames, _ = render(image, corners, height, width, 1, rng, labels=False)
    return frames


def source_audio(index: int, seconds: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """A tone whose loudness swells and fades, plus a little noise: float32 in [-1, 1]."""
    rng = np.random.default_rng(1000 + index)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 60 * index) * t) * (1 + np.sin(3 * t)) / 2
    return (tone + 0.02 * rng.standard_normal(t.shape)).astype(np.float32)


def write_sources(
    folder: Path, seconds: float = 10.0, fps: float = 30.0, sizes=SOURCE_SIZES
) -> list[Path]:
    """One source video per (width, height) of ``sizes`` (default: three 360p, three 720p) in a
    flat Kinetics layout under ``folder``, named ``proxy<H>p<i>_<start>_<end>.mp4``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"{clip_stem(f'proxy{h}p{i:03d}', i, i + 10)}.mp4"
        write_video(path, source_video(i, w, h, seconds, fps), fps, source_audio(i, seconds))
        paths.append(path)
    return paths
