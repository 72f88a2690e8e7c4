"""Engines run independent tasks: in this process, in a local process pool, or on a Ray cluster.

An engine has one method, ``map(fn, tasks, init, init_args)``: it calls ``init(*init_args)`` once in
every worker process (the shared, read-only state of a run), then ``fn(task)`` for every task, and
yields the results in completion order. ``make_shards`` hands it one task per unfinished shard; a
shard depends only on (inputs, config, seed, shard index), so every engine writes the same bytes.

- :class:`LocalEngine` ``(workers)``: in-process for 1 worker, else a ``multiprocessing`` pool
  (fork on Linux, so workers inherit the imports).
- :class:`RayEngine` ``(address)``: one Ray task per item, ``max_retries`` retries on a lost worker
  *and* on an exception (a transient failure such as an upload error; a deterministic error is
  retried too, then raised). The shared state goes to the object store once (``ray.put``) and each
  worker process runs ``init`` once per run. Shards are renamed into place atomically by the task
  itself, so a lost worker loses no finished shard and a retry rewrites only its own shard.

Ray is optional: it is imported only when a :class:`RayEngine` is made.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
RAY_MISSING = "the ray engine needs ray: pip install '.[ray]'"


class EngineError(ValueError):
    """An engine cannot be used (unknown name, missing optional dependency)."""


class Engine(Protocol):
    def map(
        self,
        fn: Callable[[Any], Any],
        tasks: Sequence[Any],
        init: Callable[..., None] | None = None,
        init_args: tuple = (),
    ) -> Iterator[Any]:
        """``fn(task)`` per task after ``init(*init_args)`` in each worker; completion order."""
        ...


def _mp_context():
    """fork on Linux (workers inherit the imports: webdataset pulls in torch, seconds per process);
    spawn elsewhere. Workers share nothing mutable with the parent: either gives the same bytes."""
    return mp.get_context("fork" if sys.platform == "linux" else "spawn")


class LocalEngine:
    """This machine: in-process for ``workers <= 1``, else a pool of ``workers`` processes."""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def map(self, fn, tasks, init=None, init_args=()) -> Iterator:
        if self.workers <= 1:
            if init is not None:
                init(*init_args)
            yield from map(fn, tasks)
            return
        with _mp_context().Pool(self.workers, initializer=init, initargs=init_args) as pool:
            yield from pool.imap_unordered(fn, tasks, chunksize=1)


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise EngineError(RAY_MISSING) from e
    return ray


_LOADED: dict[str, str] = {}  # in a Ray worker: the object id of the state ``init`` last ran with


def _ray_task(fn, state_box: list, task):
    """Body of every Ray task. ``state_box`` holds the ObjectRef of ``(init, init_args)`` inside a
    list, so Ray does not fetch it per task: each worker fetches it and runs ``init`` once a run."""
    ref = state_box[0]
    if ref is not None and _LOADED.get("state") != ref.hex():
        import ray

        init, init_args = ray.get(ref)
        init(*init_args)
        _LOADED["state"] = ref.hex()
    return fn(task)


class RayEngine:
    """One Ray task per item on the cluster at ``address``.

    ``address``: ``None`` starts a private local Ray instance (no dashboard) unless ``RAY_ADDRESS``
    is set; ``"auto"`` joins the cluster of ``ray start`` on this node; ``"ray://head:10001"`` uses
    Ray Client. If this engine started Ray, it stops it when the map ends. Every node needs blendkit
    installed, and a local ``--out`` must be a filesystem all nodes share (else use a URL).
    """

    def __init__(
        self, address: str | None = None, num_cpus_per_task: float = 1, max_retries: int = 3
    ):
        self.ray = _import_ray()
        self.address = address
        self.num_cpus_per_task = num_cpus_per_task
        self.max_retries = max_retries

    def _connect(self) -> bool:
        """Initialise Ray if needed; True if this call started it."""
        ray = self.ray
        if ray.is_initialized():
            return False
        if self.address is None and "RAY_ADDRESS" not in os.environ:
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=self.address, logging_level=logging.WARNING)
        return True

    def map(self, fn, tasks, init=None, init_args=()) -> Iterator:
        ray = self.ray
        started = self._connect()
        pending: list = []
        try:
            state = ray.put((init, init_args)) if init is not None else None
            remote = ray.remote(_ray_task).options(
                num_cpus=self.num_cpus_per_task,
                max_retries=self.max_retries,
                retry_exceptions=True,
            )
            pending = [remote.remote(fn, [state], task) for task in tasks]
            while pending:
                done, pending = ray.wait(pending, num_returns=min(16, len(pending)), timeout=0.5)
                for ref in done:
                    yield ray.get(ref)
        finally:
            for ref in pending:  # an error or an interrupt: stop what has not finished
                ray.cancel(ref)
            if started:
                ray.shutdown()


def make_engine(name: str, workers: int = 1, address: str | None = None) -> LocalEngine | RayEngine:
    """The engine called ``name`` (``local`` or ``ray``)."""
    if name == "local":
        return LocalEngine(workers)
    if name == "ray":
        return RayEngine(address)
    raise EngineError(f"engine: {name!r} is not one of {', '.join(ENGINES)}")
