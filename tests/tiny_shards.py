"""Tiny shard folders for page tests, written with tarfile: no pipeline, fixed content.

Every video frame is ``tests.media.frame_image(k)`` (its index as a grid code), so a reader
(PyAV, or a browser drawing the video into a canvas) can tell which frame it shows. Samples
alternate transparent and occlusion blends; a1/a2 are sines. With ``hostile=True`` the metadata
holds HTML and path tricks (``HOSTILE_*``) that a page must show as text (tar member names stay
safe: the shard reader rejects a name that is not ``KEY.EXT``, see ``tests/test_format.py``).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from blendkit import codec
from blendkit.format.blends import BLEND_KINDS, OCCLUSION
from tests.media import frame_image

FRAMES, HEIGHT, WIDTH, FPS, RATE = 16, 48, 64, 25.0, 8000
LABELS = ("drumming", "singing", "surfing")
HOSTILE_LABEL = '<img src=x onerror="window.__pwned=1">&amp; "dancing"'
HOSTILE_KEY = '"><script>window.__pwned=2</script>'  # V2's youtube_id (keys must be %09d)
HOSTILE_ID = "../../etc/passwd</td></tr><b>id</b>"


def clip(offset: int = 0, frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH):
    """(frames, height, width, 3) uint8: frame t shows code t + offset."""
    return np.stack([frame_image(t + offset, width, height) for t in range(frames)])


def _side(label: str, youtube_id: str, height: int = HEIGHT, width: int = WIDTH) -> dict:
    return {
        "youtube_id": youtube_id,
        "label": label,
        "split": "train",
        "path": f"{label}/{youtube_id}.mp4",
        "clip_start_s": 1.25,
        "crop": [3, 5, height, width],
        "resized": [height + 8, width + 10],
        "has_audio": True,
    }


def sample_members(
    index: int, hostile: bool, frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH
) -> tuple[str, dict[str, bytes]]:
    """The key and members of sample ``index`` (clips of ``frames`` x ``height`` x ``width``)."""
    kind = BLEND_KINDS[index % len(BLEND_KINDS)]
    key = f"{index:09d}"
    label1 = HOSTILE_LABEL if hostile and index == 1 else LABELS[index % 3]
    label2 = LABELS[(index + 1) % 3]
    video = clip(0, frames, height, width)
    alpha = np.full((frames, height, width), 0.5, np.float32)
    if kind == OCCLUSION:
        alpha[:] = 0.0
        alpha[:, height // 6 : height // 2, width // 4 : width * 5 // 8] = 1.0
    t = np.arange(round(frames / FPS * RATE)) / RATE
    meta = {
        "key": key,
        "index": index,
        "blend": kind,
        "seed": 100 + index,
        "pairing": "chain",
        "fps": FPS,
        "frames": frames,
        "height": height,
        "width": width,
        "audio_rate": RATE,
        "audio_samples": len(t),
        "v1": _side(
            label1, HOSTILE_ID if hostile and index == 1 else f"yt{index:03d}", height, width
        ),
        "v2": _side(
            label2, HOSTILE_KEY if hostile and index == 1 else f"yt{index + 1:03d}", height, width
        ),
        "superpixel": {
            "label": 3,
            "voxels": frames * (height // 2 - height // 6) * (width * 5 // 8 - width // 4),
            "fraction": 0.125,
            "n_segments": 8,
            "compactness": 10.0,
        }
        if kind == OCCLUSION
        else None,
        "video": {
            "codec": "h264",
            "pix_fmt": "yuv444p",
            "crf": 15,
            "mix_crf": 10,
            "mix_psnr_db": 43.21,
        },
    }
    encoded = codec.encode_video(video, FPS, crf=10, preset="ultrafast")
    members = {
        "mix.mp4": encoded,
        "v1.mp4": encoded,
        "v2.mp4": encoded,
        "alpha.npz": codec.encode_alpha(alpha),
        "a1.m4a": codec.encode_audio(0.3 * np.sin(2 * np.pi * 440 * t), RATE),
        "a2.m4a": codec.encode_audio(0.3 * np.sin(2 * np.pi * 660 * t), RATE),
        "json": json.dumps(meta).encode(),
    }
    return key, members


def write_tiny_shards(
    folder: Path,
    n_shards: int = 3,
    per_shard: int = 4,
    hostile: bool = False,
    broken: frozenset[int] = frozenset(),
    geometry: tuple[int, int, int] = (FRAMES, HEIGHT, WIDTH),
    first: int = 0,
) -> Path:
    """``n_shards`` shard-*.tar of ``per_shard`` samples each into ``folder``; returns it.
    Samples whose index is in ``broken`` hold a ``mix.mp4`` that is not a video. ``geometry``:
    frames, height and width of the clips; ``first``: the number of the first shard."""
    folder.mkdir(parents=True, exist_ok=True)
    cache: dict[str, bytes] = {}
    for s in range(first, first + n_shards):
        with tarfile.open(folder / f"shard-{s:06d}.tar", "w") as tar:
            for i in range(s * per_shard, (s + 1) * per_shard):
                key, members = sample_members(i, hostile, *geometry)
                if i in broken:
                    members["mix.mp4"] = b"not a video"
                for name, data in members.items():
                    if name.endswith("mp4") and i not in broken:
                        data = cache.setdefault(name, data)
                    info = tarfile.TarInfo(f"{key}.{name}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return folder
