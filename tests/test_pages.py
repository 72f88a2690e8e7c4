"""blendkit.pages without a browser: escaping, generated names, sample spread, display encoding,
the page folder, and ``inspect --html`` on tiny shards with hostile metadata."""

from __future__ import annotations

import io
import re
import wave
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from blendkit.format.blends import OCCLUSION, TRANSPARENT
from blendkit.inspect import inspect_shards
from blendkit.pages import Clip, Media, Page, write_page, write_page_file
from blendkit.pages.encode import encode_display_audio, encode_display_video
from blendkit.pages.inspect_page import DEFAULT_MAX_SAMPLES
from blendkit.pages.markup import attrs, element, text
from blendkit.pages.names import MediaNames, check_extension, is_generated
from blendkit.pages.render import asset, content_security_policy
from blendkit.pages.spread import Candidate, spaced, spread
from tests.media import ONE_RGB, ZERO_RGB, frame_image, frame_indices
from tests.tiny_shards import HOSTILE_ID, HOSTILE_KEY, HOSTILE_LABEL, write_tiny_shards

# --- escaping -------------------------------------------------------------------------------


def test_text_escapes_every_html_special_character():
    assert (
        text("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
    )
    assert text(3.5) == "3.5"


def test_attributes_escape_values_and_refuse_odd_names():
    assert attrs(data_x='"><b>', hidden=True, title=None, muted=False) == (
        ' data-x="&quot;&gt;&lt;b&gt;" hidden'
    )
    assert element("td", text("<i>"), class_="num") == '<td class="num">&lt;i&gt;</td>'
    with pytest.raises(ValueError, match="attribute name"):
        attrs(**{"onclick x": "1"})
    with pytest.raises(ValueError, match="tag name"):
        element("script src=x", "")


# --- names ----------------------------------------------------------------------------------


def test_media_names_are_generated_per_kind_and_only_known_types_pass():
    names = MediaNames()
    assert [names.next(e) for e in ("mp4", "mp4", "wav", "png", "mp4")] == [
        "media/v0001.mp4",
        "media/v0002.mp4",
        "media/a0001.wav",
        "media/f0001.png",
        "media/v0003.mp4",
    ]
    for bad in ("html", "js", "svg", "mp4/../x", ""):
        with pytest.raises(ValueError):
            check_extension(bad)
    assert is_generated("v0001.mp4") and is_generated("a12345.wav")
    for name in ("index.html", "../v0001.mp4", "v0001.mp4.sh", "v01.mp4", "x0001.mp4"):
        assert not is_generated(name)


# --- spread ---------------------------------------------------------------------------------


def _candidates(n_shards: int, per_shard: int, kinds=(TRANSPARENT, OCCLUSION)):
    return [
        Candidate(s, f"{s}-{i}", kinds[i % len(kinds)])
        for s in range(n_shards)
        for i in range(per_shard)
    ]


def test_spread_balances_kinds_first_and_shards_second():
    picks = spread(_candidates(3, 4), 6)
    assert [(p.shard, p.kind) for p in picks] == [
        (0, TRANSPARENT),
        (1, OCCLUSION),
        (2, TRANSPARENT),
        (0, OCCLUSION),
        (1, TRANSPARENT),
        (2, OCCLUSION),
    ]
    picks = spread(_candidates(8, 16), 8)  # one sample from each shard, four of each kind
    assert sorted(p.shard for p in picks) == list(range(8))
    assert sum(p.kind == OCCLUSION for p in picks) == 4


def test_spread_takes_what_there_is():
    only = _candidates(2, 3, kinds=(OCCLUSION,))
    assert [p.key for p in spread(only, 4)] == ["0-0", "1-0", "0-1", "1-1"]
    assert len(spread(only, 100)) == 6 and spread([], 3) == [] and spread(only, 0) == []


def test_spaced_spreads_indices_over_the_range():
    assert spaced(10, 4) == [0, 3, 6, 9]
    assert spaced(3, 8) == [0, 1, 2]
    assert spaced(0, 3) == [] and spaced(5, 0) == []


# --- encoding -------------------------------------------------------------------------------


def _boxes(data: bytes) -> list[bytes]:
    """Top-level mp4 box types in file order."""
    out, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i + 4 : i + 8])
        i += size if size >= 8 else len(data)
    return out


