"""Resuming on another device: RNG states stay on the CPU whatever ``map_location`` says."""

from __future__ import annotations

import numpy as np
import torch

from trainer import checkpoint as ckpt


def test_rng_state_restores_after_a_non_cpu_map_location(tmp_path):
    # "meta" stands for a CUDA resume: like cuda, it is not the CPU, and .numpy() fails there.
    np.random.seed(3)
    torch.manual_seed(3)
    weights = torch.arange(6.0).view(2, 3)
    payload = {"model": {"w": weights}, "rng": [ckpt.rng_state()], "step": 5}
    path = ckpt.save(ckpt.checkpoint_path(tmp_path, 5), payload)
    expected = (np.random.rand(4), torch.rand(4))
    np.random.seed(0)
    torch.manual_seed(0)

    state = ckpt.load(path, map_location="meta")
    assert state["model"]["w"].device.type == "meta" and state["step"] == 5
    assert state["rng"][0]["torch"].device.type == "cpu"
    ckpt.set_rng_state(state["rng"][0])
    torch.testing.assert_close((np.random.rand(4), torch.rand(4)), expected, rtol=0, atol=0)

    on_cpu = ckpt.load(path)
    torch.testing.assert_close(on_cpu["model"]["w"], weights, rtol=0, atol=0)
