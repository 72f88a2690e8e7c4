"""Stored Y, U, V planes and their conversion to RGB on the device (trainer/colour.py)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from blendkit.codec import decode_video, decode_video_yuv, encode_video, psnr
from trainer.colour import yuv_to_rgb


def _clip(seed: int, frames: int = 6, size: int = 32) -> np.ndarray:
    """Saturated colour ramps and noise: every corner of the RGB cube, so clipping is exercised."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    base = np.stack([x, y, 1 - x * y], -1) * 255
    clips = [np.clip(base + rng.normal(0, 40, base.shape), 0, 255) for _ in range(frames)]
    return np.stack(clips).astype(np.uint8)


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) float in [0, 1] -> (T, H, W, 3) uint8."""
    return rgb.mul(255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_device_conversion_matches_swscale_within_one_level(seed):
    data = encode_video(_clip(seed), 25, 12, "ultrafast")
    planes = decode_video_yuv(data)
    assert planes.shape == (3, 6, 32, 32) and planes.dtype == np.uint8
    ours = _to_uint8(yuv_to_rgb(torch.from_numpy(planes).unsqueeze(0))[0])
    theirs = decode_video(data)
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.98


def test_every_kth_frame_and_other_pixel_formats():
    frames = _clip(2, frames=9)
    data = encode_video(frames, 25, 12, "ultrafast")
    np.testing.assert_array_equal(decode_video_yuv(data, 4), decode_video_yuv(data)[:, ::4])
    buf = io.BytesIO()  # the same clip as 4:2:0 (not what blendkit writes): converted to 4:4:4
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    planes = decode_video_yuv(buf.getvalue())
    with av.open(io.BytesIO(buf.getvalue())) as container:  # what swscale makes of each frame
        expected = [f.reformat(format="yuv444p").to_ndarray() for f in container.decode(video=0)]
    np.testing.assert_array_equal(planes, np.stack(expected, axis=1))  # (3, T, H, W)


def test_grey_and_the_limits_of_the_range():
    yuv = torch.tensor([[16, 128, 128], [235, 128, 128], [126, 128, 128], [0, 0, 0]])
    rgb = yuv_to_rgb(yuv.to(torch.uint8).T.reshape(1, 3, 4))[0].T  # (4, 3)
    torch.testing.assert_close(rgb[0], torch.zeros(3))  # limited-range black
    torch.testing.assert_close(rgb[1], torch.ones(3))  # limited-range white
    torch.testing.assert_close(rgb[2], torch.full((3,), 110 / 219))  # grey stays grey
    assert rgb[3].min() >= 0  # out of range: clipped
    with pytest.raises(ValueError, match="planes"):
        yuv_to_rgb(torch.zeros(1, 4, 2, 2))


def test_fastdecode_tune_changes_the_stream_and_keeps_the_clip():
    frames = _clip(3)
    plain = encode_video(frames, 25, 12)  # medium: CABAC and deblocking, which the tune drops
    fast = encode_video(frames, 25, 12, tune="fastdecode")
    assert fast != plain
    assert psnr(decode_video(fast), frames) > 30 and psnr(decode_video(plain), frames) > 30


def test_x264_params_reach_the_encoder():
    frames = _clip(3)
    default = encode_video(frames, 25, 12, "faster")
    assert encode_video(frames, 25, 12, "faster", x264_params="trellis=1") == default
    no_trellis = encode_video(frames, 25, 12, "faster", x264_params="trellis=0")
    assert no_trellis != default
    quality = [psnr(decode_video(data), frames) for data in (default, no_trellis)]
    assert abs(quality[0] - quality[1]) < 2.0, quality  # noise: trellis matters most here
    with pytest.raises(ValueError, match="threads is fixed"):
        encode_video(frames, 25, 12, x264_params="threads=2")


def test_constants_reach_the_device_once():
    """After the first batch, converting one copies nothing from the host (meta stands for CUDA)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class HostTensors(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            leaves = tree_leaves((args, kwargs, out))
            if any(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in leaves):
                self.ops.append(str(func))
            return out

    yuv = torch.zeros(2, 3, 4, 8, 8, dtype=torch.uint8, device="meta")
    assert yuv_to_rgb(yuv).device.type == "meta"
    with HostTensors() as mode:
        yuv_to_rgb(yuv)
    assert mode.ops == []
    planes = torch.tensor([[16, 235], [128, 128], [128, 128]], dtype=torch.uint8).view(1, 3, 2)
    torch.testing.assert_close(yuv_to_rgb(planes)[0], torch.tensor([[0.0, 1.0]] * 3))
