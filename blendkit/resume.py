"""Resume: what a shard folder records about how its shards were made, and which of them a rerun
may keep.

A rerun of the same command keeps the finished shards and makes the others. It may keep a shard
only if a fresh run would make the same bytes, which depends on three records, written next to
the shards before the first shard of a run is made:

- ``config.json``: the ``ShardConfig`` (its ``identity()``: the fields that decide the bytes);
- ``made_with.json``: the shard format and the codec and array libraries' versions;
- ``inputs.json``: the input record (``InputRecord``): every indexed input (its path relative to
  SOURCE, youtube_id, label, split, size and mtime in ns) and whether it was usable, plus the
  shards waiting to be redone.

While no shard exists nothing is checked: a rerun after a failed first attempt (a bad option, too
few usable videos) replaces the records. Once one exists:

- another config or other library versions: refused, naming what differs;
- an input added or gone, or one now usable that was not (or the reverse): refused, naming the
  first such input. Every shard's plan (which video is V1 of which sample) depends on the list of
  usable inputs, so no finished shard would be what a fresh run makes;
- an input whose size, mtime or annotation changed but that is usable as before: the finished
  shards that read it (as V1 or V2, or tried it and recorded its failure: their sidecars say so)
  are redone, and only those: the others never read it, so a fresh run makes them byte for byte.
  They are recorded as ``pending`` before any is rewritten, so a run killed halfway redoes them
  on the next rerun, and cleared once every shard is made.

Fingerprints are size and mtime, not content hashes: a stat costs ~5 us a file (2.3 s for 480k
files on this machine's disk), hashing reads every byte (see the report of issue 14 for the
figures). A copy that keeps mtimes (``cp -a``, ``rsync -a``) resumes; one that does not redoes the
shards, never keeps stale ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from blendkit.format.layout import shard_name
from blendkit.kinetics import VideoItem
from blendkit.shard_config import ShardConfig
from blendkit.storage import FsspecStore, LocalStore
from blendkit.typed_config import ConfigError, from_dict

Store = LocalStore | FsspecStore

RECORD_NAME = "inputs.json"
RECORD_VERSION = 1
COLUMNS = ("path", "youtube_id", "label", "split", "size", "mtime_ns", "usable")


def has_shards(names: Iterable[str]) -> bool:
    """Whether a folder holding ``names`` holds a finished shard (its tar)."""
    return any(_is_shard_tar(n) for n in names)


def _is_shard_tar(name: str) -> bool:
    index = name.removesuffix(".tar").rpartition("-")[2]
    return name.endswith(".tar") and index.isdigit() and name == _shard_tar(int(index))


def _shard_tar(index: int) -> str:
    return shard_name(index)


@dataclass
class InputRecord:
    """Every indexed input by path: (youtube_id, label, split, size, mtime_ns, usable); and the
    shards waiting to be redone."""

    inputs: dict[str, tuple[Any, ...]]
    pending: list[int] = field(default_factory=list)

    def to_json(self) -> bytes:
        rows = [[path, *fields] for path, fields in self.inputs.items()]
        data = {"version": RECORD_VERSION, "columns": COLUMNS, "pending": self.pending}
        return json.dumps({**data, "inputs": rows}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, text: str, where: str) -> InputRecord:
        try:
            data = json.loads(text)
            if data["version"] != RECORD_VERSION or data["columns"] != list(COLUMNS):
                raise ValueError(f"version {data['version']}, columns {data['columns']}")
            inputs = {row[0]: tuple(row[1:]) for row in data["inputs"]}
            return cls(inputs, [int(i) for i in data["pending"]])
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise ConfigError(f"{where}: unreadable input record ({e}); use another --out") from e


def stat_inputs(items: list[VideoItem]) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every item by path, taken before the items are probed; (-1, -1) for
    one that cannot be read."""
    stats = {}
    for item in items:
        try:
            st = os.stat(item.path)
            stats[item.rel] = (st.st_size, st.st_mtime_ns)
        except OSError:
            stats[item.rel] = (-1, -1)
    return stats


