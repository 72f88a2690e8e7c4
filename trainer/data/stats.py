"""Counters of what the stream read and skipped, shared by the loader's worker processes.

One error policy for every stage: a corrupt shard or sample is skipped, counted here under a
fixed reason, and logged as a warning naming the shard/key and the cause. Nothing is zero-filled.
The counters live in shared memory so the main process (the trainer) sees the sum over workers.
"""

from __future__ import annotations

import logging
import multiprocessing

logger = logging.getLogger("trainer.data")

#: Problems: each one is logged as a warning.
ERRORS = ("shard_error", "format_error", "missing_member", "decode_error", "remix_unpaired",
          "geometry_mismatch", "over_cap")  # fmt: skip
#: Intended drops and progress: counted, not warned about.
COUNTS = ("shards_opened", "samples_read", "samples_decoded", "samples_cached", "filtered_blend",
          "filtered_no_audio", "thinned_occlusion")  # fmt: skip
NAMES = COUNTS + ERRORS


class StreamError(RuntimeError):
    """The data stream cannot go on: it ended, or every shard or sample for a long while failed;
    the message says what happened (the warnings before it say why)."""


class LoaderStats:
    """Process-shared counters; ``snapshot()`` gives a plain dict for the trainer's logs."""

    def __init__(self) -> None:
        self._values = multiprocessing.Array("q", len(NAMES), lock=True)

    def add(self, name: str, n: int = 1) -> None:
        i = NAMES.index(name)
        with self._values.get_lock():
            self._values[i] += n

    def skip(self, reason: str, where: str, detail: str) -> None:
        """Count a skipped shard or sample under ``reason`` and warn with where and why."""
        if reason not in ERRORS:
            raise ValueError(f"unknown skip reason {reason!r}; expected one of {ERRORS}")
        self.add(reason)
        logger.warning("skipped %s (%s): %s", where, reason, detail)

    def snapshot(self) -> dict[str, int]:
        with self._values.get_lock():
            values = list(self._values)
        return dict(zip(NAMES, values, strict=True))

    @property
    def skipped(self) -> int:
        """Total shards and samples skipped for a problem (filters not included)."""
        snap = self.snapshot()
        return sum(snap[name] for name in ERRORS)
