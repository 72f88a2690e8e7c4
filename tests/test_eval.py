"""Evaluation: report files and keys, identity baseline, control rule, decompose, Table 3 rules.

Tiny everything: models at width 0.125 with n = m = 2, 8-frame 32x32 clips in two shards of two
samples (one transparent, one occlusion each), a 20-frame 50x40 video to decompose.
"""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import av
import fsspec
import numpy as np
import pytest
import torch
import webdataset as wds

from blendkit.codec import (
    decode_video,
    decode_video_yuv,
    encode_alpha,
    encode_audio,
    encode_video,
)
from tests.media import make_not_video, make_video
from trainer import checkpoint as ckpt
from trainer.colour import yuv_to_rgb
from trainer.config import apply_overrides, save_config, tiny
from trainer.eval import decompose, evaluate, load_run, train_tiny_classifier
from trainer.eval.audio_shift import roll_audio, shift_frames
from trainer.eval.downstream import (
    blended_transparent_score,
    decomposed_transparent_score,
    occlusion_score,
    pair_score,
)
from trainer.eval.report_page import markdown_table
from trainer.losses import video_loss
from trainer.metrics import chosen_output, control_correct
from trainer.models import build_model
from trainer.pixels import LOSS_UNIT
from trainer.run_record import for_training, read_record, write_record

T, S, FPS, RATE = 8, 32, 25.0, 16000
N_AUDIO = round(T / FPS * RATE)  # 5120
LABELS = ("red", "blue")


def clip(seed: int, frames: int = T) -> np.ndarray:
    """A (frames, S, S, 3) uint8 clip: blocky noise tinted by its class (seed % 2)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 120, (frames, S // 8, S // 8, 3)).repeat(8, axis=1).repeat(8, axis=2)
    base[..., 0 if seed % 2 == 0 else 2] += 130
    return base.astype(np.uint8)


def as_the_loader_decodes(data: bytes) -> np.ndarray:
    """mp4 bytes -> (T, H, W, 3) float32 RGB on 0-255, converted as the trainer does (YUV planes
    to RGB on the device, within one level of swscale's conversion)."""
    rgb = yuv_to_rgb(torch.from_numpy(decode_video_yuv(data)).unsqueeze(0))[0]  # (3, T, H, W)
    return (rgb * 255).permute(1, 2, 3, 0).numpy()


def sample(index: int, frames: int = T) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    """Sample ``index`` (V1 = clip(2i), V2 = clip(2i+1)) and its decoded float videos."""
    v1_bytes, v2_bytes = (
        encode_video(clip(2 * index + k, frames), FPS, 10, "ultrafast") for k in (0, 1)
    )
    v1, v2 = (as_the_loader_decodes(b) for b in (v1_bytes, v2_bytes))
    blend = "transparent" if index % 2 == 0 else "occlusion"
    alpha = np.full((frames, S, S), 0.5, np.float32)
    if blend == "occlusion":
        alpha[:] = 0.0
        alpha[:, 8:20, 4:16] = 1.0
    mix_u8 = np.round(alpha[..., None] * v1 + (1 - alpha[..., None]) * v2).astype(np.uint8)
    mix_bytes = encode_video(mix_u8, FPS, 0, "ultrafast")
    n_audio = round(frames / FPS * RATE)
    tone = (0.3 * np.sin(np.arange(n_audio) * 0.02 * (index + 1))).astype(np.float32)
    meta = {"key": f"{index:09d}", "index": index, "blend": blend, "fps": FPS, "frames": frames}
    meta |= {"height": S, "width": S, "audio_rate": RATE, "audio_samples": n_audio}
    meta |= {"v1": {"label": LABELS[0]}, "v2": {"label": LABELS[1]}}
    members = {
        "__key__": f"{index:09d}",
        "json": json.dumps(meta).encode(),
        "mix.mp4": mix_bytes,
        "v1.mp4": v1_bytes,
        "v2.mp4": v2_bytes,
        "alpha.npz": encode_alpha(alpha),
        "a1.flac": encode_audio(tone, RATE, codec="flac"),
    }
    # the loader feeds equation 3 on the decoded layers (DataConfig.stored_mix=False)
    mix = alpha[..., None] * v1 + (1 - alpha[..., None]) * v2
    decoded = {"mix": mix, "v1": v1, "v2": v2, "blend": blend}
    return members, decoded


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) [0, 255] -> (1, 3, T, H, W) float [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2))).float()[None] / 255


