"""The pages in a real browser: headless Chromium (Debian's ``chromium``, which ``make test``
installs) over the DevTools protocol. A missing Chromium fails these tests; it never skips them.

Checked on the inspect page of tiny shards with hostile metadata, served by a plain static server
(Python's, which ignores Range requests: the hardest case for seeking) and opened from disk, and
on a page shaped like the eval report (clips with coloured borders and badges, a clip streamed to
a file, sound that follows the videos):
every video and audio element becomes ready (``readyState >= 2``) and seekable; playing advances
each one's ``currentTime`` with no media error; the group's slider seeks every video of the group
to the same frame (the frame each video *shows*, read back through a canvas, and its time);
playing keeps them within one frame and pausing lines them up; the filter shows only the chosen
kind; nothing is requested from outside the page's folder, and nothing breaks the page's
Content-Security-Policy or throws.

The same on the trainer's pages, made from a tiny C3 run (``tests.test_eval``'s fixtures): the
``report.html`` of its evaluation, served (every example's clips and V1's sound, which follows
the videos and stays within a frame of them after each seek; the chosen output of every example
marked; the tables and Figure 10's image load), and the ``decompose.html`` of a video with sound,
opened from disk (it points at ``decompose``'s own files).
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from blendkit.inspect import inspect_shards
from blendkit.pages import Clip, Media, Page, write_page
from blendkit.pages.encode import DisplayVideoWriter
from tests import page_checks as pc
from tests.browser import Browser
from tests.media import frame_image, make_video
from tests.test_eval import make_run, write_shards
from tests.tiny_shards import FPS, FRAMES, HOSTILE_LABEL, write_tiny_shards
from trainer.eval import decompose, evaluate

FIRST = "#s2g1"  # the first synced group of the inspect page (section 2, group 1)
CODED = ".clip:nth-child(-n+3) video"  # mix, v1, v2 carry frame codes; alpha does not
EVAL_FRAMES = 32  # frames of the clips of the evaluated shards


def report_like_page(folder: Path, tmp: Path) -> Path:
    """A page shaped like the eval report: input, outputs marked right/wrong, a streamed clip."""
    frames = np.stack([frame_image(t, 64, 48) for t in range(FRAMES)])
    page = Page("Evaluation", subtitle="C3 on two blends")
    page.section("Tables").table(["model", "loss"], [["C2", 0.187], ["C3", 0.215]])
    examples = page.section("Examples", filters=("outcome",))
    with DisplayVideoWriter(tmp / "layer.mp4", FPS, 64, 48) as writer:  # written in two chunks
        writer.write(frames[:7])
        writer.write(frames[7:])
    for i, outcome in enumerate(("right", "wrong")):
        group = examples.group(f"example {i}", FPS, facets={"outcome": [outcome]})
        group.video(frames, "V (input)")
        group.video(
            frames, "O1", tone="good" if outcome == "right" else "bad", badge=f"chosen: {outcome}"
        )
        group.add_clip(Clip(Media.file(tmp / "layer.mp4"), "O2 (from a file)"))
        group.audio(0.3 * np.sin(np.arange(int(FRAMES / FPS * 8000)) / 3.0), 8000, "control")
    return write_page(page, folder)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    shards = write_tiny_shards(root / "shards", hostile=True)
    inspect_shards(shards, html=root / "inspect", max_samples=4)
    report_like_page(root / "report", tmp_path_factory.mktemp("streamed"))
    (root / "leaky").mkdir()  # a page that asks for a file outside its folder
    (root / "leaky" / "index.html").write_text(
        '<!doctype html><img src="../inspect/media/f0001.png">'
    )
    return root


@pytest.fixture(scope="module")
def server(site):
    """The site over HTTP from 127.0.0.1, by the standard library's static server."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=site)
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def _check_media(tab, n_media: int) -> None:
    assert pc.wait_ready(tab) == n_media
    for medium in pc.check_every_medium_plays(tab):
        assert medium["to"] > medium["from"] + 0.1, medium
    assert pc.problems(tab) == []


