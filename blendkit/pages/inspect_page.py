"""The page of a shard folder: ``blendkit inspect DIR --html OUTDIR [--max-samples N]``.

At the top, the summary ``inspect`` computed (a table, a bar chart of the counts, and the contact
sheet of the first four samples shown); then N samples spread over blend kinds and shards
(``spread``), each a synced group: mix, v1, v2 and alpha playing together, a1 and a2 with their
own controls, and the sample's metadata (sources and labels, clip starts, crops, superpixel, the
blend identity's PSNR); a filter by blend kind and label.

Samples are read with the one shard reader (``blendkit.format.read_shard``): a first pass over
at most N shards (evenly spaced) reads their metadata, a second one the chosen samples. A sample
whose metadata does not parse is passed over (``inspect`` itself reports it).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from blendkit import codec  # noqa: E402
from blendkit.format.geometry import Geometry  # noqa: E402
from blendkit.format.layout import list_shards  # noqa: E402
from blendkit.format.members import AUDIO, META, audio_bytes, decode_layers  # noqa: E402
from blendkit.format.meta import SampleMeta  # noqa: E402
from blendkit.format.reader import ShardError, read_shard  # noqa: E402
from blendkit.pages.folder import write_page  # noqa: E402
from blendkit.pages.page import Page, Section  # noqa: E402
from blendkit.pages.spread import Candidate, spaced, spread  # noqa: E402
from blendkit.render import contact_sheet  # noqa: E402

DEFAULT_MAX_SAMPLES = 8
CONTACT_ROWS = 4
VIDEOS = ("mix", "v1", "v2", "alpha")
HOW_TO = (
    "Each sample plays mix, v1, v2 and alpha in sync: the play button (or a click on a video) "
    "plays and pauses, the arrows step one frame, the slider seeks. a1 and a2 play alone with "
    "their own controls, or with the videos when chosen in the sound menu."
)


def _meta(sample: dict) -> dict:
    """The sample's metadata; ``ValueError`` unless it is an object with a clip geometry."""
    meta = json.loads(sample[META.name])
    if not isinstance(meta, dict):
        raise ValueError("sample metadata is not an object")
    Geometry.from_dict(meta)
    return meta


def _ignore(_error: Exception) -> None:
    """Malformed members and samples: ``inspect`` itself reports them; the page passes over."""


def _shard_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _candidates(shards: list[str], chosen: list[int]) -> list[Candidate]:
    out = []
    for i in chosen:
        try:
            for sample in read_shard(shards[i], on_error=_ignore):
                try:
                    out.append(Candidate(i, sample["__key__"], str(_meta(sample).get("blend"))))
                except (KeyError, ValueError):
                    continue
        except ShardError:  # a broken tar: inspect reports it; show the others
            continue
    return out


def select_samples(shards: list[str], max_samples: int) -> list[tuple[str, dict, dict]]:
    """``(shard, raw sample, metadata)`` of up to ``max_samples`` samples, in spread order."""
    picks = spread(_candidates(shards, spaced(len(shards), max_samples)), max_samples)
    wanted = {(p.shard, p.key): n for n, p in enumerate(picks)}
    found: dict[int, tuple[str, dict, dict]] = {}
    for shard in sorted({p.shard for p in picks}):
        try:
            for sample in read_shard(shards[shard], on_error=_ignore):
                n = wanted.get((shard, sample["__key__"]))
                if n is not None:
                    found[n] = (shards[shard], sample, _meta(sample))
        except ShardError:  # the broken tail of a tar: keep what came before
            continue
    return [found[n] for n in sorted(found)]


def _number(value: object, spec: str, unit: str = "") -> str:
    return f"{value:{spec}}{unit}" if isinstance(value, int | float) else "?"


def _source(side: object) -> str:
    """One line for V1 or V2: label, id, clip start, crop within the resized frame."""
    if not isinstance(side, dict):
        return "?"
    crop, resized = side.get("crop"), side.get("resized")
    where = ""
    if isinstance(crop, list) and len(crop) == 4:
        where = f" \u00b7 crop at ({crop[0]}, {crop[1]}), {crop[2]}\u00d7{crop[3]}"
        if isinstance(resized, list) and len(resized) == 2:
            where += f" of {resized[0]}\u00d7{resized[1]}"
    start = _number(side.get("clip_start_s"), ".2f", " s")
    return (
        f"{side.get('label', '?')} \u00b7 {side.get('youtube_id', '?')} \u00b7 from {start}{where}"
    )


def sample_rows(shard: str, meta: dict) -> list[tuple[str, str]]:
    """The metadata table of one sample (every value is shown escaped)."""
    rows = [("V1", _source(meta.get("v1"))), ("V2", _source(meta.get("v2")))]
    sp = meta.get("superpixel")
    if isinstance(sp, dict):
        share = _number(sp.get("fraction"), ".1%", " of the clip")
        rows.append(
            (
                "superpixel",
                f"#{sp.get('label', '?')}: {share}, {sp.get('voxels', '?')} voxels, "
                f"{sp.get('n_segments', '?')} segments",
            )
        )
    else:
        rows.append(("superpixel", "none (alpha = 1/2 everywhere)"))
    video = meta.get("video") if isinstance(meta.get("video"), dict) else {}
    quality = _number(video.get("mix_psnr_db"), ".1f", " dB")
    rows.append(("blend identity", f"PSNR {quality} (mix CRF {video.get('mix_crf', '?')})"))
    rows.append(("pairing, seed", f"{meta.get('pairing', '?')}, {meta.get('seed', '?')}"))
    rows.append(("shard", _shard_name(shard)))
    return rows