def write_shards(root: Path, n_shards: int = 2, frames: int = T) -> list[dict]:
    """``n_shards`` shards of two samples (transparent, occlusion); the decoded samples."""
    root.mkdir(parents=True, exist_ok=True)
    decoded = []
    for s in range(n_shards):
        with wds.TarWriter(str(root / f"shard-{s:06d}.tar")) as sink:
            for i in (2 * s, 2 * s + 1):
                members, dec = sample(i, frames)
                sink.write(members)
                decoded.append(dec)
    return decoded


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("shards")
    return root, write_shards(root)


def make_run(
    root: Path, shards: Path, kind: str, *extra: str, stride: int = 1, name: str = ""
) -> Path:
    """A run directory as the trainer writes it: config.json and one checkpoint."""
    run = root / (name or kind)
    run.mkdir()
    n = "model.n_outputs=2"
    cfg = apply_overrides(
        tiny(),
        [
            f"model_name={kind}",
            n,
            "model.n_layers=2",
            f"data.shards={shards}",
            "pixel_pool=1",
            f"data.frame_stride={stride}",  # 1: the tests' clips are already tiny
            *extra,
        ],  # fmt: skip
    )
    torch.manual_seed(0)
    model = build_model(kind, cfg.model)
    save_config(cfg, run / "config.json")
    write_record(run, for_training(cfg, injected=False))  # what the trainer writes
    ckpt.save(ckpt.checkpoint_path(run, 3), {"step": 3, "model": model.state_dict()})
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shards) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {kind: make_run(root, shards[0], kind) for kind in ("c2", "c3_internal")}


def l_pil(outputs: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor) -> float:
    """Equation 4 by hand for n = 2: the better of the two assignments."""
    o1, o2 = outputs[0, 0:1], outputs[0, 1:2]
    a = video_loss(o1, v1) + video_loss(o2, v2)
    b = video_loss(o2, v1) + video_loss(o1, v2)
    return float(torch.minimum(a, b))


def test_report_eval_json_identity_and_losses(shards, runs, tmp_path):
    torch.set_num_threads(1)
    root, decoded = shards
    out = tmp_path / "both"
    summary = evaluate([runs["c2"], runs["c3_internal"]], root, out, offsets_s=(0.0, 0.16))
    report = (out / "report.md").read_text()
    for heading in ("Table 1", "Table 2", "Figure 10", "Identity", "0.364", "(chance)"):
        assert heading in report
    units = [line for line in report.splitlines() if "the paper's unit" in line]
    assert units == [
        "Every loss is in the paper's unit, pixels in [-1, 1] (runs in [0,1]: computed in "
        "[0,1], reported x2)."
    ]
    combined = json.loads((out / "eval.json").read_text())
    assert [m["model"] for m in combined["runs"]] == ["c2", "c3_internal"]
    for kind in ("c2", "c3_internal"):
        m = json.loads((out / kind / "eval.json").read_text())
        for key in ("loss", "identity_loss", "params", "control_accuracy"):
            assert key in m, key
        assert set(m["loss"]) == {"transparent", "occlusion", "both"}
        assert m["samples"] == {"transparent": 2, "occlusion": 2, "both": 4}
        assert m["params"] == sum(p.numel() for p in load_run(runs[kind]).model.parameters())
        assert (out / kind / "fig5.png").stat().st_size > 0
        assert (out / kind / "fig6_transparent.png").is_file()
        assert len(list((out / kind / "videos").glob("*.mp4"))) == 2
        # identity baseline by hand from the decoded shards: l(V1, V) + l(V2, V), computed in
        # the run's [0, 1] and reported in the paper's unit, [-1, 1]: twice that
        assert m["pixel_range"] == "[0,1]" and m["loss_unit"] == LOSS_UNIT
        for blend in ("transparent", "occlusion"):
            values = [
                float(video_loss(as_tensor(d["mix"]), as_tensor(d["v1"])))
                + float(video_loss(as_tensor(d["mix"]), as_tensor(d["v2"])))
                for d in decoded
                if d["blend"] == blend
            ]
            assert m["identity_loss"][blend] == pytest.approx(2 * np.mean(values), rel=1e-5)
        # the model's loss: eq. 4 by hand on the same decoded sample
        model = load_run(runs[kind]).model
        d = decoded[0]
        audio = None
        if kind == "c3_internal":
            from trainer.audio_features import log_mel

            tone = (0.3 * np.sin(np.arange(N_AUDIO) * 0.02)).astype(np.float32)
            audio = log_mel(tone, RATE, 64, 512, 160)[None]
        with torch.no_grad():
            outputs = model(as_tensor(d["mix"]), audio).outputs
        expected = l_pil(outputs, as_tensor(d["v1"]), as_tensor(d["v2"]))
        assert m["per_sample"][0]["loss"] == pytest.approx(2 * expected, rel=1e-4)
    c2 = json.loads((out / "c2" / "eval.json").read_text())
    c3 = json.loads((out / "c3_internal" / "eval.json").read_text())
    assert c2["control_chance"] is True and "fig10" not in c2 and "fig7" not in c2["figures"]
    assert c3["control_chance"] is False and c3["fig10"]["offsets_s"] == [0.0, 0.16]
    hop = load_run(runs["c3_internal"]).cfg.data.hop_length
    assert hop == tiny().data.hop_length == 640  # 40 ms at 16 kHz: 0.16 s is 4 log-mel frames
    assert c3["fig10"]["shift_frames"] == [0, 4]
    # offset 0 is the unshifted control signal: the same accuracy as the main pass
    assert c3["fig10"]["control_accuracy"]["both"][0] == c3["control_accuracy"]["both"]
    assert (out / "c3_internal" / "fig7.png").is_file() and (
        out / "c3_internal" / "fig10.png"
    ).is_file()
    assert summary["reports"] == [str(out / "report.md")]


