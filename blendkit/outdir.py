"""What keeps ``make-shards --out`` safe: one run at a time, and nothing touched that blendkit did
not make.

- **Ours only.** A folder that exists and is not empty must be a blendkit shard folder: it holds
  ``LOCK_NAME`` (every run writes it first thing) or, made by an older blendkit, a
  ``made_with.json`` naming a ``shard_format``. Any other folder is refused with a one-line
  reason before anything is written, so ``report.json`` or ``manifest.parquet`` never replaces a
  file of the user's.
- **One run at a time.** The run's main process holds an exclusive ``flock`` on ``LOCK_NAME`` for
  the whole run; a second run on the same folder stops at once, naming the holder (pid, host,
  start time) that the file records. The kernel drops the lock when its process ends, however it
  ends (``kill -9`` too), so a crashed run never blocks the rerun that resumes it. On NFS, Linux
  maps ``flock`` to NFS byte-range locks, so it holds across machines there.
- **Temporaries.** Every file is written under ``temporary_name(name)`` first, then renamed;
  ``is_temporary`` recognises those names (and the exact names older versions used), and only
  they are ever deleted: a user's ``notes.tmp`` stays.

fsspec stores (``s3://``, ``memory://``, ...) get the same ownership check and the marker, but no
lock: object stores offer no atomic create-if-absent that fsspec exposes for every backend, and a
lock object left by a killed run would block every rerun until deleted by hand. Run one
make-shards per URL there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

LOCK_NAME = ".blendkit.lock"  # also the marker of a blendkit shard folder
TMP_PREFIX = ".blendkit-tmp."
_TEMPORARY = re.compile(
    r"\.blendkit-tmp\.[0-9a-f]+\.[^/]+"  # temporary_name
    # older blendkit: .NAME.PID.tmp (local) and .NAME.UUID.tmp (fsspec) of its own files only
    r"|\.(shard-\d{6}\.(tar|json)|config\.json|made_with\.json|report\.json|manifest\.parquet)"
    r"\.([0-9]+|[0-9a-f]{32})\.tmp"
)


class OutFolderError(ValueError):
    """``--out`` cannot be used: not blendkit's, or another run holds it."""


def temporary_name(name: str, token: str | None = None) -> str:
    """The name ``name`` is written under before it is renamed into place; ``token`` (hex; by
    default the process id) keeps concurrent writers apart."""
    return f"{TMP_PREFIX}{token or format(os.getpid(), 'x')}.{name}"


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary name blendkit made (and may delete)."""
    return _TEMPORARY.fullmatch(name) is not None


def check_ours(url: str, names: Iterable[str], read_text: Callable[[str], str | None]) -> None:
    """Raise ``OutFolderError`` unless the folder holding ``names`` is empty or blendkit's."""
    names = sorted(names)
    if not names or LOCK_NAME in names:
        return
    if "made_with.json" in names:  # a shard folder of a blendkit without the marker
        try:
            if "shard_format" in json.loads(read_text("made_with.json") or "{}"):
                return
        except (ValueError, TypeError):
            pass
    raise OutFolderError(
        f"{url}: not empty and not a blendkit shard folder (holds {names[0]!r}); "
        "use a new or empty folder for --out"
    )


def holder() -> str:
    """Who holds the lock: the text ``LOCK_NAME`` records."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since})


def _describe(text: str) -> str:
    try:
        h = json.loads(text)
        return f"pid {int(h['pid'])} on {str(h['host'])[:64]} since {str(h['since'])[:32]}"
    except (ValueError, TypeError, KeyError):
        return "a process that left no name"


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the exclusive lock on folder ``root`` (which exists); ``OutFolderError`` naming the
    holder if another process has it."""
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 4096, 0).decode(errors="replace")
            raise OutFolderError(
                f"{root}: another make-shards is writing here ({_describe(text)}); "
                "wait for it to end or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder().encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_temporaries(names: Iterable[str], remove: Callable[[str], None]) -> int:
    """``remove`` each of ``names`` that is a blendkit temporary; returns how many."""
    found = [n for n in names if is_temporary(n)]
    for name in found:
        remove(name)
    return len(found)


@contextlib.contextmanager
def claim_local(root: Path) -> Iterator[list[str]]:
    """Hold local folder ``root`` for one run: refuse a folder that is not blendkit's, create it,
    lock it, and delete blendkit's temporaries (on entry, and on exit: those of tasks that died
    and were retried). Yields the names in the folder once cleaned. A folder this run created
    and left holding nothing but the lock (it failed before writing anything) is removed."""
    if root.exists() and not root.is_dir():
        raise OutFolderError(f"{root}: exists and is not a folder")
    created = not root.exists()
    names = os.listdir(root) if not created else []
    check_ours(str(root), names, lambda n: _read(root / n))
    root.mkdir(parents=True, exist_ok=True)

    def unlink(name: str) -> None:
        (root / name).unlink(missing_ok=True)

    with locked(root):
        remove_temporaries(os.listdir(root), unlink)
        try:
            yield sorted(os.listdir(root))
        finally:
            remove_temporaries(os.listdir(root), unlink)
            if created and os.listdir(root) == [LOCK_NAME]:
                unlink(LOCK_NAME)
                root.rmdir()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