def _labels(meta: dict) -> list[str]:
    sides = [meta.get(s) for s in ("v1", "v2")]
    return sorted({str(s["label"]) for s in sides if isinstance(s, dict) and s.get("label")})


def add_sample(section: Section, shard: str, sample: dict, meta: dict) -> None:
    """One synced group: mix, v1, v2, alpha; a1, a2; the metadata table. Every member is decoded
    before the group is added, so a broken sample raises and adds nothing."""
    frames = decode_layers(sample)
    sounds = []
    for name, side in (("a1", "v1"), ("a2", "v2")):
        data = audio_bytes(sample, AUDIO[name])
        if data is not None:
            sounds.append((name, *codec.decode_audio(data), _side(meta, side).get("label", "")))
    kind = str(meta.get("blend", "?"))
    group = section.group(
        str(meta.get("key", sample["__key__"])),
        Geometry.from_dict(meta).fps,
        tags=[kind, _shard_name(shard)],
        facets={"blend": [kind], "label": _labels(meta)},
        meta=sample_rows(shard, meta),
    )
    for name in VIDEOS:
        group.video(frames[name], name, caption=str(_side(meta, name).get("label", "")))
    for name, audio, rate, label in sounds:
        group.audio(audio, rate, name, caption=str(label))


def _side(meta: dict, name: str) -> dict:
    """``meta[name]`` when it is a source's metadata (v1, v2), else an empty dict."""
    side = meta.get(name) if name in ("v1", "v2") else None
    return side if isinstance(side, dict) else {}


def _counts_figure(summary: dict):
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 2.4), dpi=100)
    kinds = sorted(summary["samples_by_blend"].items())
    left.bar(
        [k for k, _ in kinds], [v for _, v in kinds], color=["#0969da", "#bf8700"][: len(kinds)]
    )
    left.set_title("samples by blend kind", fontsize=10)
    coverage = summary["audio_coverage"]
    right.bar(list(coverage), [100 * v for v in coverage.values()], color="#1a7f37")
    right.set_ylim(0, 100)
    right.set_title("samples with audio (%)", fontsize=10)
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def summary_rows(summary: dict) -> list[list]:
    rows = [["shards", summary["shards"]], ["samples", summary["samples"]]]
    rows += [[f"  {k}", v] for k, v in sorted(summary["samples_by_blend"].items())]
    rows += [[f"with {k} audio", f"{v:.1%}"] for k, v in summary["audio_coverage"].items()]
    rows.append(["mean size of a sample", f"{summary['mean_bytes_per_sample'] / 1e3:.1f} KB"])
    sp = summary.get("superpixel_fraction")
    if sp:
        rows.append(
            [
                "superpixel share of the clip",
                f"{sp['min']:.3f} / {sp['median']:.3f} / {sp['max']:.3f}",
            ]
        )
    if "verify" in summary:
        v = summary["verify"]
        rows.append(["verified", f"{v['checked']} samples, {len(v['failures'])} failures"])
    if summary.get("unreadable"):
        rows.append(["unreadable", len(summary["unreadable"])])
    return rows


def _fill_summary(top: Section, summary: dict, shown: list[tuple[str, dict, dict]]) -> None:
    top.table(["", "value"], summary_rows(summary), caption="blendkit inspect: the whole folder")
    fig = _counts_figure(summary)
    top.figure(fig, caption="Counts")
    plt.close(fig)
    rows = []
    for shard, sample, meta in shown:
        try:  # the contact sheet takes well-formed metadata only
            rows.append(
                (f"{_shard_name(shard)}:{sample['__key__']}", sample, SampleMeta.from_dict(meta))
            )
        except ValueError:
            continue
        if len(rows) == CONTACT_ROWS:
            break
    if rows:
        with tempfile.TemporaryDirectory() as tmp:
            sheet = Path(tmp) / "sheet.png"
            contact_sheet(rows, sheet)
            top.figure(sheet.read_bytes(), caption="Contact sheet: frames and spectrograms")


def write_inspect_page(
    folder: str | Path,
    outdir: Path,
    summary: dict,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    progress: bool = True,
    allow_pipe: bool = False,
) -> Path:
    """Write the page of shard folder ``folder`` to ``outdir``; returns ``outdir/index.html``.

    ``summary`` is ``inspect_shards``' result for the folder (the counts at the top);
    ``allow_pipe``: ``folder`` may run ``pipe:`` commands (``layout.list_shards``).
    """
    if max_samples < 1:
        raise ValueError(f"--max-samples must be at least 1, got {max_samples}")
    chosen = select_samples(list_shards(folder, allow_pipe=allow_pipe), max_samples)
    page = Page(f"Shards: {folder}")
    top = page.section("Summary")
    samples = page.section("Samples", filters=("blend", "label"))
    samples.text(HOW_TO)
    shown, passed_over = [], []
    for shard, sample, meta in tqdm(chosen, desc="page", unit="sample", disable=not progress):
        try:
            add_sample(samples, shard, sample, meta)
            shown.append((shard, sample, meta))
        except (KeyError, ValueError, OSError) as e:  # av's errors are OSErrors
            passed_over.append(f"{_shard_name(shard)}:{sample['__key__']}: {type(e).__name__}: {e}")
    if passed_over:
        samples.text("Passed over (could not be decoded):", *passed_over)
    page.subtitle = (
        f"{len(shown)} of {summary['samples']} samples, spread over blend kinds and "
        f"{summary['shards']} shards"
    )
    _fill_summary(top, summary, shown)
    return write_page(page, outdir)