def test_a_run_in_minus_one_one_reports_its_losses_as_computed(shards, tmp_path):
    torch.set_num_threads(1)
    root, decoded = shards
    run = make_run(tmp_path, root, "c2", "model.pixel_range=[-1,1]", name="sym")
    evaluate([run], root, tmp_path / "out", max_samples=2, offsets_s=(0.0,))
    m = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert m["pixel_range"] == "[-1,1]" and m["loss_unit"] == LOSS_UNIT
    d = decoded[0]  # transparent
    mix, v1, v2 = (as_tensor(d[k]) * 2 - 1 for k in ("mix", "v1", "v2"))  # the model's range
    identity = float(video_loss(mix, v1) + video_loss(mix, v2))
    assert m["per_sample"][0]["identity"] == pytest.approx(identity, rel=1e-5)
    with torch.no_grad():
        outputs = load_run(run).model(mix).outputs
    assert m["per_sample"][0]["loss"] == pytest.approx(l_pil(outputs, v1, v2), rel=1e-4)
    assert "runs in [-1,1]: as computed" in (tmp_path / "out" / "report.md").read_text()


def test_default_destination_is_run_eval(shards, runs):
    evaluate([runs["c2"]], shards[0], max_samples=1, offsets_s=(0.0,))
    m = json.loads((runs["c2"] / "eval" / "eval.json").read_text())
    assert m["samples"] == {"transparent": 1, "both": 1}
    assert (runs["c2"] / "eval" / "report.md").is_file()