def test_display_video_is_h264_420_faststart_and_keeps_every_frame():
    frames = np.stack([frame_image(k, 64, 48) for k in range(20)])
    data = encode_display_video(frames, 25.0)
    boxes = _boxes(data)
    assert boxes.index(b"moov") < boxes.index(b"mdat")
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.profile == "High"
        decoded = list(container.decode(stream))
    assert [f.format.name for f in decoded] == ["yuv420p"] * 20
    rgb = np.stack([f.to_ndarray(format="rgb24") for f in decoded])
    assert frame_indices(rgb) == list(range(20))
    # colours come back (BT.709 both ways, tagged in the stream), away from cell edges
    assert np.abs(rgb[5, 8, 8].astype(int) - ONE_RGB).max() <= 6  # frame 5: bit 0 set
    assert np.abs(rgb[4, 8, 8].astype(int) - ZERO_RGB).max() <= 6


def test_display_video_takes_grey_float_frames_and_odd_sizes():
    alpha = np.zeros((5, 7, 9), np.float32)
    alpha[:, :, 4:] = 1.0
    with av.open(io.BytesIO(encode_display_video(alpha, 10.0))) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (8, 10, 3)  # padded to even sizes
    assert frames[2][3, 1].max() <= 20 and frames[2][3, 7].min() >= 235
    with pytest.raises(ValueError, match="frames"):
        encode_display_video(np.zeros((4, 8, 8, 4), np.uint8), 25.0)


