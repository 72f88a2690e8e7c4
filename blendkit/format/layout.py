"""The layout of a shard folder: its file names, the shard format version, and shard listing.

A shard folder holds ``shard-NNNNNN.tar`` with its sidecar ``shard-NNNNNN.json``, plus
``config.json``, ``made_with.json``, ``manifest.parquet`` and ``report.json`` (docs/contract.md).

Listing: :func:`list_shards` turns a shard spec (a folder, glob, brace pattern, list file, one tar,
an fsspec URL of any of these, or a ``pipe:`` command) into shard URLs, and :func:`open_url` opens
any of them as a binary stream. ``pipe:`` commands are brace-expanded and run by
:func:`_open_pipe` alone.

:func:`missing_shards` says which listed shards do not exist (one listing per folder of URLs);
:func:`url_to_fs` turns a URL into the filesystem the readers use (a missing protocol package such
as ``s3fs`` is a one-line error naming the URL).

Commands only on request: a ``pipe:`` spec, or a ``pipe:`` line in a list file, runs a shell
command when its shard is opened, so a list received from someone else could run anything.
:func:`list_shards` refuses every one (``PipeRefused``, naming the list file and line) unless the
caller passes ``allow_pipe=True`` (the CLIs' ``--allow-pipe``, the trainer's ``data.allow_pipe``).
Every shard URL the project opens comes from this listing, so that one check is the gate.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import IO

import braceexpand

# bump when the same config and inputs would give other bytes (2: chain pairing, 3: a new source
# order for each pass over the sources, 4: x264 trellis=0 by default and AAC's fast coder)
SHARD_FORMAT = 4

SHARD_PATTERN = "shard-{:06d}"
SHARD_GLOB = "shard-*.tar"
CONFIG = "config.json"  # the ShardConfig the shards were made with
MADE_WITH = "made_with.json"  # shard format and library versions
MANIFEST = "manifest.parquet"  # one row per sample
REPORT = "report.json"  # counts, stage timings, skipped inputs

PIPE = "pipe:"
GLOB_CHARS = ("*", "?", "[")
ALLOW_PIPE_HELP = (
    "Run the shell commands of pipe: shard specs and pipe: lines of shard lists (the shard is "
    "the command's output); without it they are refused."
)


class PipeRefused(ValueError):
    """A ``pipe:`` shard spec or list line, met without ``allow_pipe``."""


def shard_name(index: int) -> str:
    """``shard-000012.tar``: the file name of shard ``index``."""
    return f"{SHARD_PATTERN.format(index)}.tar"


def sidecar_name(index: int) -> str:
    """``shard-000012.json``: the file name of shard ``index``'s sidecar."""
    return f"{SHARD_PATTERN.format(index)}.json"


def is_pipe(url: str) -> bool:
    return url.startswith(PIPE)


def is_local(url: str) -> bool:
    """A plain path or a ``file://`` URL (not a ``pipe:`` command, not another protocol)."""
    return url.startswith("file://") or ("://" not in url and not is_pipe(url))


def local_path(url: str) -> Path:
    """The path of a plain path or ``file://`` URL."""
    return Path(url[len("file://") :] if url.startswith("file://") else url)


def fsspec_module():
    """fsspec, or a one-line ``ValueError`` saying how to install it."""
    try:
        import fsspec
    except ImportError as e:
        raise ValueError("URLs other than local paths need fsspec: pip install fsspec") from e
    return fsspec


def _has_glob(s: str) -> bool:
    return any(c in s for c in GLOB_CHARS)


def _check_pipe(url: str, where: str, allow_pipe: bool) -> None:
    """The gate of every ``pipe:`` command (module docstring)."""
    if is_pipe(url) and not allow_pipe:
        raise PipeRefused(
            f"{where}: {url[:60]!r} would run a shell command; refused without --allow-pipe "
            "(data.allow_pipe=true in a training config)"
        )


def _list_local(spec: str, allow_pipe: bool) -> list[str]:
    path = local_path(spec)
    if path.is_dir():
        return sorted(str(p) for p in path.glob(SHARD_GLOB))
    if _has_glob(str(path)):
        return sorted(glob.glob(str(path)))
    if path.is_file() and not path.name.endswith(".tar"):  # a list, one shard per line
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a shard list (a list is UTF-8 text)") from None
        urls = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                _check_pipe(line, f"{path}:{n}", allow_pipe)
                urls.append(line if not is_local(line) else str(path.parent / line))
        return urls
    return [str(path)] if path.is_file() else []


