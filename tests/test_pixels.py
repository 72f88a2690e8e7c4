"""Pixel ranges and the paper's loss unit (``trainer.pixels``): the mappings, the scale factor,
the models' output range, and a [0, 1] run reporting exactly twice what it computes."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from blendkit.format import Geometry
from trainer import pixels
from trainer.config import apply_overrides, load_config, paper, save_config, tiny
from trainer.data.device import prepare
from trainer.eval import load_run
from trainer.losses import video_loss
from trainer.metrics import identity_loss
from trainer.models import ModelConfig, build_model
from trainer.objective import compute_loss, identity_term, in_paper_unit, model_inputs
from trainer.pixels import SYMMETRIC, UNIT
from trainer.run_record import read_record
from trainer.train import train
from trainer.train_state import build

torch.set_num_threads(1)

T, S = 8, 32
GEOMETRY = Geometry(frames=T, fps=25.0, height=S, width=S, audio_rate=16000)


def clips(seed: int, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    v1, v2 = torch.rand(2, n, 3, T, S, S, generator=g)
    return v1, v2


def test_the_mappings_are_affine_exact_and_inverse():
    video = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert pixels.to_model(video, UNIT) is video  # nothing to do in the loader's range
    assert pixels.to_model(video, SYMMETRIC).tolist() == [-1.0, -0.5, 0.0, 1.0]
    assert pixels.to_display(torch.tensor([-1.0, -0.5, 0.0, 1.0]), SYMMETRIC).tolist() == [
        0.0,
        0.25,
        0.5,
        1.0,
    ]
    x = torch.rand(1000)
    assert torch.equal(pixels.to_display(pixels.to_model(x, SYMMETRIC), SYMMETRIC), x)
    # [0, 1] -> I3D's [-1, 1] is the encoder's old 2x - 1, bit for bit
    assert torch.equal(pixels.convert(x, UNIT, pixels.I3D_INPUT), x * 2 - 1)
    with pytest.raises(ValueError, match="unknown pixel range"):
        pixels.convert(x, UNIT, "[0,255]")


def test_loss_scale_turns_a_loss_into_the_papers_unit():
    assert pixels.loss_scale(UNIT) == 2.0 and pixels.loss_scale(SYMMETRIC) == 1.0
    assert pixels.PAPER == SYMMETRIC
    v1, v2 = clips(0)
    mix = 0.5 * v1 + 0.5 * v2
    in_unit = identity_loss(mix, v1, v2)
    in_paper = identity_loss(*(pixels.to_model(v, SYMMETRIC) for v in (mix, v1, v2)))
    assert_close(in_unit * pixels.loss_scale(UNIT), in_paper)  # l is 1-homogeneous
    assert_close(video_loss(v1, v2) * 2, video_loss(2 * v1 - 1, 2 * v2 - 1))
    terms = in_paper_unit({"loss": 0.25, "pil": 0.125, "control_acc": 0.5}, 2.0)
    assert terms == {"loss": 0.5, "pil": 0.25, "control_acc": 0.5}  # accuracy is no loss


def test_prepare_maps_videos_into_the_models_range_and_leaves_alpha():
    v1, v2 = clips(1)
    alpha = torch.full((2, 1, T, S, S), 0.25)
    batch = {"v1": v1, "v2": v2, "alpha": alpha}
    cpu = torch.device("cpu")
    unit = prepare(batch, cpu, pixel_pool=1, pixel_range=UNIT, channels_last=False)
    sym = prepare(batch, cpu, pixel_pool=1, pixel_range=SYMMETRIC, channels_last=False)
    assert torch.equal(unit["v1"], v1) and torch.equal(sym["v1"], v1 * 2 - 1)
    assert torch.equal(sym["alpha"], alpha)
    assert_close(sym["mix"], 2 * (0.25 * v1 + 0.75 * v2) - 1)  # eq. 3, then the range
    assert sym["mix"].min() < 0


def test_paper_builds_a_model_whose_outputs_lie_in_minus_one_one():
    cfg = paper()
    assert cfg.model.pixel_range == SYMMETRIC and tiny().model.pixel_range == UNIT
    small = dataclasses.replace(cfg.model, width=0.125, n_mels=16)
    unit = torch.rand(1, 3, T, S, S)
    for name in ("centrifuge", "c2"):
        torch.manual_seed(0)
        model = build_model(name, small).eval()
        same = build_model(name, dataclasses.replace(small, pixel_range=UNIT)).eval()
        same.load_state_dict(model.state_dict())
        with torch.no_grad():
            out, out_unit = model(unit * 2 - 1), same(unit)
        # the same network, its outputs mapped onto [-1, 1]
        assert_close(out.outputs, out_unit.outputs * 2 - 1, atol=1e-6, rtol=0)
        assert out.outputs.min() >= -1 and out.outputs.max() <= 1
        if out.layers is not None:  # eq. 2 holds on the returned tensors in either range
            composed = torch.einsum("bnmthw,bmcthw->bncthw", out.beta, out.layers)
            assert_close(composed, out.outputs, atol=1e-6, rtol=0)
        head = model.head
        bias = head.layers.bias if hasattr(head, "layers") else head.conv.bias
        for value, end in ((-40.0, -1.0), (40.0, 1.0)):  # saturated heads reach the ends
            with torch.no_grad():
                bias.fill_(value)
                outputs = model(unit * 2 - 1).outputs
            # (a convex combination of ones is 1 up to float rounding: softmax sums to 1 +- ulp)
            assert_close(outputs, torch.full_like(outputs, end), atol=1e-6, rtol=0)


@pytest.mark.parametrize("pixel_range", [UNIT, SYMMETRIC])
@pytest.mark.parametrize("name", ["centrifuge", "c2"])
def test_input_skip_with_no_correction_returns_the_input_in_either_range(name, pixel_range):
    cfg = ModelConfig(
        n_outputs=2, n_layers=2, width=0.125, input_skip=True, norm="group",
        pixel_range=pixel_range,
    )  # fmt: skip
    model = build_model(name, cfg).eval()
    head = model.head
    weight = head.layers.weight if hasattr(head, "layers") else head.conv.weight
    with torch.no_grad():
        weight.zero_()  # the correction is zero: every output (layer) is the input
        unit = torch.rand(1, 3, T, S, S) * 0.9 + 0.05  # inside the logit's clamp
        video = pixels.to_model(unit, pixel_range)
        out = model(video).outputs  # (1, 2, 3, T, S, S)
    assert_close(out, video.unsqueeze(1).expand_as(out), atol=2e-6, rtol=0)


def small_run(run: Path, pixel_range: str) -> dict:
    cfg = apply_overrides(
        tiny(),
        [
            f"run_dir={run}", "model.width=0.0625", "model.n_mels=16", "data.n_mels=16",
            "progress=false", "log_every=1", "device=cpu", "pixel_pool=1",
            "data.frame_stride=1", "optim.steps=2", f"model.pixel_range={pixel_range}",
        ],
    )  # fmt: skip
    return cfg


def batches(n: int) -> list[dict]:
    out = []
    for i in range(n):
        v1, v2 = clips(10 + i, n=2)
        out.append(
            {
                "mix": 0.5 * v1 + 0.5 * v2, "v1": v1, "v2": v2,
                "alpha": torch.full((2, 1, T, S, S), 0.5),
                "blend": ["transparent"] * 2, "key": ["0", "1"],
            }
        )  # fmt: skip
    return out


def test_a_unit_range_run_logs_exactly_twice_its_raw_loss(tmp_path):
    cfg = small_run(tmp_path / "unit", UNIT)
    data = batches(2)
    summary = train(cfg, data, data[:1], geometry=GEOMETRY)
    rows = [json.loads(x) for x in (tmp_path / "unit" / "metrics.jsonl").read_text().splitlines()]
    assert {r["loss_unit"] for r in rows} == {pixels.LOSS_UNIT}
    # step 1's loss, recomputed raw with the run's initial weights on its first batch
    state = build(cfg, torch.device("cpu"), channels_last=False)
    batch = prepare(data[0], torch.device("cpu"), pixel_pool=1, pixel_range=UNIT,
                    channels_last=False)  # fmt: skip
    raw, _ = compute_loss("c2", batch, state.model(*model_inputs("c2", batch)))
    assert rows[0]["loss"] == 2 * float(raw.detach())
    assert rows[0]["identity"] == 2 * float(identity_term(batch))
    assert summary["loss_unit"] == pixels.LOSS_UNIT
    assert summary["val"]["identity"] == 2 * float(identity_term(batch))
    val = json.loads((tmp_path / "unit" / "val.jsonl").read_text().splitlines()[-1])
    assert val["identity"] == summary["val"]["identity"] and val["loss_unit"] == pixels.LOSS_UNIT
    # the same clips in a [-1, 1] run: the identity as computed, the same number
    train(small_run(tmp_path / "sym", SYMMETRIC), data, data[:1], geometry=GEOMETRY)
    sym = json.loads((tmp_path / "sym" / "metrics.jsonl").read_text().splitlines()[0])
    assert sym["identity"] == pytest.approx(rows[0]["identity"], rel=1e-6)
    assert read_record(tmp_path / "sym").pixel_range == SYMMETRIC
    assert read_record(tmp_path / "unit").pixel_range == UNIT


def test_runs_from_before_ranges_load_as_unit_and_say_so(tmp_path, caplog):
    cfg = small_run(tmp_path / "old", UNIT)
    data = batches(1)
    train(apply_overrides(cfg, ["optim.steps=1"]), data, geometry=GEOMETRY)
    run = tmp_path / "old"
    # what a run made before this change holds: no range in its record or its config
    record = json.loads((run / "trained_on.json").read_text())
    del record["pixel_range"]
    (run / "trained_on.json").write_text(json.dumps(record))
    config = json.loads((run / "config.json").read_text())
    del config["model"]["pixel_range"]
    (run / "config.json").write_text(json.dumps(config))
    assert load_config(str(run / "config.json")).model.pixel_range == UNIT
    with caplog.at_level(logging.WARNING):
        assert read_record(run).range == UNIT
    lines = [r.getMessage() for r in caplog.records if "pixel range" in r.getMessage()]
    assert len(lines) == 1 and "read as [0,1]" in lines[0] and "\n" not in lines[0]
    # a record that disagrees with its config is refused in one line
    record["pixel_range"] = SYMMETRIC
    (run / "trained_on.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"trained_on.json says pixels in \[-1,1\]"):
        load_run(run)
    record["pixel_range"] = "[0,255]"
    (run / "trained_on.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="not a run record"):
        read_record(run)


def test_a_saved_config_keeps_its_range(tmp_path):
    save_config(paper(), tmp_path / "config.json")
    assert load_config(str(tmp_path / "config.json")).model.pixel_range == SYMMETRIC
    with pytest.raises(ValueError, match="model.pixel_range"):
        apply_overrides(tiny(), ["model.pixel_range=[0,255]"])
