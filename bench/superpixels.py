"""Benchmark: fast (reduced-volume) superpixels against full-resolution SLIC.

``compare`` segments synthetic-but-realistic clips (``bench.media.clip``) with every route and
returns timings and standard superpixel metrics; ``python -m bench.superpixels [N_CLIPS]``
prints them as a markdown table (for BENCHMARKS.md).

Clips (all (T, H, W, 3) uint8, default 64x128x128), from ``bench.media.clip``:
- *natural*: a 128x128 window panned along a straight line (about 1 px per frame) over one of
  scikit-image's photographs, scaled so its short side is 1.5x the window, with sensor grain;
- *shapes*: the same with three flat-shaded shapes (disc, square, ellipse) moving on straight
  lines and occluding one another. Their ground-truth object labels (background = 0) are exact.

Metrics (all in the (T, H, W) volume, the temporal axis counted as a spatial one):
- boundary recall BR@r: fraction of reference boundary voxels with a predicted boundary voxel
  within Chebyshev distance r. A boundary voxel is one whose label differs from its next
  neighbour along T, H or W. Against full-resolution SLIC (all clips) and against the object
  boundaries (shapes clips). BP@1 vs full is the converse (precision against full SLIC).
- undersegmentation error UE (Neubert & Protzel's form): sum over ground-truth segments g and
  superpixels s touching g of min(|s & g|, |s - g|), over the volume size. Lower is better.
- achievable segmentation accuracy ASA: fraction of voxels labelled correctly when each
  superpixel takes its majority ground-truth label. Against the shapes ground truth and, as an
  agreement measure, against full-resolution SLIC labels.
- stray share: voxels outside their superpixel's largest 6-connected piece (0 = every
  superpixel is one solid region; speckle would make salt-noise occluders).
- chosen-superpixel size: voxel fraction of ``choose_superpixel`` draws (p10 / median / p90
  over all draws of all clips) and the share of draws that needed the size-rule fallback.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components

from bench import media
from blendkit.superpixels import SuperpixelConfig, choose_superpixel, superpixels

# ----------------------------------------------------------------------------- metrics


def boundaries(labels: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: voxels whose label differs from the next voxel along T, H or W."""
    out = np.zeros(labels.shape, dtype=bool)
    out[:-1] |= labels[:-1] != labels[1:]
    out[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[:, :, :-1] |= labels[:, :, :-1] != labels[:, :, 1:]
    return out


def boundary_recall(reference: np.ndarray, predicted: np.ndarray, tolerance: int = 1) -> float:
    """Share of reference boundary voxels within ``tolerance`` (Chebyshev) of a predicted one."""
    ref = boundaries(reference)
    pred = boundaries(predicted)
    if tolerance > 0:
        pred = ndimage.maximum_filter(pred, size=2 * tolerance + 1)
    n = int(ref.sum())
    return float((ref & pred).sum() / n) if n else 1.0


def _contingency(labels: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(K, G) voxel counts of superpixel k and ground-truth segment g."""
    k, g = int(labels.max()) + 1, int(truth.max()) + 1
    pair = labels.astype(np.int64).ravel() * g + truth.ravel()
    return np.bincount(pair, minlength=k * g).reshape(k, g)


def undersegmentation_error(labels: np.ndarray, truth: np.ndarray) -> float:
    """Neubert & Protzel undersegmentation error: sum_g sum_s min(|s&g|, |s-g|) / N."""
    c = _contingency(labels, truth)
    size = c.sum(axis=1, keepdims=True)
    return float(np.minimum(c, size - c)[c > 0].sum() / labels.size)


def achievable_segmentation_accuracy(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of voxels right when every superpixel takes its majority ground-truth label."""
    return float(_contingency(labels, truth).max(axis=1).sum() / labels.size)


def stray_share(labels: np.ndarray) -> float:
    """Share of voxels outside their label's largest 6-connected piece."""
    comp = connected_components(labels, background=-1, connectivity=1)
    sizes = np.bincount(comp.ravel())
    owner = np.zeros(len(sizes), dtype=np.int64)
    owner[comp.ravel()] = labels.ravel()
    largest = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    np.maximum.at(largest, owner[1:], sizes[1:])
    return float(1.0 - largest.sum() / labels.size)


# ----------------------------------------------------------------------------- comparison


def _routes(cfg: SuperpixelConfig) -> dict[str, SuperpixelConfig]:
    return {
        "full-res SLIC": replace(cfg, downsample=1),
        "2x down, nearest": replace(cfg, downsample=2, refine=False),
        "2x down, refined": replace(cfg, downsample=2, refine=True),
        "4x down, refined": replace(cfg, downsample=4, refine=True),
    }


def compare(
    n_clips: int = 3,
    frames: int = 64,
    size: int = 128,
    cfg: SuperpixelConfig | None = None,
    draws: int = 200,
    seed: int = 0,
) -> dict:
    """Segment ``n_clips`` natural and ``n_clips`` shapes clips with every route; return metrics.

    Returns ``{"config", "clips", "shape", "routes": {route: {metric: value}}}``; per-route
    values are medians over clips for wall time, CPU time and K, means over clips for the
    quality metrics.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    cfg = cfg or SuperpixelConfig()
    clips = [media.clip(i, frames, size) for i in range(n_clips)]
    clips += [media.clip(n_clips + i, frames, size, n_shapes=3) for i in range(n_clips)]
    routes = _routes(cfg)
    superpixels(clips[0].frames[:8, :32, :32], cfg)  # warm-up (imports, caches)

    rows: dict[str, dict[str, list[float]]] = {name: {} for name in routes}
    sizes: dict[str, list[float]] = {name: [] for name in routes}
    fallbacks: dict[str, int] = dict.fromkeys(routes, 0)
    for clip in clips:
        results = {}
        for name, route in routes.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            labels = superpixels(clip.frames, route)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            results[name] = (labels, wall, cpu)
        full = results["full-res SLIC"][0]
        for name, (labels, wall, cpu) in results.items():
            m = rows[name]
            m.setdefault("time_s", []).append(wall)
            m.setdefault("cpu_s", []).append(cpu)
            m.setdefault("k", []).append(float(labels.max() + 1))
            m.setdefault("br0_full", []).append(boundary_recall(full, labels, 0))
            m.setdefault("br1_full", []).append(boundary_recall(full, labels, 1))
            m.setdefault("bp1_full", []).append(boundary_recall(labels, full, 1))
            m.setdefault("asa_full", []).append(achievable_segmentation_accuracy(labels, full))
            m.setdefault("stray", []).append(stray_share(labels))
            if clip.truth is not None:
                m.setdefault("br1_truth", []).append(boundary_recall(clip.truth, labels, 1))
                m.setdefault("ue_truth", []).append(undersegmentation_error(labels, clip.truth))
                m.setdefault("asa_truth", []).append(
                    achievable_segmentation_accuracy(labels, clip.truth)
                )
            rng = np.random.default_rng(seed)
            frac = np.bincount(labels.ravel()) / labels.size
            qualifies = (frac >= route.min_fraction) & (frac <= route.max_fraction)
            fallbacks[name] += 0 if qualifies.any() else draws
            for _ in range(draws):
                label, _mask = choose_superpixel(labels, rng, route)
                sizes[name].append(float(frac[label]))

    summary = {}
    for name, m in rows.items():
        s = {key: float(np.mean(v)) for key, v in m.items()}
        s["time_s"] = float(np.median(m["time_s"]))
        s["cpu_s"] = float(np.median(m["cpu_s"]))
        s["k"] = float(np.median(m["k"]))
        p10, p50, p90 = np.percentile(sizes[name], [10, 50, 90])
        s.update(chosen_p10=p10, chosen_p50=p50, chosen_p90=p90)
        s["fallback_share"] = fallbacks[name] / (draws * len(clips))
        summary[name] = {k: float(v) for k, v in s.items()}
    return {
        "config": asdict(cfg),
        "clips": [c.name for c in clips],
        "shape": [frames, size, size],
        "routes": summary,
    }


def markdown(result: dict) -> str:
    """Markdown table of ``compare``'s result."""
    cols = [
        ("wall s/clip", "time_s", "{:.3f}"),
        ("CPU s/clip", "cpu_s", "{:.3f}"),
        ("K", "k", "{:.0f}"),
        ("BR@0 vs full", "br0_full", "{:.3f}"),
        ("BR@1 vs full", "br1_full", "{:.3f}"),
        ("BP@1 vs full", "bp1_full", "{:.3f}"),
        ("ASA vs full", "asa_full", "{:.3f}"),
        ("BR@1 vs objects", "br1_truth", "{:.3f}"),
        ("UE (objects)", "ue_truth", "{:.3f}"),
        ("ASA (objects)", "asa_truth", "{:.3f}"),
        ("stray", "stray", "{:.2%}"),
        ("chosen size p10/p50/p90 %", None, None),
        ("fallback", "fallback_share", "{:.0%}"),
    ]
    head = "| route | " + " | ".join(c[0] for c in cols) + " |"
    rule = "|---|" + "---:|" * len(cols)
    lines = [head, rule]
    for name, s in result["routes"].items():
        cells = []
        for _title, key, fmt in cols:
            if key is None:
                cells.append(
                    f"{100 * s['chosen_p10']:.1f} / {100 * s['chosen_p50']:.1f} / "
                    f"{100 * s['chosen_p90']:.1f}"
                )
            else:
                cells.append(fmt.format(s[key]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    t, h, w = result["shape"]
    cfg = result["config"]
    lines.append("")
    lines.append(
        f"Clips ({t}x{h}x{w}): {', '.join(result['clips'])}. n_segments={cfg['n_segments']}, "
        f"compactness={cfg['compactness']}, size rule [{cfg['min_fraction']}, "
        f"{cfg['max_fraction']}]. Times: medians over clips (CPU = process time, all threads; "
        "it equals wall time on an idle core). Quality: means over clips; objects = shapes clips."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n_clips", type=int, nargs="?", default=3)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args(argv)
    text = markdown(compare(args.n_clips, args.frames, args.size, draws=args.draws))
    print(text)
    return text


if __name__ == "__main__":
    main()
