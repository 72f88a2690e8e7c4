"""``blendkit inspect``: summarise, verify and draw a folder of shards.

Reads the tars alone (no sidecar, manifest or blendkit-specific index needed), so it works on shards
copied from anywhere. An unreadable shard or sample is reported as a failure, never a crash.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import webdataset as wds

from blendkit import codec
from blendkit.blend import blend


def list_shard_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    shards = sorted(folder.glob("shard-*.tar"))
    if not shards:
        raise FileNotFoundError(f"{folder}: no shard-*.tar files")
    return shards


def iter_samples(shard: Path):
    """Raw samples (dict of member bytes, plus ``__key__``) of one tar."""
    yield from wds.WebDataset(str(shard), shardshuffle=False, empty_check=False)


def audio_member(sample: dict, name: str) -> bytes | None:
    """The bytes of audio member ``name`` (a1 or a2), whatever codec it was stored with."""
    member = codec.audio_member_name(sample, name)
    return None if member is None else sample[member]


def verify_sample(sample: dict, meta: dict, min_psnr: float = 40.0) -> list[str]:
    """Decode every member; returns the problems found (empty when the sample is sound)."""
    problems = []
    shape = (meta["frames"], meta["height"], meta["width"])
    videos = {}
    for name in ("mix", "v1", "v2"):
        v = codec.decode_video(sample[f"{name}.mp4"])
        if v.shape != (*shape, 3):
            problems.append(f"{name} has shape {v.shape}, expected {(*shape, 3)}")
        videos[name] = v
    alpha = codec.decode_alpha(sample["alpha.npz"])
    if alpha.shape != shape or alpha.min() < 0 or alpha.max() > 1:
        problems.append(f"alpha has shape {alpha.shape} or values outside [0, 1]")
    if not problems:
        quality = codec.psnr(videos["mix"], blend(videos["v1"], videos["v2"], alpha))
        if quality < min_psnr:
            problems.append(f"blend identity at {quality:.1f} dB < {min_psnr} dB")
    for name in ("a1", "a2"):
        data = audio_member(sample, name)
        if data is not None:
            audio, rate = codec.decode_audio(data)
            if rate != meta["audio_rate"] or len(audio) != meta["audio_samples"]:
                problems.append(
                    f"{name}: {len(audio)} samples at {rate} Hz, expected "
                    f"{meta['audio_samples']} at {meta['audio_rate']} Hz"
                )
    return problems


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def inspect_shards(
    folder: Path,
    verify: bool = False,
    render: Path | None = None,
    n_render: int = 4,
    html: Path | None = None,
    max_samples: int | None = None,
) -> dict:
    """Summary of a shard folder; with ``verify`` every member is decoded and checked; with
    ``html`` a page of ``max_samples`` playable samples (default ``DEFAULT_MAX_SAMPLES``) is
    written there (``blendkit.pages.inspect_page``); the summary's ``html`` is its index."""
    shards = list_shard_files(folder)
    blends, members, sizes, fractions = Counter(), Counter(), [], []
    failures, rendered, n = [], [], 0
    for shard in shards:
        try:
            for sample in iter_samples(shard):
                key = f"{shard.name}:{sample['__key__']}"
                try:
                    meta = json.loads(sample["json"])
                    n += 1
                    blends[meta["blend"]] += 1
                    members.update(k for k in sample if not k.startswith("__"))
                    sizes.append(sum(len(v) for k, v in sample.items() if not k.startswith("__")))
                    if meta.get("superpixel"):
                        fractions.append(meta["superpixel"]["fraction"])
                    if verify:
                        failures += [
                            {"sample": key, "reason": p} for p in verify_sample(sample, meta)
                        ]
                    if render is not None and len(rendered) < n_render:
                        rendered.append((key, sample, meta))
                except (KeyError, ValueError, OSError) as e:
                    failures.append({"sample": key, "reason": f"unreadable: {e}"})
        except Exception as e:  # a broken tar stream: report it, keep going with the next shard
            failures.append({"sample": shard.name, "reason": f"unreadable shard: {e}"})
    audio = {
        name: sum(members[f"{name}.{e}"] for e in codec.AUDIO_EXTENSIONS) for name in ("a1", "a2")
    }
    result = {
        "folder": str(folder),
        "shards": len(shards),
        "samples": n,
        "samples_by_blend": dict(blends),
        "audio_coverage": {k: round(v / n, 4) if n else 0.0 for k, v in audio.items()},
        "superpixel_fraction": _stats(fractions),
        "bytes_per_sample": _stats(sizes),
        "mean_bytes_per_sample": round(sum(sizes) / n) if n else 0,
    }
    if verify:
        result["verify"] = {"checked": n, "failures": failures}
    elif failures:
        result["unreadable"] = failures
    if render is not None:
        from blendkit.render import contact_sheet

        contact_sheet(rendered, Path(render))
        result["render"] = str(render)
    if html is not None:
        from blendkit.pages.inspect_page import DEFAULT_MAX_SAMPLES, write_inspect_page

        n = DEFAULT_MAX_SAMPLES if max_samples is None else max_samples
        result["html"] = str(write_inspect_page(Path(folder), Path(html), result, n))
    return result


def format_summary(result: dict) -> str:
    """A short human-readable summary."""
    lines = [
        f"{result['folder']}: {result['shards']} shards, {result['samples']} samples "
        f"({', '.join(f'{k} {v}' for k, v in sorted(result['samples_by_blend'].items()))})",
        f"audio coverage: a1 {result['audio_coverage']['a1']:.1%}, "
        f"a2 {result['audio_coverage']['a2']:.1%}",
        f"bytes per sample: mean {result['mean_bytes_per_sample'] / 1e3:.1f} KB",
    ]
    sp = result["superpixel_fraction"]
    if sp:
        lines.append(
            f"superpixel fraction of the clip: min {sp['min']:.3f}, "
            f"median {sp['median']:.3f}, max {sp['max']:.3f}"
        )
    if "verify" in result:
        v = result["verify"]
        lines.append(f"verify: {v['checked']} samples decoded, {len(v['failures'])} failures")
        lines += [f"  {f['sample']}: {f['reason']}" for f in v["failures"][:20]]
    if "render" in result:
        lines.append(f"contact sheet: {result['render']}")
    if "html" in result:
        lines.append(f"page: {result['html']}")
    return "\n".join(lines)


def decoded_frames(sample: dict) -> dict[str, np.ndarray]:
    """mix, v1, v2 as (T,H,W,3) uint8 and alpha as (T,H,W) float32."""
    out = {k: codec.decode_video(sample[f"{k}.mp4"]) for k in ("mix", "v1", "v2")}
    out["alpha"] = codec.decode_alpha(sample["alpha.npz"])
    return out
