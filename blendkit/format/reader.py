"""The one shard reader: a tar shard as a stream of raw samples.

A shard is read as a stream (``tarfile`` mode ``r|``), one member at a time, so it works on any
URL ``layout.open_url`` opens and never holds more than one sample. Consecutive members with the
same key form a sample: a dict of member name -> bytes, plus ``__key__`` and ``__url__``.

Errors. A member whose name breaks the name rule (``members.split_member``), a member that is
not a regular file, and a sample holding a member twice are ``FormatError``s: with ``on_error``
each is reported to it and skipped (the member, or the whole sample) and reading goes on; without,
it is raised. A shard that cannot be opened or whose tar stream breaks (truncated, garbage) raises
``ShardError`` after yielding the samples completed before the fault; the one in flight is dropped.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Collection, Iterator
from typing import Any

from blendkit.format.layout import open_url
from blendkit.format.members import FormatError, split_member

RawSample = dict[str, Any]  # "__key__", "__url__", then one bytes value per member name
OnError = Callable[[FormatError], None]


class ShardError(FormatError):
    """A shard that cannot be opened or read to its end."""


def _raise(error: FormatError) -> None:
    raise error


def read_shard(
    url: str, *, on_error: OnError | None = None, keep: Collection[str] | None = None
) -> Iterator[RawSample]:
    """The samples of the shard at ``url``, in tar order.

    ``on_error`` receives each malformed member or sample (see the module docstring); ``keep``,
    when given, names the only members whose bytes are read (the others are skipped unread).
    Raises ``ShardError`` when the shard cannot be opened or read to its end.
    """
    n = 0
    try:
        with open_url(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for sample in _samples(tar, url, on_error or _raise, keep):
                n += 1
                yield sample
    except FormatError:
        raise
    except (OSError, EOFError, ValueError, tarfile.TarError) as exc:
        raise ShardError(
            f"{url}: unreadable shard ({type(exc).__name__}: {exc}; after {n} samples)"
        ) from None


def _samples(tar: tarfile.TarFile, url: str, on_error: OnError, keep) -> Iterator[RawSample]:
    current: RawSample | None = None
    seen: set[str] = set()  # member names of the current sample
    broken = False  # the current sample holds a member twice: it is dropped whole
    for info in tar:
        tar.members = []  # streaming: do not keep every header in memory
        try:
            key, name = _checked(info, url)
        except FormatError as e:
            on_error(e)
            continue
        if current is not None and current["__key__"] != key:
            if not broken:
                yield current
            current, seen, broken = None, set(), False
        if current is None:
            current = {"__key__": key, "__url__": url}
        if name in seen and not broken:
            broken = True
            on_error(FormatError(f"{url}:{key}: member {name!r} appears twice"))
        seen.add(name)
        if not broken and (keep is None or name in keep):
            current[name] = tar.extractfile(info).read()
    if current is not None and not broken:
        yield current


def _checked(info: tarfile.TarInfo, url: str) -> tuple[str, str]:
    """(key, member name) of a tar member that is a regular file with a well-formed name."""
    try:
        key, name = split_member(info.name)
    except FormatError as e:
        raise FormatError(f"{url}: {e}") from None
    if not info.isreg():
        raise FormatError(f"{url}: member {info.name!r} is not a regular file")
    return key, name
