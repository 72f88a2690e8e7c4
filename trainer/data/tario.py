"""Stage: read tar shards into raw samples (dicts of member bytes grouped by key).

Shards are read as streams (``tarfile`` mode ``r|``), one member at a time. A shard that cannot
be opened or ends early (truncated, garbage) is counted once as ``shard_error``; the samples
completed before the fault are kept (each is checked whole by the decode stage) and the one in
flight is dropped.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator

from blendkit.storage import open_url
from trainer.data.stats import LoaderStats

RawSample = dict[str, object]  # "__key__", "__url__", then one bytes value per extension


def split_name(name: str) -> tuple[str, str]:
    """``dir/000000012.mix.mp4`` -> (``dir/000000012``, ``mix.mp4``): the key ends at the first
    dot of the base name, as in the WebDataset convention."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        raise ValueError(f"member {name!r} has no KEY.EXT name")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def _samples_in(tar: tarfile.TarFile, url: str) -> Iterator[RawSample]:
    current: RawSample | None = None
    for info in tar:
        if not info.isreg():
            continue
        key, ext = split_name(info.name)
        fileobj = tar.extractfile(info)
        if fileobj is None:
            raise ValueError(f"member {info.name!r} cannot be read")
        data = fileobj.read()
        if current is not None and current["__key__"] != key:
            yield current
            current = None
        if current is None:
            current = {"__key__": key, "__url__": url}
        if ext in current:
            raise ValueError(f"duplicate member {info.name!r}")
        current[ext] = data
        tar.members = []  # streaming: do not keep every header in memory
    if current is not None:
        yield current


def tarfile_to_samples(
    urls: Iterable[str], *, stats: LoaderStats, max_empty_in_a_row: int | None = None
) -> Iterator[RawSample]:
    """Raw samples of each shard in turn.

    ``max_empty_in_a_row`` guards endless (resampled) streams: after that many shards in a row
    gave no sample, raise instead of spinning forever over a broken shard set.
    """
    empty_in_a_row = 0
    for url in urls:
        n = 0
        stats.add("shards_opened")
        try:
            with open_url(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
                for sample in _samples_in(tar, url):
                    n += 1
                    stats.add("samples_read")
                    yield sample
        except (OSError, EOFError, ValueError, tarfile.TarError) as exc:
            stats.skip("shard_error", url, f"{type(exc).__name__}: {exc} (after {n} samples)")
        empty_in_a_row = 0 if n else empty_in_a_row + 1
        if max_empty_in_a_row is not None and empty_in_a_row >= max_empty_in_a_row:
            raise RuntimeError(
                f"the last {empty_in_a_row} shards read gave no sample; see the warnings above"
            )
