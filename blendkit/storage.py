"""Where shards live: local folders, fsspec URLs (``s3://``, ``gs://``, ``memory://``, ``file://``)
and WebDataset ``pipe:`` commands.

Writing (``make-shards --out``): :func:`open_store` gives a :class:`LocalStore` for a path or a
``file://`` URL and an :class:`FsspecStore` for any other fsspec URL. Both finish a shard the same
way: sidecar first, tar last, each under a temporary name first, so a present ``shard-N.tar``
always has its sidecar and a killed task leaves at most temporaries that the next run deletes.
``claim`` holds ``out`` for one run (``outdir.py``: ownership check, lock, temporaries).

- Local (and shared POSIX filesystems such as NFS or Lustre): ``os.replace`` is atomic.
- Object stores: a shard is written to a local temporary folder on the worker, uploaded to a
  temporary key, then moved to its final key. S3, GCS and Azure Blob make a single object visible
  only once its upload (multipart included) has completed, and since 2020 S3 reads after writes
  are strongly consistent, so a reader never sees half a tar. A "move" there is a server-side copy
  plus a delete, not a rename: a task killed between the two leaves a complete final object plus a
  stale temporary key, which the next run deletes. Listing is consistent on S3 and GCS too, so
  resume sees every finished shard.
- ``memory://`` is per process: useful in tests with the in-process engine only.

Reading: ``blendkit.format.layout`` lists shards (``list_shards``) and opens them (``open_url``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from blendkit import outdir
from blendkit.format.layout import fsspec_module as _fsspec
from blendkit.format.layout import is_local, is_pipe, local_path, shard_name, sidecar_name
from blendkit.writer import ShardWriter, is_complete, shard_paths, write_atomic


class LocalStore:
    """Shards in a local (or shared POSIX) folder; the writer renames files into place itself."""

    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)

    def claim(self) -> contextlib.AbstractContextManager[list[str]]:
        """Hold the folder for one run (``outdir.claim_local``); yields the names in it."""
        return outdir.claim_local(self.root)

    def read_text(self, name: str) -> str | None:
        path = self.root / name
        return path.read_text() if path.is_file() else None

    def write_bytes(self, name: str, data: bytes) -> None:
        write_atomic(self.root / name, data)

    def complete(self, indices: Iterable[int]) -> set[int]:
        """The shards among ``indices`` that are finished."""
        return {i for i in indices if is_complete(self.root, i)}

    @contextlib.contextmanager
    def shard_writer(self, index: int) -> Iterator[ShardWriter]:
        """A writer for shard ``index``; ``close`` puts the shard in place."""
        yield ShardWriter(self.root, index)


class FsspecStore:
    """Shards under an fsspec URL: each is made in a local temporary folder, then uploaded."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = _fsspec().core.url_to_fs(self.url)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    @contextlib.contextmanager
    def claim(self) -> Iterator[list[str]]:
        """The ownership check, the marker and the temporaries of ``outdir``, without a lock
        (see there); yields the names in the folder."""
        outdir.check_ours(self.url, self._names(), self.read_text)
        self.fs.makedirs(self.root, exist_ok=True)
        self.fs.pipe_file(self._path(outdir.LOCK_NAME), outdir.holder().encode())
        outdir.remove_temporaries(self._names(), lambda n: self.fs.rm_file(self._path(n)))
        try:
            yield sorted(self._names())
        finally:
            outdir.remove_temporaries(self._names(), lambda n: self.fs.rm_file(self._path(n)))

    def _names(self) -> list[str]:
        if not self.fs.isdir(self.root):
            return []
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]

    def read_text(self, name: str) -> str | None:
        path = self._path(name)
        return self.fs.cat_file(path).decode() if self.fs.isfile(path) else None

    def _publish(self, name: str, local: Path | None = None, data: bytes | None = None) -> None:
        """Upload to a temporary key, then move it to ``name``."""
        tmp = self._path(outdir.temporary_name(name, uuid.uuid4().hex))
        if local is not None:
            self.fs.put_file(str(local), tmp)
        else:
            self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, self._path(name))

    def write_bytes(self, name: str, data: bytes) -> None:
        self._publish(name, data=data)

    def complete(self, indices: Iterable[int]) -> set[int]:
        if not self.fs.isdir(self.root):
            return set()
        names = {p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)}
        return {i for i in indices if shard_name(i) in names and sidecar_name(i) in names}

    @contextlib.contextmanager
    def shard_writer(self, index: int) -> Iterator[ShardWriter]:
        """A writer into a local temporary folder; on a clean exit the shard is uploaded
        (sidecar, then tar). The temporary folder is deleted either way."""
        staging = Path(tempfile.mkdtemp(prefix="blendkit-shard-"))
        try:
            writer = ShardWriter(staging, index)
            yield writer
            tar, sidecar = shard_paths(staging, index)
            self._publish(sidecar.name, local=sidecar)
            self._publish(tar.name, local=tar)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def open_store(out: str) -> LocalStore | FsspecStore:
    """The store for ``make-shards --out``: a path, ``file://`` URL or other fsspec URL."""
    if is_pipe(out):
        raise ValueError(f"{out}: pipe: commands can be read from, not written to; use a URL")
    return LocalStore(local_path(out)) if is_local(out) else FsspecStore(out)