def _check_seeks(
    tab, group: str, coded: str | None, frames: int = FRAMES, fps: float = FPS, sound: bool = False
) -> None:
    """Seek with the group's slider: every video (and, with ``sound``, the audio that follows
    them) at the middle of the frame asked for, all within one frame of each other."""
    frame = 1 / fps
    for k in (frames * 11 // 16, frames * 3 // 16, frames - 1, 0, frames * 6 // 16):
        pc.seek_with_slider(tab, group, k)
        times = pc.group_times(tab, group)
        if sound:
            times += [tab.evaluate(f"document.querySelector('{group} audio').currentTime")]
        assert max(times) - min(times) < frame and abs(times[0] - (k + 0.5) / fps) < frame / 2
        if coded:  # what is on screen, not just the clock
            assert pc.shown_frames(tab, group, coded) == [k] * 3
        assert tab.evaluate(f"document.querySelector('{group} .time').textContent").startswith(
            f"frame {k + 1} / {frames} "
        )


def _check_play_pause(tab, group: str) -> None:
    frame = 1 / FPS
    pc.seek_with_slider(tab, group, 0)
    pc.click(tab, f"{group} .play")
    spreads = []
    for _ in range(6):
        time.sleep(0.1)
        times = pc.group_times(tab, group)
        spreads.append(max(times) - min(times))
    playing = f"window.blendkitPages.groups.find(g => '#' + g.root.id === '{group}').playing"
    assert tab.evaluate(playing) is True
    pc.click(tab, f"{group} .play")  # pause: lines every video up on the lead's frame
    pc.settle(tab, group)
    times = pc.group_times(tab, group)
    assert max(spreads) < frame, spreads
    assert max(times) - min(times) < 1e-6


def test_inspect_page_over_http(browser, server, site):
    folder = f"{server}/inspect/"
    tab = browser.open(folder + "index.html")
    n_groups = tab.evaluate("document.querySelectorAll('.group').length")
    assert n_groups == 4
    _check_media(tab, n_groups * 6)  # 4 videos and 2 sounds a sample
    _check_seeks(tab, FIRST, CODED)
    _check_play_pause(tab, FIRST)
    assert HOSTILE_LABEL in tab.evaluate("document.body.innerText")  # shown as text
    assert tab.evaluate("window.__pwned") is None
    assert tab.evaluate("document.scripts.length") == 1
    assert pc.problems(tab) == []
    assert len(tab.requests) >= 1 + 4 * 6 + 2 and pc.outside(tab.requests, folder) == []
    tab.close()


def test_inspect_page_from_disk(browser, site):
    folder = (site / "inspect").as_uri() + "/"
    tab = browser.open(folder + "index.html")
    _check_media(tab, 24)
    _check_seeks(tab, FIRST, None)  # file:// videos taint a canvas: times only
    _check_play_pause(tab, FIRST)
    assert pc.problems(tab) == [] and pc.outside(tab.requests, folder) == []
    tab.close()


def test_filter_by_blend_kind_and_label(browser, server):
    tab = browser.open(f"{server}/inspect/index.html")
    visible = "Array.from(document.querySelectorAll('.group')).filter(g => !g.hidden)"
    choose = (
        "((facet, value) => {{ const s = document.querySelector(`select[data-facet=${{facet}}]`);"
        " s.value = value; s.dispatchEvent(new Event('change')); }})({!r}, {!r})"
    )
    tab.evaluate(choose.format("blend", "occlusion"))
    kinds = tab.evaluate(f"{visible}.map(g => JSON.parse(g.dataset.facets).blend[0])")
    assert kinds == ["occlusion", "occlusion"]
    tab.evaluate(choose.format("label", HOSTILE_LABEL))
    assert tab.evaluate(f"{visible}.length") == 1
    assert tab.evaluate("document.querySelector('.filters .count').textContent") == "1 of 4 shown"
    tab.evaluate(choose.format("blend", ""))
    tab.evaluate(choose.format("label", ""))
    assert tab.evaluate(f"{visible}.length") == 4
    tab.close()


def test_report_like_page_marks_clips_and_plays_sound_with_the_videos(browser, server):
    folder = f"{server}/report/"
    tab = browser.open(folder + "index.html")
    _check_media(tab, 2 * 4)
    group = "#s2g1"
    _check_seeks(tab, group, "video")  # the streamed file clip shows the same frames
    badges = tab.evaluate(
        "Array.from(document.querySelectorAll('.clip.tone-good .badge, .clip.tone-bad .badge'))"
        ".map(b => [b.textContent, getComputedStyle(b.closest('.frame')).borderTopColor])"
    )
    assert badges == [["chosen: right", "rgb(26, 127, 55)"], ["chosen: wrong", "rgb(207, 34, 46)"]]
    tab.evaluate(  # the control sound follows the videos
        f"(() => {{ const s = document.querySelector('{group} .sound');"
        " s.value = '0'; s.dispatchEvent(new Event('change')); })()"
    )
    pc.seek_with_slider(tab, group, 4)
    pc.click(tab, f"{group} .play")
    time.sleep(0.3)
    sound, lead = tab.evaluate(
        f"[document.querySelector('{group} audio').currentTime,"
        f" document.querySelector('{group} video').currentTime]"
    )
    pc.click(tab, f"{group} .play")
    assert sound > 4.5 / FPS and abs(sound - lead) < 0.15
    assert pc.problems(tab) == [] and pc.outside(tab.requests, folder) == []
    tab.close()


def test_a_request_outside_the_folder_is_caught(browser, server):
    """The network check itself: a page that reaches out of its folder is flagged."""
    folder = f"{server}/leaky/"
    tab = browser.open(folder + "index.html")
    tab.wait_for("document.images[0].complete")
    assert f"{server}/inspect/media/f0001.png" in pc.outside(tab.requests, folder)
    tab.close()


# --- the trainer's pages: report.html of an evaluation, decompose.html ----------------------


@pytest.fixture(scope="module")
def trainer_pages(site, tmp_path_factory) -> dict:
    """report.html of a tiny C3 run evaluated on 4 samples (2 per blend kind) of 32-frame clips
    (1.28 s: no clip loops round while the play check samples it), and decompose.html of a
    40-frame video with sound, both in the served site."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("trained")
    write_shards(tmp / "shards", frames=EVAL_FRAMES)
    run = make_run(tmp, tmp / "shards", "c3_internal")
    evaluate([run], tmp / "shards", site / "eval", offsets_s=(0.0,))
    make_video(tmp / "in.mp4", n_frames=40, width=50, height=40, audio=True)
    summary = decompose(run, tmp / "in.mp4", site / "decompose", window=8, device="cpu")
    return {"examples": 4, "videos": 3 + 2 + 2 * 2, "decompose_frames": summary["frames"]}


def test_eval_report_page_plays_in_sync_with_the_control_sound(browser, server, trainer_pages):
    folder = f"{server}/eval/"
    tab = browser.open(folder + "report.html")
    n = trainer_pages["examples"]
    assert tab.evaluate("document.querySelectorAll('.group').length") == n
    _check_media(tab, n * (trainer_pages["videos"] + 1))  # every clip, and V1's sound
    group = "#s2g1"  # the first example of the first run
    assert tab.evaluate(f"document.querySelector('{group} .sound').value") == "0"
    _check_seeks(tab, group, None, frames=EVAL_FRAMES, fps=FPS, sound=True)
    _check_play_pause(tab, group)
    marked = tab.evaluate("document.querySelectorAll('.clip.tone-good, .clip.tone-bad').length")
    assert marked == n  # the chosen output of every example (all have V1's sound)
    assert tab.evaluate("document.querySelectorAll('table').length") >= 3  # Tables 1, 2, Fig 10
    assert tab.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth)")
    assert pc.problems(tab) == [] and pc.outside(tab.requests, folder) == []
    tab.close()


def test_decompose_page_plays_from_disk(browser, site, trainer_pages):
    folder = (site / "decompose").as_uri() + "/"
    tab = browser.open(folder + "decompose.html")
    _check_media(tab, 1 + 2 + 1)  # input, 2 layers, the soundtrack
    frames = trainer_pages["decompose_frames"]
    _check_seeks(tab, "#s1g1", None, frames=frames, fps=FPS, sound=True)
    _check_play_pause(tab, "#s1g1")
    assert tab.evaluate("document.querySelectorAll('.clip.tone-info .badge').length") == 1
    assert pc.problems(tab) == [] and pc.outside(tab.requests, folder) == []
    tab.close()