def test_display_audio_is_wav_with_every_sample():
    x = np.sin(np.arange(1000) / 7.0).astype(np.float32) * 0.9
    with wave.open(io.BytesIO(encode_display_audio(x, 8000))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        back = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767.0
    assert len(back) == 1000 and np.abs(back - x).max() < 1e-4


OUR_TAGS = set(
    "html head meta link title style body main header h1 h2 h3 p nav a section table caption thead "
    "tbody tr th td figure figcaption img div span b video audio source button input select "
    "option label article script".split()
)


def _tags(html: str) -> list[tuple[str, list[str]]]:
    """(tag, attribute names) of every start tag of a document."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, [name for name, _ in attrs]))

    Parser().feed(html)
    return found


# --- the page folder ------------------------------------------------------------------------


def _small_page(label: str = HOSTILE_LABEL) -> Page:
    page = Page(f"title {label}", subtitle=label)
    top = page.section(label)
    top.text(label)
    top.table([label, "n"], [[label, 3]], caption=label)
    top.figure(b"\x89PNG fake", caption=label)
    group = page.section("groups", filters=("label",)).group(
        label, 25.0, tags=[label], facets={"label": [label]}, meta=[(label, label)]
    )
    group.video(
        np.stack([frame_image(k, 32, 32) for k in range(4)]),
        label,
        tone="good",
        badge=label,
        caption=label,
    )
    group.audio(np.zeros(800, np.float32), 8000, label, caption=label)
    return page


def test_page_shows_data_as_text_only(tmp_path):
    index = write_page(_small_page(), tmp_path / "page")
    html = index.read_text()
    assert HOSTILE_LABEL not in html and text(HOSTILE_LABEL) in html
    tags = _tags(html)  # as a browser's parser sees the document
    assert not [a for _, names in tags for a in names if a.startswith("on")]
    assert [t for t, _ in tags].count("script") == 1 and [t for t, _ in tags].count("img") == 1
    assert {t for t, _ in tags} <= OUR_TAGS
    # every URL in the page points into its own media folder or at one of its sections
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert urls and all(
        re.fullmatch(r"media/[vaf]\d{4}\.(mp4|wav|png)|#s\d+|data:,", u) for u in urls
    )
    assert "http:" not in html and "https:" not in html and "//" not in asset("page.css")


def test_page_folder_holds_only_generated_names(tmp_path):
    out = tmp_path / "page"
    write_page(_small_page(), out)
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "media"]
    assert sorted(p.name for p in (out / "media").iterdir()) == [
        "a0001.wav",
        "f0001.png",
        "v0001.mp4",
    ]


def test_content_security_policy_allows_exactly_the_inline_style_and_script(tmp_path):
    html = write_page(_small_page("x"), tmp_path / "page").read_text()
    css, js = asset("page.css"), asset("page.js")
    assert f"<style>{css}</style>" in html and f"<script>{js}</script>" in html
    policy = content_security_policy(css, js)
    assert text(policy) in html
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert content_security_policy(css + " ", js) != policy


def test_page_folder_refuses_other_folders_and_rewrites_its_own(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a page folder"):
        write_page(_small_page(), busy)
    assert (busy / "notes.txt").read_text() == "mine"
    out = tmp_path / "page"
    big = _small_page()
    big.sections[1].groups[0].video(np.zeros((2, 8, 8, 3), np.uint8), "extra")
    write_page(big, out)
    (out / "media" / "keep.txt").write_text("user file")
    write_page(_small_page(), out)  # fewer media: the old generated ones go, the user's file stays
    assert sorted(p.name for p in (out / "media").iterdir()) == [
        "a0001.wav",
        "f0001.png",
        "keep.txt",
        "v0001.mp4",
    ]


def test_page_file_beside_other_files_points_at_plain_files_in_place(tmp_path):
    """``write_page_file``: ``NAME.html`` and ``NAME_media/`` beside a folder's other files; a
    medium already in the folder under a plain name is used where it is, anything else is
    copied under a generated name; a file of that name that is not a page is refused."""
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "report.md").write_text("mine")
    frames = np.stack([frame_image(k, 32, 32) for k in range(4)])
    (folder / "layer_1.mp4").write_bytes(encode_display_video(frames, 25.0))
    (folder / "odd name.mp4").write_bytes(encode_display_video(frames, 25.0))
    page = _small_page("x")
    group = page.sections[1].groups[0]
    group.add_clip(Clip(Media.file(folder / "layer_1.mp4"), "in place", row="r"))
    group.add_clip(Clip(Media.file(folder / "odd name.mp4"), "copied", row="r"))
    group.sound = 0
    index = write_page_file(page, folder / "report.html")
    html = index.read_text()
    srcs = re.findall(r' src="([^"]+)"', html)
    assert srcs == [
        "report_media/f0001.png",
        "report_media/v0001.mp4",
        "layer_1.mp4",
        "report_media/v0002.mp4",
        "report_media/a0001.wav",
    ]
    assert sorted(p.name for p in folder.iterdir()) == [
        "layer_1.mp4",
        "odd name.mp4",
        "report.html",
        "report.md",
        "report_media",
    ]
    assert '<option value="0" selected>' in html
    labels = re.findall(r'<div class="row-label">([^<]*)</div>', html)
    assert labels == ["", "r"]  # the first clip's row, then the two clips of row "r"
    write_page_file(_small_page("x"), folder / "report.html")  # its own page: rewritten
    assert sorted(p.name for p in (folder / "report_media").iterdir()) == [
        "a0001.wav",
        "f0001.png",
        "v0001.mp4",
    ]
    with pytest.raises(ValueError, match="must end in .html"):
        write_page_file(_small_page("x"), folder / "report.md")
    (folder / "notes.html").write_text("<p>mine</p>")
    with pytest.raises(FileExistsError, match="notes.html: exists and is not a page"):
        write_page_file(_small_page("x"), folder / "notes.html")
    assert (folder / "notes.html").read_text() == "<p>mine</p>"
    group.sound = 5
    with pytest.raises(ValueError, match="sound 5 is not one of its tracks"):
        write_page_file(page, folder / "report.html")


def test_page_rejects_unknown_tones_and_wrong_media():
    group = Page("t").section("s").group("g", 25.0)
    with pytest.raises(ValueError, match="tone"):
        group.video(np.zeros((2, 8, 8, 3), np.uint8), "x", tone="red; background:url(x)")
    with pytest.raises(ValueError, match="needs a video"):
        group.add_clip(Clip(Media("wav", b""), "a"))
    with pytest.raises(ValueError, match="media type"):
        Media("html", data=b"<script>")


# --- inspect --html --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_tiny_shards(tmp_path_factory.mktemp("pages") / "shards", hostile=True)


def test_inspect_html_spreads_samples_and_shows_their_metadata(shards, tmp_path):
    summary = inspect_shards(shards, html=tmp_path / "page", max_samples=4)
    index = Path(summary["html"])
    assert index == tmp_path / "page" / "index.html" and summary["samples"] == 12
    html = index.read_text()
    groups = re.findall(
        r'<article class="group" id="[^"]*" data-fps="25.0" data-facets="([^"]*)"', html
    )
    assert len(groups) == 4
    assert (
        sum("transparent" in g for g in groups) == 2 and sum("occlusion" in g for g in groups) == 2
    )
    assert all(f"shard-00000{s}.tar</span>" in html for s in range(3))  # every shard shown
    media = sorted(p.name for p in (tmp_path / "page" / "media").iterdir())
    assert sum(n.endswith(".mp4") for n in media) == 16  # mix, v1, v2, alpha per sample
    assert sum(n.endswith(".wav") for n in media) == 8  # a1, a2 per sample
    assert sum(n.endswith(".png") for n in media) == 2  # counts, contact sheet
    assert "PSNR 43.2 dB" in html and "from 1.25 s" in html and "12.5% of the clip" in html
    assert text(HOSTILE_KEY) in html and text(HOSTILE_ID) in html and text(HOSTILE_LABEL) in html
    tags = _tags(html)
    assert {t for t, _ in tags} <= OUR_TAGS and [t for t, _ in tags].count("script") == 1
    assert not [a for _, names in tags for a in names if a.startswith("on")]


def test_inspect_html_from_the_command_line(shards, tmp_path):
    from cli import app

    runner = CliRunner()
    out = tmp_path / "page"
    result = runner.invoke(app, ["inspect", str(shards), "--html", str(out), "--max-samples", "2"])
    assert result.exit_code == 0, result.output
    assert f"page: {out / 'index.html'}" in result.output
    assert len(list((out / "media").glob("v*.mp4"))) == 8
    bad = runner.invoke(app, ["inspect", str(shards), "--html", str(out), "--max-samples", "0"])
    assert bad.exit_code == 2 and "max-samples must be at least 1" in bad.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    bad = runner.invoke(app, ["inspect", str(shards), "--html", str(busy)])
    assert bad.exit_code == 2 and "not a page folder" in bad.output
    assert "Traceback" not in bad.output


def test_inspect_html_passes_over_broken_samples_and_shards(tmp_path):
    shards = write_tiny_shards(tmp_path / "shards", broken=frozenset({1}))
    whole = (shards / "shard-000002.tar").read_bytes()
    (shards / "shard-000002.tar").write_bytes(whole[: len(whole) // 2])  # cut mid-sample
    summary = inspect_shards(shards, html=tmp_path / "page", max_samples=6)
    html = Path(summary["html"]).read_text()
    assert "Passed over (could not be decoded):" in html and "shard-000000.tar:000000001" in html
    n_groups = html.count('<article class="group"')
    assert 4 <= n_groups <= 5  # sample 1 passed over; shard 2 gives what it holds before the cut
    assert len(list((tmp_path / "page" / "media").glob("v*.mp4"))) == 4 * n_groups


def test_cli_default_page_size_is_the_librarys():
    import inspect

    from cli import inspect_cmd

    default = inspect.signature(inspect_cmd).parameters["max_samples"].default.default
    assert default == DEFAULT_MAX_SAMPLES
