"""Memory accounting on any device, the CPU and fake CUDA included.

* ``SavedTensors``: the bytes autograd saves for the backward pass inside a ``with`` block
  (``torch.autograd.graph.saved_tensors_hooks``), each storage counted once however many views
  of it are saved, parameters and autocast's copies of them (``weight_copies``) apart; broken
  down by dtype and, given a model, by the module that was running.
* ``LivePeak``: a ``TorchDispatchMode`` that follows every storage made inside the block until it
  is freed and records the peak of their sum: the extra memory the block needs beyond what
  existed before it (live tensors only, no allocator rounding or cache).
* ``fake_cuda_autocast``: fake CUDA tensors (``FakeTensorMode``: shapes, dtypes and strides, no
  data, no GPU) under bf16 autocast with CUDA's casting rules, so that a paper-size forward pass
  costs a second on a CPU. ``torch.autocast("cuda")`` turns itself off without a GPU, hence the
  lower-level switches. CPU autocast is no stand-in: it keeps softmax in bf16 and runs max
  pooling in float32. Fake CUDA tensors cannot run a backward pass (the autograd engine asks
  the CUDA driver for a context), so measure what a forward pass saves with them, and a peak over
  forward and backward on real or meta tensors (``meta_device``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class SavedTensors:
    """Bytes saved for backward inside the block, each storage once; parameters excluded.

    ``add(tensor)`` counts a tensor kept some other way (e.g. the input of a checkpointed
    block, which ``torch.utils.checkpoint`` keeps for the recomputation without saving it).
    """

    def __init__(self, model: nn.Module | None = None, exclude: Iterable[Tensor] = ()) -> None:
        self.total = 0
        self.weight_copies = 0  # autocast's casts of parameters: once per batch, not in total
        self.by_dtype: collections.Counter[str] = collections.Counter()
        self.by_module: collections.Counter[str] = collections.Counter()
        self._seen: dict[int, StorageWeakRef] = {}
        self._model = model
        self._stack = ["-"]
        params = list(model.parameters()) if model is not None else []
        self._params = {id(p) for p in params}
        for t in [*params, *exclude]:
            self._seen[t.untyped_storage()._cdata] = StorageWeakRef(t.untyped_storage())
        self._exits: contextlib.ExitStack | None = None

    def add(self, t: Tensor) -> Tensor:
        """Count ``t``'s storage if it is not counted yet; returns ``t`` (a pack hook)."""
        storage = t.untyped_storage()
        key = storage._cdata
        known = self._seen.get(key)
        if known is not None and not known.expired():
            return t
        self._seen[key] = StorageWeakRef(storage)
        if _is_weight_copy(t, self._params):
            self.weight_copies += storage.nbytes()
            return t
        self.total += storage.nbytes()
        self.by_dtype[str(t.dtype).removeprefix("torch.")] += storage.nbytes()
        self.by_module[self._stack[-1]] += storage.nbytes()
        return t

    def __enter__(self) -> SavedTensors:
        self._exits = contextlib.ExitStack()
        self._exits.enter_context(torch.autograd.graph.saved_tensors_hooks(self.add, _unpack))
        if self._model is not None:
            names = {m: name or "<model>" for name, m in self._model.named_modules()}

            def enter(module: nn.Module, args: Any) -> None:
                self._stack.append(names.get(module, self._stack[-1]))

            def leave(module: nn.Module, args: Any, out: Any) -> None:
                self._stack.pop()

            hooks = nn.modules.module
            self._exits.callback(hooks.register_module_forward_pre_hook(enter).remove)
            self._exits.callback(hooks.register_module_forward_hook(leave).remove)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._exits is not None
        self._exits.close()

    def module_totals(self, depth: int) -> dict[str, int]:
        """``by_module`` summed over module names cut to their first ``depth`` parts."""
        out: collections.Counter[str] = collections.Counter()
        for name, nbytes in self.by_module.items():
            out[".".join(name.split(".")[:depth])] += nbytes
        return dict(out.most_common())


def _unpack(t: Tensor) -> Tensor:
    return t


_VIEWS = frozenset(
    {"TBackward0", "ViewBackward0", "PermuteBackward0", "TransposeBackward0", "ExpandBackward0"}
    | {"UnsqueezeBackward0", "SqueezeBackward0", "ReshapeAliasBackward0"}
)


def _is_weight_copy(t: Tensor, params: set[int]) -> bool:
    """Whether ``t`` is a dtype cast of a parameter (ids ``params``), or a view of one:
    autocast's bf16 copy of a weight, as convolutions and matrix products save it."""
    node, cast = t.grad_fn, False
    while node is not None:
        name = node.name()
        if name == "torch::autograd::AccumulateGrad":
            return cast and id(node.variable) in params
        if name == "ToCopyBackward0":
            cast = True
        elif name not in _VIEWS:
            return False
        inputs = [nxt for nxt, _ in node.next_functions if nxt is not None]
        node = inputs[0] if len(inputs) == 1 else None
    return False


class LivePeak(TorchDispatchMode):
    """Peak bytes of the storages made inside the block and still alive, and ``live`` at exit."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._known: dict[int, StorageWeakRef] = {}
        self._refs: list[weakref.ref] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, Tensor):
                self._note(t.untyped_storage(), new=False)  # in-place on an older tensor
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor):
                self._note(t.untyped_storage(), new=True)
        return out

    def _note(self, storage: torch.UntypedStorage, new: bool) -> None:
        key = storage._cdata
        known = self._known.get(key)
        if known is not None and not known.expired():
            return
        self._known[key] = StorageWeakRef(storage)
        if not new:
            return
        nbytes = storage.nbytes()
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        self._refs.append(weakref.ref(storage, lambda _: self._free(nbytes)))

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes


@functools.cache
def _start_autograd_engine() -> None:
    """Run one tiny CPU backward pass, once, before any fake tensor exists.

    The autograd engine starts its device threads at its first backward pass. After fake
    tensors have existed it would count a CUDA device on a machine without one and start a
    thread for it, after which a forked child process cannot use autograd (the DDP tests fork).
    """
    x = torch.zeros(1, requires_grad=True)
    x.sum().backward()


@contextlib.contextmanager
def meta_device() -> Iterator[None]:
    """Tensors created on the meta device by default (shapes only; backward passes run)."""
    _start_autograd_engine()
    with torch.device("meta"):
        yield


@contextlib.contextmanager
def fake_cuda_autocast(dtype: torch.dtype = torch.bfloat16) -> Iterator[FakeTensorMode]:
    """Fake CUDA tensors, created on "cuda" by default, under CUDA autocast to ``dtype``."""
    _start_autograd_engine()
    enabled, previous = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    with FakeTensorMode() as mode, torch.device("cuda"):
        torch.set_autocast_enabled("cuda", True)
        torch.set_autocast_dtype("cuda", dtype)
        torch.autocast_increment_nesting()
        try:
            yield mode
        finally:
            if torch.autocast_decrement_nesting() == 0:
                torch.clear_autocast_cache()
            torch.set_autocast_enabled("cuda", enabled)
            torch.set_autocast_dtype("cuda", previous)
