"""Write one shard atomically: a WebDataset tar plus its JSON sidecar.

A shard exists under its final name only once complete. The tar and the sidecar are written to
temporary names in the same folder, flushed to disk, then renamed: sidecar first, tar last, so a
present ``shard-N.tar`` always has its sidecar, and a crash or kill leaves at most temporaries
(``outdir.temporary_name``) that the next run removes. Tar headers carry a fixed mtime, owner and
mode so the same samples give the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import webdataset as wds

from blendkit.format.layout import shard_name, sidecar_name
from blendkit.format.members import META, encode_meta
from blendkit.outdir import temporary_name


def shard_paths(out: Path, index: int) -> tuple[Path, Path]:
    """(tar, sidecar) paths of shard ``index``."""
    return out / shard_name(index), out / sidecar_name(index)


def is_complete(out: Path, index: int) -> bool:
    tar, sidecar = shard_paths(out, index)
    return tar.is_file() and sidecar.is_file()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(temporary_name(path.name))
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ShardWriter:
    """``write(key, members, meta)`` then ``close(sidecar)``; nothing is visible until close."""

    def __init__(self, out: Path, index: int):
        self.tar_path, self.sidecar_path = shard_paths(out, index)
        self._tmp = self.tar_path.with_name(temporary_name(self.tar_path.name))
        self._file = open(self._tmp, "wb")
        self._tar = wds.TarWriter(
            self._file, encoder=False, mtime=0.0, user="blendkit", group="blendkit"
        )

    def write(self, key: str, members: dict[str, bytes], meta: dict) -> int:
        """Add one sample; returns its size in bytes (members and json)."""
        record = {"__key__": key, **members}
        record[META.name] = encode_meta(meta)
        self._tar.write(record)
        return sum(len(v) for k, v in record.items() if k != "__key__")

    def close(self, sidecar: dict) -> None:
        self._tar.close()  # ends the tar stream; the file object stays ours
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        write_atomic(self.sidecar_path, json.dumps(sidecar, indent=1, sort_keys=True).encode())
        os.replace(self._tmp, self.tar_path)

    def abort(self) -> None:
        try:
            self._tar.close()  # end the tar stream before its file goes away
        finally:
            self._file.close()
        self._tmp.unlink(missing_ok=True)
