"""Small constant tensors made once per device, so that a training step copies nothing to it.

``torch.tensor(data, device=cuda)`` or ``constant.to(cuda)`` in a step is a host-to-device copy
from pageable memory each time, which waits for the copy. ``device_constant`` makes the tensor
on the device the first time and hands out the same tensor afterwards. Callers must not modify
it. Fake tensors (``FakeTensorMode``) are never cached: they belong to one mode and would poison
a later real run; under ``torch.compile`` the tensor is made in the traced graph.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

T = TypeVar("T")
_CACHE: dict[tuple[Hashable, torch.device], object] = {}


def device_constant(key: Hashable, like: Tensor, make: Callable[[torch.device], T]) -> T:
    """``make(like.device)``, made once per ``key`` and device and reused from then on."""
    if torch.compiler.is_compiling() or is_fake(like):  # traced: a constant of the graph
        return make(like.device)
    slot = (key, like.device)
    if slot not in _CACHE:
        _CACHE[slot] = make(like.device)
    return _CACHE[slot]  # type: ignore[return-value]
