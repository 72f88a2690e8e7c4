"""Tests for blendkit.superpixels (fast spatio-temporal SLIC, size rule) and its benchmark."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2lab

import bench.superpixels as bench
from bench import media
from blendkit.demo import Texture
from blendkit.superpixels import (
    SuperpixelConfig,
    _absorb_strays,
    _lab_from_linear,
    _stretch_linearize,
    choose_superpixel,
    has_candidates,
    label_fractions,
    occlusion_superpixels,
    superpixels,
)

ROUTES = {
    "full": SuperpixelConfig(downsample=1),
    "nearest": SuperpixelConfig(downsample=2, refine=False),
    "refined": SuperpixelConfig(downsample=2, refine=True),
    "refined3": SuperpixelConfig(downsample=3, refine=True),
}


def _textured(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: smooth colour blobs, static in time, plus a little noise."""
    t, h, w = shape
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(1, h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    frame = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :h, :w]
    video = np.repeat(frame, t, axis=0) + rng.normal(0, 2, size=(t, h, w, 3))
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def _two_regions(shape: tuple[int, int, int], edge: int, speed: int = 0) -> np.ndarray:
    """Left of column edge + speed * t red, right of it blue."""
    t, h, w = shape
    video = np.zeros((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        split = edge + speed * i
        video[i, :, :split] = (220, 30, 30)
        video[i, :, split:] = (30, 30, 220)
    return video


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("shape", [(8, 32, 32), (9, 33, 31)])
def test_labels_shape_dtype_contiguous(route: str, shape: tuple[int, int, int]) -> None:
    labels = superpixels(_textured(shape), ROUTES[route])
    assert labels.shape == shape
    assert labels.dtype == np.int32
    k = int(labels.max()) + 1
    assert k > 1
    np.testing.assert_array_equal(np.unique(labels), np.arange(k))


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_deterministic(route: str) -> None:
    frames = _textured((8, 32, 32), seed=3)
    first = superpixels(frames, ROUTES[route])
    second = superpixels(frames.copy(), ROUTES[route])
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_two_regions_aligned_edge_never_straddled(route: str) -> None:
    frames = _two_regions((8, 32, 32), edge=18)  # 18: a multiple of 2 and 3
    labels = superpixels(frames, ROUTES[route])
    left = labels[:, :, :18]
    right = labels[:, :, 18:]
    assert not set(np.unique(left)) & set(np.unique(right))


@pytest.mark.parametrize("route", ["full", "refined", "refined3"])
def test_two_regions_off_grid_edge_restored_by_refinement(route: str) -> None:
    # Column 15 splits a 2x2x2 (and a 3x3x3) block: only the full-resolution boundary
    # refinement puts the edge back exactly.
    frames = _two_regions((8, 32, 32), edge=15)
    labels = superpixels(frames, ROUTES[route])
    assert not set(np.unique(labels[:, :, :15])) & set(np.unique(labels[:, :, 15:]))


def test_nearest_upsampling_alone_misses_off_grid_edge() -> None:
    frames = _two_regions((8, 32, 32), edge=15)
    labels = superpixels(frames, ROUTES["nearest"])
    assert set(np.unique(labels[:, :, :15])) & set(np.unique(labels[:, :, 15:]))


def test_moving_edge_modest_volume() -> None:
    # 16x64x64, the edge moves 1 px per frame: the temporal axis is a spatial axis of the
    # volume, and refined labels still follow the edge exactly in every frame.
    shape = (16, 64, 64)
    frames = _two_regions(shape, edge=21, speed=1)
    labels = superpixels(frames, SuperpixelConfig(n_segments=64))
    red = frames[..., 0] > 128  # (T, H, W)
    assert not set(np.unique(labels[red])) & set(np.unique(labels[~red]))


@pytest.mark.parametrize("route", ["full", "refined"])
def test_time_is_a_segmented_axis(route: str) -> None:
    # A static clip: per-frame segmentation would repeat the same labels in every frame; a
    # spatio-temporal volume with seeds along T cuts it in time too.
    frames = _textured((16, 32, 32), seed=1)
    cfg = SuperpixelConfig(n_segments=64, downsample=ROUTES[route].downsample)
    labels = superpixels(frames, cfg)
    assert (labels[1:] != labels[:-1]).any()
    assert (labels[1:] == labels[:-1]).mean() > 0.5  # but superpixels do span frames


@pytest.mark.parametrize("route", ["full", "refined", "refined3"])
def test_superpixels_are_single_pieces(route: str) -> None:
    labels = superpixels(_textured((8, 32, 32), seed=2), ROUTES[route])
    assert bench.stray_share(labels) == 0.0


def test_absorb_strays_exact() -> None:
    labels = np.zeros((3, 4, 4), dtype=np.int32)
    labels[:, :, 2:] = 1
    labels[1, 1, 0] = 1  # a speck of 1 inside 0
    labels[0, 0, 3] = 2  # label 2: one piece, kept however small
    expected = labels.copy()
    expected[1, 1, 0] = 0
    np.testing.assert_array_equal(_absorb_strays(labels.copy()), expected)


def test_lab_matches_skimage() -> None:
    rgb = np.random.default_rng(0).random((500, 3))
    ours = _lab_from_linear(_stretch_linearize(rgb, 0.0, 1.0))
    np.testing.assert_allclose(ours, rgb2lab(rgb), atol=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_segments": 0},
        {"compactness": 0.0},
        {"downsample": 0},
        {"min_fraction": 0.3, "max_fraction": 0.2},
        {"max_fraction": 1.5},
        {"temporal_spacing": 0.0},
    ],
)
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SuperpixelConfig(**kwargs)


def test_frames_must_be_uint8_rgb_clip() -> None:
    with pytest.raises(ValueError, match="uint8"):
        superpixels(np.zeros((4, 8, 8, 3), dtype=np.float32), SuperpixelConfig())
    with pytest.raises(ValueError, match="uint8"):
        superpixels(np.zeros((8, 8, 3), dtype=np.uint8), SuperpixelConfig())


# ----------------------------------------------------------------------------- size rule


def _hand_labels() -> np.ndarray:
    """10x10x10 volume: label 0 = 5 voxels, 1 = 50, 2 = 100, 3 = 845 (fractions .005-.845)."""
    flat = np.full(1000, 3, dtype=np.int32)
    flat[:5] = 0
    flat[5:55] = 1
    flat[55:155] = 2
    return flat.reshape(10, 10, 10)


def test_label_fractions() -> None:
    np.testing.assert_allclose(label_fractions(_hand_labels()), [0.005, 0.05, 0.1, 0.845])


def test_size_rule_only_qualifying_labels_are_chosen() -> None:
    labels = _hand_labels()
    cfg = SuperpixelConfig(min_fraction=0.04, max_fraction=0.2)
    rng = np.random.default_rng(0)
    chosen = [choose_superpixel(labels, rng, cfg)[0] for _ in range(400)]
    assert set(chosen) == {1, 2}
    assert 120 < chosen.count(1) < 280  # uniform between the two


def test_size_rule_bounds_are_inclusive() -> None:
    labels = _hand_labels()
    cfg = SuperpixelConfig(min_fraction=0.05, max_fraction=0.05)
    rng = np.random.default_rng(0)
    assert {choose_superpixel(labels, rng, cfg)[0] for _ in range(50)} == {1}


def test_size_rule_fallback_closest_to_range() -> None:
    labels = _hand_labels()
    # nothing in [0.2, 0.5]: gaps .195, .15, .1, .345 -> label 2 every time
    cfg = SuperpixelConfig(min_fraction=0.2, max_fraction=0.5)
    rng = np.random.default_rng(0)
    assert {choose_superpixel(labels, rng, cfg)[0] for _ in range(50)} == {2}
    # nothing in [0.9, 1.0]: label 3 (gap .055) is closest
    cfg = SuperpixelConfig(min_fraction=0.9, max_fraction=1.0)
    assert {choose_superpixel(labels, rng, cfg)[0] for _ in range(50)} == {3}


def test_size_rule_fallback_ties_are_drawn() -> None:
    labels = np.zeros((2, 2, 4), dtype=np.int32)
    labels[:, :, 2:] = 1  # two labels of fraction 0.5
    cfg = SuperpixelConfig(min_fraction=0.0, max_fraction=0.1)
    rng = np.random.default_rng(0)
    assert {choose_superpixel(labels, rng, cfg)[0] for _ in range(50)} == {0, 1}


def test_size_rule_skips_absent_labels() -> None:
    labels = np.zeros((2, 2, 4), dtype=np.int32)
    labels[:, :, 2:] = 2  # label 1 has no voxels
    cfg = SuperpixelConfig(min_fraction=0.0, max_fraction=1.0)
    rng = np.random.default_rng(0)
    assert {choose_superpixel(labels, rng, cfg)[0] for _ in range(50)} == {0, 2}


def test_mask_equals_labels_eq_label() -> None:
    labels = superpixels(_textured((8, 32, 32), seed=5), SuperpixelConfig())
    rng = np.random.default_rng(7)
    for _ in range(5):
        label, mask = choose_superpixel(labels, rng, SuperpixelConfig())
        assert mask.dtype == bool and mask.shape == labels.shape
        np.testing.assert_array_equal(mask, labels == label)


def test_choose_rejects_bad_labels() -> None:
    with pytest.raises(ValueError):
        choose_superpixel(np.zeros((4, 4), np.int32), np.random.default_rng(0), SuperpixelConfig())
    with pytest.raises(ValueError):
        choose_superpixel(
            -np.ones((2, 2, 2), np.int32), np.random.default_rng(0), SuperpixelConfig()
        )


# ----------------------------------------------------------------------------- benchmark metrics


def test_boundary_recall_exact() -> None:
    ref = np.zeros((1, 1, 8), dtype=np.int32)
    ref[..., 4:] = 1  # one boundary voxel, at x = 3
    shifted = np.zeros_like(ref)
    shifted[..., 5:] = 1  # boundary at x = 4
    assert bench.boundary_recall(ref, ref, 0) == 1.0
    assert bench.boundary_recall(ref, shifted, 0) == 0.0
    assert bench.boundary_recall(ref, shifted, 1) == 1.0
    assert bench.boundary_recall(ref, np.zeros_like(ref), 1) == 0.0


def test_undersegmentation_error_and_asa_exact() -> None:
    truth = np.zeros((1, 1, 10), dtype=np.int32)
    truth[..., 6:] = 1  # objects of 6 and 4 voxels
    labels = np.zeros_like(truth)
    labels[..., 5:] = 1  # superpixel 1 = 1 voxel of object 0 + 4 voxels of object 1
    # leak: superpixel 1 overlaps object 0 by 1 -> min(1, 4) = 1; object 1 -> min(4, 1) = 1
    assert bench.undersegmentation_error(labels, truth) == pytest.approx(0.2)
    assert bench.achievable_segmentation_accuracy(labels, truth) == pytest.approx(0.9)
    assert bench.undersegmentation_error(truth, truth) == 0.0
    assert bench.achievable_segmentation_accuracy(truth, truth) == 1.0


def test_stray_share_exact() -> None:
    labels = np.zeros((1, 1, 10), dtype=np.int32)
    labels[..., 6:9] = 1  # label 0: pieces of 6 and 1 voxels; label 1: one piece
    assert bench.stray_share(labels) == pytest.approx(0.1)


def test_compare_smoke() -> None:
    result = bench.compare(n_clips=1, frames=8, size=32, draws=10)
    assert result["clips"] == ["astronaut-pan-0", "coffee-3 shapes-1"]
    full = result["routes"]["full-res SLIC"]
    assert full["br1_full"] == 1.0 and full["asa_full"] == 1.0
    assert "| 2x down, refined |" in bench.markdown(result)


def test_bench_clips_are_deterministic_and_label_their_shapes() -> None:
    plain, again = media.clip(0, 4, 32), media.clip(0, 4, 32)
    assert plain.truth is None and np.array_equal(plain.frames, again.frames)
    shapes = media.clip(1, 4, 32, n_shapes=3)
    assert shapes.frames.shape == (4, 32, 32, 3) and shapes.truth.shape == (4, 32, 32)
    assert set(np.unique(shapes.truth)) <= {0, 1, 2, 3}
    # the last shape is drawn in front and starts wholly inside the frame: an ellipse of
    # 0.6 * pi * r^2 pixels, r in [0.12, 0.2] * 32, so 28 to 77 pixels
    assert 20 < int((shapes.truth[0] == 3).sum()) < 90


def test_fine_moving_texture_gets_a_candidate_by_raising_compactness():
    """On the demo's fine drifting grating, SLIC at compactness 10 merged this 32x64x64 clip into
    3 segments, none within the size rule; the retry with doubled compactness finds some."""
    texture = Texture("falling_rain", np.random.default_rng(0))
    frames = np.stack([texture.frame(k)[:64, :64] for k in range(32)])
    cfg = SuperpixelConfig(n_segments=16)
    assert not has_candidates(superpixels(frames, cfg), cfg)
    labels, compactness = occlusion_superpixels(frames, cfg)
    assert compactness == 2 * cfg.compactness and has_candidates(labels, cfg)
    again, _ = occlusion_superpixels(frames, cfg)
    assert np.array_equal(labels, again)
