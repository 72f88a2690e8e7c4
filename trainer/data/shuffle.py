"""Stage: shuffle a stream through a fixed-size buffer (raw samples: bytes, not decoded video)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def shuffle(items: Iterable[T], *, bufsize: int, rng: random.Random) -> Iterator[T]:
    """Fill a buffer of ``bufsize`` items, then emit a random one for each new arrival; drain the
    rest in random order at the end. Each item is emitted exactly once."""
    buf: list[T] = []
    for item in items:
        if len(buf) < bufsize:
            buf.append(item)
            continue
        i = rng.randrange(bufsize)
        yield buf[i]
        buf[i] = item
    rng.shuffle(buf)
    yield from buf
