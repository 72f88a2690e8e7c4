"""Stage: read tar shards into raw samples (dicts of member bytes grouped by key).

A thin stage with counts around ``blendkit.format.reader.read_shard``, the one shard reader: it
streams each shard, one member at a time. A shard that cannot be opened or ends early (truncated,
garbage) is counted once as ``shard_error``; the samples completed before the fault are kept
(each is checked whole by the decode stage) and the one in flight is dropped. A malformed member
(a name that is not a plain ``KEY.NAME``) or sample (a member twice) is counted as
``format_error`` and skipped; the rest of its shard is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial

from blendkit.format.members import FormatError
from blendkit.format.reader import RawSample, ShardError, read_shard
from trainer.data.stats import LoaderStats, StreamError

__all__ = ["RawSample", "tarfile_to_samples"]


def _malformed(stats: LoaderStats, url: str, error: FormatError) -> None:
    stats.skip("format_error", url, str(error))


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
            for sample in read_shard(url, on_error=partial(_malformed, stats, url)):
                n += 1
                stats.add("samples_read")
                yield sample
        except ShardError as exc:
            stats.skip("shard_error", url, str(exc))
        empty_in_a_row = 0 if n else empty_in_a_row + 1
        if max_empty_in_a_row is not None and empty_in_a_row >= max_empty_in_a_row:
            raise StreamError(
                f"the last {empty_in_a_row} shards read gave no sample; see the warnings above"
            )
