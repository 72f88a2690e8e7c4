"""``blendkit-eval baseline``: the identity baseline of hand-computable shards, exactly.

V1 is a black clip and V2 a white one (H.264 at CRF 0, lossless: Y = 16 and 235 decode as they
were), so in the paper's [-1, 1] V1 = -1 and V2 = 1 everywhere.

* Transparent (alpha = 1/2): V = 0, so l(V1, V) = l(V2, V) = 1/2 (no gradient anywhere): 1.
* Occlusion (alpha = 1 on an h x w box of every frame, away from the borders): V = V1 in the box
  and V2 outside, so V - V1 = 2 outside and V - V2 = -2 inside; the mean absolute differences
  add to 2, and each has a step of 2 on the box's 2h vertical and 2w horizontal edges per frame:
  identity = 1/2 (2 + 2 (4h / (H (W - 1)) + 4w / ((H - 1) W))).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from typer.testing import CliRunner

from bench.baseline import section
from blendkit.codec import encode_alpha, encode_audio, encode_video
from trainer.eval.baseline import PAPER_IDENTITY, identity_baseline, markdown
from trainer.eval_cli import app

T, H, W, FPS, RATE = 8, 32, 32, 25.0, 16000
BOX = (8, 20, 4, 20)  # rows 8-19, columns 4-19: h = 12, w = 16
TRANSPARENT_IDENTITY = 1.0
h, w = BOX[1] - BOX[0], BOX[3] - BOX[2]
OCCLUSION_IDENTITY = 0.5 * (2 + 2 * (4 * h / (H * (W - 1)) + 4 * w / ((H - 1) * W)))


def constant(value: int) -> bytes:
    return encode_video(np.full((T, H, W, 3), value, np.uint8), FPS, 0, "ultrafast")


def write_shards(root: Path, n_transparent: int, n_occlusion: int) -> Path:
    """One shard of transparent samples, then one of occlusion samples."""
    root.mkdir(parents=True)
    black, white = constant(0), constant(255)
    n_audio = round(T / FPS * RATE)
    index = 0
    for s, (blend, n) in enumerate((("transparent", n_transparent), ("occlusion", n_occlusion))):
        with wds.TarWriter(str(root / f"shard-{s:06d}.tar")) as sink:
            for _ in range(n):
                alpha = np.full((T, H, W), 0.5, np.float32)
                if blend == "occlusion":
                    alpha[:] = 0.0
                    alpha[:, BOX[0] : BOX[1], BOX[2] : BOX[3]] = 1.0
                meta = {"key": f"{index:09d}", "index": index, "blend": blend, "fps": FPS}
                meta |= {"frames": T, "height": H, "width": W, "audio_rate": RATE}
                meta |= {"audio_samples": n_audio}
                sink.write(
                    {
                        "__key__": f"{index:09d}",
                        "json": json.dumps(meta).encode(),
                        "mix.mp4": black,  # not read: the loader forms eq. 3 from the layers
                        "v1.mp4": black,
                        "v2.mp4": white,
                        "alpha.npz": encode_alpha(alpha),
                        "a1.flac": encode_audio(np.zeros(n_audio, np.float32), RATE, "flac"),
                    }
                )
                index += 1
    return root


def test_identity_of_black_and_white_blends_is_computed_by_hand(tmp_path):
    shards = write_shards(tmp_path / "s", n_transparent=3, n_occlusion=2)
    result = identity_baseline(str(shards), batch_size=2, progress=False)
    assert result.samples == {"transparent": 3, "occlusion": 2, "both": 5}
    assert result.identity["transparent"] == pytest.approx(TRANSPARENT_IDENTITY, abs=1e-6)
    assert result.identity["occlusion"] == pytest.approx(OCCLUSION_IDENTITY, abs=1e-6)
    both = (3 * TRANSPARENT_IDENTITY + 2 * OCCLUSION_IDENTITY) / 5
    assert result.identity["both"] == pytest.approx(both, abs=1e-6)
    assert result.paper == PAPER_IDENTITY == {"transparent": 0.364, "occlusion": 0.362}
    table = markdown(result)
    assert "paper's unit, pixels in [-1, 1]" in table.splitlines()[0]
    assert "| transparent | 3 | 1.000 | 0.364 |" in table
    assert f"| occlusion | 2 | {OCCLUSION_IDENTITY:.3f} | 0.362 |" in table
    first = identity_baseline(str(shards), max_samples=2, progress=False)
    assert first.samples == {"transparent": 2, "both": 2}


def test_the_command_prints_json_and_refuses_bad_input_in_one_line(tmp_path):
    shards = write_shards(tmp_path / "s", n_transparent=1, n_occlusion=1)
    result = CliRunner().invoke(app, ["baseline", str(shards), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["samples"] == {"transparent": 1, "occlusion": 1, "both": 2}
    assert summary["loss_unit"] == "paper: pixels in [-1, 1]"
    assert summary["identity"]["transparent"] == pytest.approx(1.0, abs=1e-6)
    text = CliRunner().invoke(app, ["baseline", str(shards)])
    assert text.exit_code == 0 and "| both | 2 |" in text.output
    for args in (
        ["baseline", str(tmp_path / "none")],
        ["baseline", str(shards), "--pixel-pool", "0"],
    ):
        bad = CliRunner().invoke(app, args)
        assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1, bad.output


def test_the_bench_section_scores_every_shard_the_make_shards_runs_wrote(tmp_path):
    write_shards(tmp_path / "run-a", n_transparent=2, n_occlusion=0)
    write_shards(tmp_path / "run-b", n_transparent=1, n_occlusion=1)
    lines = section(tmp_path)
    assert lines[0] == "## Identity baseline of the proxy shards"
    text = "\n".join(lines)
    assert "| transparent | 3 | 1.000 | 0.364 |" in text and "| both | 4 |" in text
