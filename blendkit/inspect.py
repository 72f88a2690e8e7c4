"""``blendkit inspect``: summarise, verify and draw a folder of shards.

Reads the tars alone, through the one shard reader (``blendkit.format.reader``; no sidecar,
manifest or blendkit-specific index needed), so it works on shards copied from anywhere. An
unreadable shard, a malformed member or sample is reported as a failure, never a crash.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from blendkit import codec
from blendkit.blend import blend
from blendkit.format.layout import list_shards
from blendkit.format.members import (
    AUDIO,
    META,
    REQUIRED,
    VIDEOS,
    FormatError,
    audio_bytes,
    decode_layers,
    find_audio,
)
from blendkit.format.meta import SampleMeta
from blendkit.format.reader import ShardError, read_shard
from blendkit.limits import DEFAULT_LIMITS, Limits
from blendkit.pages.inspect_page import DEFAULT_MAX_SAMPLES, write_inspect_page
from blendkit.render import contact_sheet


def verify_sample(
    sample: dict, meta: SampleMeta, min_psnr: float = 40.0, limits: Limits = DEFAULT_LIMITS
) -> list[str]:
    """Decode every member, each held to the sizes its json states within ``limits``
    (``Limits.for_clip``); returns the problems found (empty when the sample is sound)."""
    missing = [name for name in REQUIRED if name not in sample]
    if missing:
        return [f"missing {', '.join(missing)}"]
    problems = []
    shape = (meta.frames, meta.height, meta.width)
    layers = decode_layers(sample, limits.for_clip(*shape))
    for layer in VIDEOS:
        if layers[layer].shape != (*shape, 3):
            problems.append(f"{layer} has shape {layers[layer].shape}, expected {(*shape, 3)}")
    alpha = layers["alpha"]
    if alpha.shape != shape or alpha.min() < 0 or alpha.max() > 1:
        problems.append(f"alpha has shape {alpha.shape} or values outside [0, 1]")
    if not problems:
        quality = codec.psnr(layers["mix"], blend(layers["v1"], layers["v2"], alpha))
        if quality < min_psnr:
            problems.append(f"blend identity at {quality:.1f} dB < {min_psnr} dB")
    for track, m in AUDIO.items():
        data = audio_bytes(sample, m)
        if data is not None:
            audio, rate = m.decode(data, max_samples=meta.audio_samples)
            if rate != meta.audio_rate or len(audio) != meta.audio_samples:
                problems.append(
                    f"{track}: {len(audio)} samples at {rate} Hz, expected "
                    f"{meta.audio_samples} at {meta.audio_rate} Hz"
                )
    return problems


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


@dataclass
class _Tally:
    """What ``inspect_shards`` has seen so far."""

    verify: bool
    n_render: int
    samples: int = 0
    blends: Counter = field(default_factory=Counter)
    audio: Counter = field(default_factory=Counter)  # track -> samples holding it
    sizes: list[int] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    rendered: list[tuple[str, dict, SampleMeta]] = field(default_factory=list)

    def fail(self, where: str, reason: str) -> None:
        self.failures.append({"sample": where, "reason": reason})

    def add(self, where: str, sample: dict) -> None:
        """Count one raw sample (and verify it, keep it for the contact sheet)."""
        if META.name not in sample:
            return self.fail(where, "unreadable: no json member")
        try:
            meta = SampleMeta.from_dict(META.decode(sample[META.name]))
        except ValueError as e:  # FormatError, a bad json
            return self.fail(where, f"malformed json: {e}")
        self.samples += 1
        self.blends[meta.blend] += 1
        self.audio.update(t for t, m in AUDIO.items() if find_audio(sample, m) is not None)
        self.sizes.append(sum(len(v) for k, v in sample.items() if not k.startswith("__")))
        if meta.superpixel is not None:
            self.fractions.append(meta.superpixel.fraction)
        problems = []
        if self.verify:
            try:
                problems = verify_sample(sample, meta)
            except Exception as e:  # codec errors come in many types (av, zipfile, numpy)
                problems = [f"unreadable: {type(e).__name__}: {e}"]
            self.failures += [{"sample": where, "reason": p} for p in problems]
        if len(self.rendered) < self.n_render and not problems:
            self.rendered.append((where, sample, meta))


def inspect_shards(
    shards: str | Path,
    verify: bool = False,
    render: Path | None = None,
    n_render: int = 4,
    html: Path | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    allow_pipe: bool = False,
) -> dict:
    """Summary of a shard set (a folder or any spec ``list_shards`` takes; ``pipe:`` commands
    only with ``allow_pipe``); with ``verify`` every member is decoded and checked. Malformed
    members and samples and broken shards are reported as failures, never used, and every
    other sample is still checked. With ``html`` a page of ``max_samples`` playable samples is
    written there (``blendkit.pages.inspect_page``); the summary's ``html`` is its index."""
    urls = list_shards(shards, allow_pipe=allow_pipe)
    tally = _Tally(verify, n_render if render is not None else 0)
    for url in urls:
        name = url.rsplit("/", 1)[-1]

        def malformed(error: FormatError, name: str = name) -> None:
            tally.fail(name, f"malformed: {error}")

        try:
            for sample in read_shard(url, on_error=malformed):
                tally.add(f"{name}:{sample['__key__']}", sample)
        except ShardError as e:  # a broken tar stream: report it, go on with the next shard
            tally.fail(name, f"unreadable shard: {e}")
    result = _summary(str(shards), len(urls), tally)
    if render is not None:
        contact_sheet(tally.rendered, Path(render))
        result["render"] = str(render)
    if html is not None:
        page = write_inspect_page(shards, Path(html), result, max_samples, allow_pipe=allow_pipe)
        result["html"] = str(page)
    return result


def _summary(shards: str, n_shards: int, tally: _Tally) -> dict:
    n = tally.samples
    result = {
        "folder": shards,
        "shards": n_shards,
        "samples": n,
        "samples_by_blend": dict(tally.blends),
        "audio_coverage": {t: round(tally.audio[t] / n, 4) if n else 0.0 for t in AUDIO},
        "superpixel_fraction": _stats(tally.fractions),
        "bytes_per_sample": _stats(tally.sizes),
        "mean_bytes_per_sample": round(sum(tally.sizes) / n) if n else 0,
    }
    if tally.verify:
        result["verify"] = {"checked": n, "failures": tally.failures}
    elif tally.failures:
        result["unreadable"] = tally.failures
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