def _video_stream(path: Path) -> tuple[int, float, str]:
    """(frames, frame rate, pixel format) of an mp4's video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return len(frames), float(stream.average_rate), frames[0].format.name


def test_report_page_and_videos_at_the_model_input_rate(tmp_path):
    """A run that kept every 2nd frame of 16-frame clips at 25 fps saw 8 frames at 12.5 fps: its
    example videos and report.html's clips play them at 12.5 fps (the clip's real 0.64 s), in
    the display encoding; report.html shows every example's V, V1, V2, O_i and beta_ij L_j,
    V1's sound, and the chosen slot marked as eval.json scores it."""
    torch.set_num_threads(1)
    write_shards(tmp_path / "shards", n_shards=1, frames=16)
    run = make_run(tmp_path, tmp_path / "shards", "c3_internal", stride=2)
    assert read_record(run).model_input.fps == 12.5
    out = tmp_path / "eval"
    summary = evaluate([run], tmp_path / "shards", out, offsets_s=(0.0,))
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == 2
    assert [_video_stream(v) for v in videos] == [(8, 12.5, "yuv420p")] * 2
    assert summary["pages"] == [str(out / "report.html")]
    html = (out / "report.html").read_text()
    clips = re.findall(r'<video src="(report_media/v\d{4}\.mp4)"', html)
    assert len(clips) == 2 * (3 + 2 + 2 * 2)  # 2 examples: V, V1, V2, O1, O2, 4 terms
    assert {_video_stream(out / c) for c in clips} == {(8, 12.5, "yuv420p")}
    sounds = re.findall(r'<source src="(report_media/a\d{4}\.wav)"', html)
    assert len(sounds) == 2 and html.count('<option value="0" selected>') == 2  # A1 follows
    with wave.open(str(out / sounds[0])) as w:
        assert (w.getframerate(), w.getnframes()) == (RATE, round(16 / FPS * RATE))
    rows = json.loads((out / "eval.json").read_text())["per_sample"]
    outcomes = ["right" if r["control_correct"] else "wrong" for r in rows]
    assert re.findall(r"control: (right|wrong)</span>", html) == outcomes
    badges = re.findall(r'class="clip tone-(good|bad)">.*?class="badge">chosen: (\w+)<', html)
    assert [b for _, b in badges] == outcomes
    captions = ("Table 1", "Table 2", "Figure 10", "\u03b212 L2", "O2 = \u03a3j \u03b22j Lj")
    for caption in captions:
        assert caption in html, caption


def test_report_tables_are_read_back_from_the_markdown():
    columns, rows = markdown_table("| a | b |\n| --- | --- |\n| 1 | x y |\n| 2 | - |")
    assert columns == ["a", "b"] and rows == [["1", "x y"], ["2", "-"]]
    with pytest.raises(ValueError, match="one width"):
        markdown_table("| a | b |\n| --- | --- |\n| run | odd | name | 1 |")