def url_to_fs(url: str):
    """(filesystem, path) of an fsspec URL; a protocol whose package is missing (``s3fs``,
    ``gcsfs``, ...) is a one-line ``ValueError`` naming the URL."""
    try:
        return fsspec_module().core.url_to_fs(url)
    except ImportError as e:
        raise ValueError(f"{url}: {e}") from None


def _list_remote(spec: str) -> list[str]:
    fs, root = url_to_fs(spec)
    if _has_glob(root):
        paths = sorted(fs.glob(root))
    elif fs.isdir(root):
        paths = sorted(fs.glob(f"{root.rstrip('/')}/{SHARD_GLOB}"))
    else:
        paths = [root] if fs.isfile(root) else []
    return [fs.unstrip_protocol(p) for p in paths]


def list_shards(spec: str | Path, *, allow_pipe: bool = False) -> list[str]:
    """Shard URLs named by ``spec``.

    - ``pipe:CMD``: brace-expanded, never checked (e.g. ``pipe:aws s3 cp s3://b/s-{0..9}.tar -``);
      only with ``allow_pipe``, as a ``pipe:`` line of a list file (else ``PipeRefused``);
    - a brace pattern (path or URL): expanded in the given order, not checked;
    - a directory (path or URL): its ``shard-*.tar``, sorted;
    - a glob (path or URL): the matches, sorted;
    - a local file not ending in ``.tar``: one URL or path per line (relative to that file);
    - one tar (path or URL).

    Local paths stay plain paths; remote ones keep their protocol. Raises ``FileNotFoundError``
    when nothing matches.
    """
    spec = str(spec)
    _check_pipe(spec, "shard spec", allow_pipe)
    if is_pipe(spec) or "{" in spec:
        urls = list(braceexpand.braceexpand(spec))
    else:
        urls = _list_local(spec, allow_pipe) if is_local(spec) else _list_remote(spec)
    if not urls:
        raise FileNotFoundError(_nothing_found(spec))
    return urls


def _nothing_found(spec: str) -> str:
    if is_local(spec) and local_path(spec).is_dir():
        return f"no shards found for {spec!r}: the folder has no {SHARD_GLOB} files"
    if is_local(spec) and not _has_glob(spec) and not local_path(spec).exists():
        return f"no shards found for {spec!r}: no such file or folder"
    return f"no shards found for {spec!r}"


def _open_pipe(url: str, mode: str) -> IO[bytes]:
    """The output of the shell command of a ``pipe:CMD`` URL (its exit status is checked on
    close). The one place a shard spec runs a command."""
    from webdataset.gopen import gopen  # webdataset imports torch: only when a pipe is opened

    return gopen(url, mode)


def open_url(url: str, mode: str = "rb") -> IO[bytes]:
    """Open a local path, ``file://`` URL, ``pipe:`` command or fsspec URL as a binary stream."""
    if is_pipe(url):
        return _open_pipe(url, mode)
    if is_local(url):
        return open(local_path(url), mode)
    fs, path = url_to_fs(url)
    return fs.open(path, mode)


def missing_shards(urls: list[str]) -> list[str]:
    """The shards of ``urls`` (``list_shards``' output) that do not exist, in order: local paths
    checked one by one, URLs by listing each folder once (a brace range of 4,800 shards on S3
    is a few listing requests, not 4,800). ``pipe:`` commands are not checked."""
    missing, listed = [], {}
    for url in urls:
        if is_pipe(url):
            continue
        if is_local(url):
            if not local_path(url).is_file():
                missing.append(url)
            continue
        fs, path = url_to_fs(url)
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        key = fs.unstrip_protocol(folder)
        if key not in listed:
            try:
                listed[key] = {p.rstrip("/") for p in fs.ls(folder, detail=False)}
            except FileNotFoundError:
                listed[key] = set()
        if path.rstrip("/") not in listed[key]:
            missing.append(url)
    return missing
