"""``manifest.parquet``: one row per sample of a shard folder, written and read here.

``make-shards`` writes it from the shards' sidecars (:func:`write_manifest`); readers use it to
learn about samples without opening a tar (:func:`read_manifest`, :func:`labels`). A shard set
without a manifest (a glob, a list file, shards copied without it) is read from its samples'
``KEY.json`` members instead, through the one shard reader.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from blendkit.format.layout import (
    GLOB_CHARS,
    MANIFEST,
    is_local,
    is_pipe,
    list_shards,
    local_path,
    open_url,
    shard_name,
    url_to_fs,
)
from blendkit.format.members import META, FormatError
from blendkit.format.meta import SampleMeta
from blendkit.format.reader import read_shard

SIDE_FIELDS = ("youtube_id", "label", "split", "path", "clip_start_s", "has_audio")


class Store(Protocol):
    def write_bytes(self, name: str, data: bytes) -> None: ...


def manifest_row(meta: SampleMeta, shard: str, size: int) -> dict[str, Any]:
    """The manifest row of one sample written to ``shard`` in ``size`` bytes."""
    row = {
        "key": meta.key,
        "index": meta.index,
        "shard": shard,
        "blend": meta.blend,
        "seed": meta.seed,
        "bytes": size,
        "superpixel_fraction": meta.superpixel.fraction if meta.superpixel else None,
        "mix_crf": meta.video.mix_crf,
        "mix_psnr_db": meta.video.mix_psnr_db,
    }
    for side in ("v1", "v2"):
        clip = getattr(meta, side)
        for k in SIDE_FIELDS:
            row[f"{side}_{k}"] = getattr(clip, k)
    return row


def manifest_rows(sidecars: list[dict]) -> list[dict[str, Any]]:
    """One flat row per sample of the shards whose sidecars are given, in their order."""
    return [
        manifest_row(SampleMeta.from_dict(s["meta"]), shard_name(sc["shard"]), s["bytes"])
        for sc in sidecars
        for s in sc["samples"]
    ]


def write_manifest(store: Store, sidecars: list[dict]) -> None:
    """Write ``manifest.parquet`` of the shards whose sidecars are given into ``store``."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(manifest_rows(sidecars)), buffer)
    store.write_bytes(MANIFEST, buffer.getvalue())


def _manifest_url(folder: str) -> str | None:
    """The manifest's URL when ``folder`` is a folder (path or URL) holding one, else None (a
    pipe, brace pattern or glob names shards, not a folder)."""
    if is_pipe(folder) or "{" in folder or any(c in folder for c in GLOB_CHARS):
        return None
    if is_local(folder):
        path = local_path(folder) / MANIFEST
        return str(path) if path.is_file() else None
    fs, root = url_to_fs(folder)
    path = f"{root.rstrip('/')}/{MANIFEST}"
    return fs.unstrip_protocol(path) if fs.isfile(path) else None


def read_manifest(folder: str | Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of ``folder``'s ``manifest.parquet`` (only ``columns`` when given).

    Raises ``FileNotFoundError`` when the folder has none and ``FormatError`` when it cannot be
    read or lacks a column asked for."""
    url = _manifest_url(str(folder))
    if url is None:
        raise FileNotFoundError(f"{folder}: no {MANIFEST}")
    try:
        with open_url(url) as f:
            return pq.read_table(f, columns=columns).to_pylist()
    except (OSError, pa.ArrowException, KeyError) as e:
        raise FormatError(f"{url}: unreadable manifest ({type(e).__name__}: {e})") from None


def _json_metas(
    spec: str, on_error: Callable[[FormatError], None], allow_pipe: bool
) -> Iterator[tuple[str, dict]]:
    """(key, json object) of every sample of the shards ``spec`` names, read from the tars."""
    for url in list_shards(spec, allow_pipe=allow_pipe):
        for sample in read_shard(url, on_error=on_error, keep={META.name}):
            if META.name in sample:
                try:
                    yield sample["__key__"], META.decode(sample[META.name])
                except ValueError as e:
                    on_error(FormatError(f"{url}:{sample['__key__']}: bad json ({e})"))


def labels(
    shards: str | Path,
    on_error: Callable[[FormatError], None] | None = None,
    allow_pipe: bool = False,
) -> dict[str, tuple[str, str]]:
    """Sample key -> (V1 label, V2 label) of a shard set.

    From ``manifest.parquet`` when ``shards`` is a folder holding one; else from every sample's
    ``KEY.json`` (``v1.label``, ``v2.label``; samples without them are left out). ``on_error``
    receives malformed members and samples of the tars (by default they raise); ``allow_pipe``:
    ``shards`` may run ``pipe:`` commands (``layout.list_shards``).
    """
    spec = str(shards)
    if _manifest_url(spec) is not None:
        rows = read_manifest(spec, columns=["key", "v1_label", "v2_label"])
        return {r["key"]: (str(r["v1_label"]), str(r["v2_label"])) for r in rows}
    out: dict[str, tuple[str, str]] = {}
    for key, meta in _json_metas(spec, on_error or _raise, allow_pipe):
        try:
            out[key] = (str(meta["v1"]["label"]), str(meta["v2"]["label"]))
        except (KeyError, TypeError):
            continue
    return out


def blend_counts(
    shards: str | Path,
    on_error: Callable[[FormatError], None] | None = None,
    allow_pipe: bool = False,
) -> dict[str, int]:
    """Blend kind -> number of samples of a shard set.

    From ``manifest.parquet`` when ``shards`` is a folder holding one; else from every sample's
    ``KEY.json`` (its ``blend``; samples without one are left out). ``on_error`` and
    ``allow_pipe`` as in :func:`labels`.
    """
    spec = str(shards)
    if _manifest_url(spec) is not None:
        kinds = [r["blend"] for r in read_manifest(spec, columns=["blend"])]
    else:
        metas = _json_metas(spec, on_error or _raise, allow_pipe)
        kinds = [meta.get("blend") for _, meta in metas if isinstance(meta, dict)]
    return dict(Counter(str(k) for k in kinds if k is not None))


def _raise(error: FormatError) -> None:
    raise error