def record_inputs(
    items: list[VideoItem], stats: dict[str, tuple[int, int]], usable: set[str]
) -> InputRecord:
    """The record of ``items`` (``stats`` from ``stat_inputs``; ``usable``: paths that probed
    usable)."""
    return InputRecord(
        {
            it.rel: (it.youtube_id, it.label, it.split, *stats[it.rel], it.rel in usable)
            for it in items
        }
    )


def check_same_config(cfg: ShardConfig, store: Store, now: dict[str, Any]) -> None:
    """Refuse to add to shards made with another config or other library versions (``now``:
    ``pipeline.made_with()``), or whose records are missing."""
    path = f"{store.url}/config.json"
    text = store.read_text("config.json")
    if text is None or store.read_text(RECORD_NAME) is None:
        raise ConfigError(
            f"{store.url}: shards here were made by an older blendkit (no config.json or "
            f"{RECORD_NAME} to check a rerun against); use another --out"
        )
    try:
        previous = from_dict(ShardConfig, json.loads(text)).identity()
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: unreadable config of earlier shards ({e})") from e
    changed = sorted(k for k, v in cfg.identity().items() if previous.get(k) != v)
    if changed:
        raise ConfigError(
            f"{path}: shards here were made with a different config "
            f"(differs in: {', '.join(changed)}); use another --out"
        )
    before_text = store.read_text("made_with.json")
    if before_text is None:
        raise ConfigError(
            f"{store.url}: shards here were made by an older blendkit (no made_with.json); "
            "use another --out"
        )
    before = json.loads(before_text)
    changed = sorted(k for k in now if before.get(k) != now[k])
    if changed:
        raise ConfigError(
            f"{store.url}/made_with.json: shards here were made by other versions "
            f"(differs in: {', '.join(changed)}); use another --out"
        )


def shards_to_redo(
    store: Store,
    current: InputRecord,
    finished: set[int],
    read_sidecar: Callable[[int], dict],
) -> list[int]:
    """The finished shards that read an input changed since they were made (plus those pending
    from an earlier run); ``ConfigError`` naming the first input added, gone, or usable where it
    was not (or the reverse)."""
    where = f"{store.url}/{RECORD_NAME}"
    previous = InputRecord.from_json(store.read_text(RECORD_NAME) or "", where)
    for path in sorted(previous.inputs.keys() ^ current.inputs.keys()):
        what = "gone" if path in previous.inputs else "new"
        _refuse(where, path, f"{what} since the shards here were made")
    usable = COLUMNS.index("usable") - 1
    changed = set()
    for path, now in current.inputs.items():
        before = previous.inputs[path]
        if before[usable] != now[usable]:
            state = "usable" if now[usable] else "not usable (see the skipped inputs)"
            _refuse(where, path, f"changed since the shards here were made and is now {state}")
        if tuple(before) != tuple(now):
            changed.add(path)
    redo = set(previous.pending) & finished
    if changed:
        redo |= {s for s in finished - redo if _reads(read_sidecar(s)) & changed}
    return sorted(redo)


def _reads(sidecar: dict) -> set[str]:
    """The paths of the inputs a shard read: its samples' V1 and V2 and its recorded failures."""
    used = {s["meta"][v]["path"] for s in sidecar["samples"] for v in ("v1", "v2")}
    return used | {s["path"] for s in sidecar["skipped"]}


def _refuse(where: str, path: str, what: str) -> None:
    raise ConfigError(
        f"{where}: input {path!r} is {what}: every shard's plan depends on the list of usable "
        "inputs; restore it, or use another --out"
    )


def write_records(store: Store, cfg: ShardConfig, now: dict[str, Any], record: InputRecord) -> None:
    """Record how the shards are made: the input record first, the config last."""
    store.write_bytes(RECORD_NAME, record.to_json())
    store.write_bytes("made_with.json", json.dumps(now, indent=1, sort_keys=True).encode())
    config = dataclasses.asdict(cfg)
    store.write_bytes("config.json", json.dumps(config, indent=1, sort_keys=True).encode())