def test_evaluate_from_file_and_memory_urls(shards, runs, tmp_path):
    """``blendkit-eval eval --shards`` takes a ``file://`` URL, and ``evaluate`` a
    ``memory://`` folder URL: the same samples and numbers as the local folder (evaluation reads
    with ``workers=0``, in this process)."""
    from typer.testing import CliRunner

    from trainer.eval_cli import app

    torch.set_num_threads(1)
    fs = fsspec.filesystem("memory")
    root = f"/blendkit-eval-{tmp_path.name}"
    for path in sorted(shards[0].glob("*.tar")):
        fs.pipe(f"{root}/val/{path.name}", path.read_bytes())
    args = {"max_samples": 2, "offsets_s": (0.0,)}
    try:
        evaluate([runs["c2"]], shards[0], tmp_path / "local", **args)
        evaluate([runs["c2"]], f"memory://{root}/val", tmp_path / "memory", **args)
    finally:
        fs.rm(root, recursive=True)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(runs["c2"]),
            "--shards",
            f"file://{shards[0]}",
            "--out",
            str(tmp_path / "file"),
        ]
        + ["--max-samples", "2", "--offsets", "0"],
    )
    assert result.exit_code == 0, result.output
    assert f"page: {tmp_path / 'file' / 'report.html'}" in result.output
    rows = [
        json.loads((tmp_path / n / "eval.json").read_text()) for n in ("local", "memory", "file")
    ]
    assert rows[0]["per_sample"] == rows[1]["per_sample"] == rows[2]["per_sample"]
    assert [r["key"] for r in rows[0]["per_sample"]] == ["000000000", "000000001"]
    result = CliRunner().invoke(app, ["eval", str(runs["c2"]), "--shards", "memory://absent/x"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: no shards found for 'memory://absent/x'"
    (tmp_path / "mine").mkdir()  # a report.html of the user's own is never overwritten
    (tmp_path / "mine" / "report.html").write_text("<p>mine</p>")
    result = CliRunner().invoke(
        app,
        ["eval", str(runs["c2"]), "--shards", str(shards[0]), "--out", str(tmp_path / "mine")]
        + ["--max-samples", "1", "--offsets", "0"],
    )
    assert (
        result.exit_code == 2 and (tmp_path / "mine" / "report.html").read_text() == "<p>mine</p>"
    )
    assert result.output.strip().endswith(
        "report.html: exists and is not a page; choose another name"
    )


def test_control_rule_on_a_constructed_case():
    # l(V1, O_i) per sample; t = 0.2 * (max - min)
    to_v1 = torch.tensor([[0.10, 0.50], [0.50, 0.10], [0.30, 0.30], [0.10, 0.14]])
    scores = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    chosen = chosen_output("internal", scores)
    assert chosen.tolist() == [0, 0, 1, 1]
    # 0.10 < 0.10 + 0.08: right; 0.50 >= 0.10 + 0.08: wrong; equal losses give t = 0 and the
    # strict inequality fails: wrong; 0.14 >= 0.10 + 0.2 * 0.04 = 0.108: wrong
    assert control_correct(to_v1, chosen).tolist() == [True, False, False, False]
    det = chosen_output("deterministic", scores)
    assert control_correct(to_v1, det).tolist() == [True, False, False, True]
    a1 = torch.arange(10.0).view(1, 1, 1, 10)
    assert shift_frames(0.03, 1000, 10) == 3
    assert roll_audio(a1, 0.03, 1000, 10)[0, 0, 0].tolist() == [7, 8, 9, 0, 1, 2, 3, 4, 5, 6]


def test_decompose_writes_n_layer_videos(runs, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, n_frames=20, width=50, height=40, audio=True)
    summary = decompose(runs["c3_internal"], video, tmp_path / "out", window=8, device="cpu")
    assert summary["frames"] == 20 and summary["size"] == S
    assert [w["frames"] for w in summary["windows"]] == [8, 8, 4]
    assert len(summary["outputs"]) == 2
    for path in [*summary["outputs"], summary["input"]]:
        assert decode_video(Path(path).read_bytes()).shape == (20, S, S, 3)
        assert _video_stream(Path(path)) == (20, FPS, "yuv420p")  # the display encoding
    with wave.open(summary["sound"]) as w:  # the soundtrack under the 20 frames, whole
        assert (w.getframerate(), w.getnframes()) == (RATE, round(20 / FPS * RATE))
    html = Path(summary["page"]).read_text()
    assert summary["page"] == str(tmp_path / "out" / "decompose.html")
    srcs = re.findall(r' src="([^"]+)"', html)  # the files decompose wrote, not copies
    assert srcs == ["input.mp4", "layer_1.mp4", "layer_2.mp4", "input.wav"]
    assert not (tmp_path / "out" / "decompose_media").exists()
    assert html.count("the audio&#x27;s choice") == 1 and '<option value="0" selected>' in html
    control = summary["control"]
    assert control["has_audio"] and len(control["per_window"]) == 3
    assert control["overall"] in (0, 1) and all(c in (0, 1) for c in control["per_window"])
    silent = tmp_path / "silent.mp4"
    make_video(silent, n_frames=20, width=50, height=40)
    summary = decompose(runs["c2"], silent, tmp_path / "c2", device="cpu")
    assert summary["control"] is None and [w["frames"] for w in summary["windows"]] == [20]
    assert summary["sound"] is None and not (tmp_path / "c2" / "input.wav").exists()
    assert "<audio" not in Path(summary["page"]).read_text()
    assert decode_video(Path(summary["outputs"][1]).read_bytes()).shape == (20, S, S, 3)


def test_bad_inputs_give_one_line_errors(runs, tmp_path):
    from typer.testing import CliRunner

    from trainer.eval_cli import app

    video = tmp_path / "ok.mp4"
    make_video(video, n_frames=8, width=32, height=32)
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4: no such file"):
        decompose(runs["c2"], missing, tmp_path / "o")
    text = make_not_video(tmp_path / "text.mp4", text=True)
    with pytest.raises(ValueError, match="text.mp4: not a readable video"):
        decompose(runs["c2"], text, tmp_path / "o")
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    (empty_run / "config.json").write_text((runs["c2"] / "config.json").read_text())
    with pytest.raises(ValueError, match="run has no checkpoint"):
        decompose(empty_run, video, tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        decompose(tmp_path, video, tmp_path / "o")
    result = CliRunner().invoke(app, ["decompose", str(runs["c2"]), str(missing), "--out", "x"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {missing}: no such file"]


def test_eval_and_decompose_read_the_geometry_from_the_run_not_the_shards(shards, tmp_path):
    from typer.testing import CliRunner

    from trainer.cli import app as train_app
    from trainer.eval_cli import app

    moved = tmp_path / "moved"  # the training shards, gone after training
    moved.mkdir()
    for shard in shards[0].glob("*.tar"):
        (moved / shard.name).write_bytes(shard.read_bytes())
    run = make_run(tmp_path, moved, "c3_internal")
    record = json.loads((run / "trained_on.json").read_text())
    assert record["geometry"] == {
        "frames": T,
        "fps": FPS,
        "height": S,
        "width": S,
        "audio_rate": RATE,
    }
    assert record["geometry_source"] == f"read from {moved / 'shard-000000.tar'}"
    for shard in moved.iterdir():
        shard.unlink()
    moved.rmdir()
    video = tmp_path / "in.mp4"
    make_video(video, n_frames=16, width=64, height=48, audio=True)
    # the run's record, not its (gone) shards: a record of 12.5 fps 64x64 clips pooled 2x2
    record["geometry"] |= {"fps": 12.5, "height": 64, "width": 64}
    record["pixel_pool"] = 2
    (run / "trained_on.json").write_text(json.dumps(record))
    summary = decompose(run, video, tmp_path / "out", window=8, device="cpu")
    assert (summary["fps"], summary["size"], summary["frames"]) == (12.5, S, 8)  # 0.64 s
    summary = evaluate([run], shards[0], tmp_path / "eval", max_samples=1, offsets_s=(0.0,))
    assert (
        "trained on clips of 8 frames at 12.5 fps, 64x64" in Path(summary["reports"][0]).read_text()
    )

    (run / "trained_on.json").unlink()  # a run from before records: refused in one line
    with pytest.raises(ValueError, match="no trained_on.json") as info:
        decompose(run, video, tmp_path / "o", device="cpu")
    assert "blendkit-train record" in str(info.value) and "\n" not in str(info.value)
    result = CliRunner().invoke(app, ["eval", str(run), "--shards", str(shards[0])])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {run}: no trained_on.json")
    result = CliRunner().invoke(train_app, ["record", str(run), "--shards", str(shards[0])])
    assert result.exit_code == 0, result.output
    assert read_record(run).geometry.fps == FPS  # read from the shards given
    assert decompose(run, video, tmp_path / "again", window=8, device="cpu")["fps"] == FPS
    result = CliRunner().invoke(train_app, ["record", str(run), "--shards", str(shards[0])])
    assert result.exit_code == 2 and "already records the clip geometry" in result.output


def test_table3_scoring_rules_on_hand_made_logits():
    logits = torch.tensor([0.1, 3.0, 2.0, -1.0])  # top-2: classes 1, 2
    assert blended_transparent_score(logits, 1, 2) == 1.0
    assert blended_transparent_score(logits, 2, 0) == 0.5
    assert blended_transparent_score(logits, 0, 3) == 0.0
    a, b = torch.tensor([0.0, 5.0, 1.0]), torch.tensor([4.0, 0.0, 1.0])  # top-1: 1 and 0
    assert decomposed_transparent_score(a, b, 0, 1) == 1.0
    assert decomposed_transparent_score(a, b, 1, 2) == 0.5
    assert decomposed_transparent_score(a, a, 1, 0) == 0.5  # both outputs say 1: one label
    assert decomposed_transparent_score(a, b, 2, 2) == 0.0
    assert pair_score(1, 1, 1, 1) == 1.0
    assert occlusion_score(logits, 1) == 1.0 and occlusion_score(logits, 2) == 0.0


def test_tiny_classifier_and_table3(shards, runs, tmp_path):
    torch.set_num_threads(1)
    path = tmp_path / "clf.pt"
    info = train_tiny_classifier(shards[0], path, steps=30)
    assert info["classes"] == 2 and info["samples"] == 8
    assert json.loads((tmp_path / "clf.labels.json").read_text()) == ["blue", "red"]
    module = torch.jit.load(str(path))
    assert module(torch.rand(3, 3, 8, 40, 24)).shape == (3, 2)
    out = tmp_path / "t3"
    evaluate([runs["c2"]], shards[0], out, max_samples=2, offsets_s=(0.0,), classifier=path)
    m = json.loads((out / "eval.json").read_text())
    acc, counts = m["table3"]["accuracy"], m["table3"]["counts"]
    assert set(acc) == {"pure", "blended", m["name"]}
    assert counts["pure"] == {"transparent": 2, "occlusion": 2}  # V1 and V2 of each sample
    assert counts["blended"] == {"transparent": 1, "occlusion": 1}
    assert acc["blended"]["transparent"] in (0.0, 50.0, 100.0)
    assert "Table 3" in (out / "report.md").read_text()
