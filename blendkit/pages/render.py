"""A ``Page`` as one HTML document: every value escaped, inline CSS and JS only.

``render_page(page, names)`` takes the generated file name of each of the page's media (``names``
maps ``id(media)`` to ``media/...``, see ``folder``) and returns the document. The style and
script are inlined from ``page.css`` and ``page.js`` beside this module, and the document's
Content-Security-Policy allows exactly them (by hash) plus images and media from the page's own
folder (and ``blob:`` copies of them, see ``page.js``): the browser itself refuses anything else
(no CDN, font, script or request to elsewhere).
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from importlib import resources

from blendkit.pages.markup import attrs, element, text
from blendkit.pages.names import mime_of
from blendkit.pages.page import Clip, Figure, Media, Page, Section, SyncGroup, Table, Text, Track

GENERATOR = "blendkit.pages"
GENERATOR_META = f'<meta name="generator" content="{GENERATOR}">'  # marks a page folder


@cache
def asset(name: str) -> str:
    """The text of ``page.css`` or ``page.js``."""
    return resources.files("blendkit.pages").joinpath(name).read_text(encoding="utf-8")


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy(css: str, js: str) -> str:
    return (
        "default-src 'none'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
        f"style-src {_hash(css)}; script-src {_hash(js)}; "
        "base-uri 'none'; form-action 'none'"
    )


def render_page(page: Page, names: dict[int, str]) -> str:
    css, js = asset("page.css"), asset("page.js")
    head = "".join(
        [
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            GENERATOR_META,
            f"<meta{attrs(http_equiv='Content-Security-Policy')}"
            f"{attrs(content=content_security_policy(css, js))}>",
            '<link rel="icon" href="data:,">',  # no favicon request (img-src allows data:)
            element("title", text(page.title)),
            f"<style>{css}</style>",
        ]
    )
    nav = "".join(
        element("a", text(s.title), href=f"#s{i}") for i, s in enumerate(page.sections, 1)
    )
    header = element("h1", text(page.title))
    if page.subtitle:
        header += element("p", text(page.subtitle), class_="subtitle")
    if len(page.sections) > 1:
        header += element("nav", nav)
    body = element("header", header, class_="top") + "".join(
        _section(s, i, page, names) for i, s in enumerate(page.sections, 1)
    )
    return (
        f'<!doctype html>\n<html lang="en"><head>{head}</head>\n'
        f"<body>{element('main', body)}\n<script>{js}</script></body></html>\n"
    )


def _section(section: Section, number: int, page: Page, names: dict[int, str]) -> str:
    parts = [element("h2", text(section.title))]
    if section.filters:
        parts.append(_filters(section))
    n = 0
    for block in section.blocks:
        if isinstance(block, SyncGroup):
            n += 1
            parts.append(_group(block, f"s{number}g{n}", page, names))
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Figure):
            parts.append(_figure(block, names))
        elif isinstance(block, Text):
            parts.append("".join(element("p", text(p)) for p in block.paragraphs))
    return element("section", "".join(parts), id=f"s{number}")


def _filters(section: Section) -> str:
    menus = []
    for facet in section.filters:
        values = sorted({v for g in section.groups for v in g.facets.get(facet, [])})
        options = element("option", "all", value="") + "".join(
            element("option", text(v), value=v) for v in values
        )
        menus.append(element("label", text(facet) + element("select", options, data_facet=facet)))
    body = "".join(menus) + element("span", "", class_="count", aria_live="polite")
    return element("div", body, class_="filters")


def _table(table: Table) -> str:
    head = "".join(element("th", text(c)) for c in table.columns)
    rows = "".join(
        element("tr", "".join(element("td", text(v), class_=_numeric(v)) for v in row))
        for row in table.rows
    )
    caption = element("caption", text(table.caption)) if table.caption else ""
    return element(
        "table", caption + element("thead", element("tr", head)) + element("tbody", rows)
    )


def _numeric(value) -> str | None:
    return "num" if isinstance(value, int | float) and not isinstance(value, bool) else None


def _figure(figure: Figure, names: dict[int, str]) -> str:
    src = names[id(figure.media)]
    image = element("a", f"<img{attrs(src=src, alt=figure.caption or 'figure')}>", href=src)
    caption = element("figcaption", text(figure.caption)) if figure.caption else ""
    return element("figure", image + caption, class_="figure")


def _video_size(media: Media, width: int) -> dict:
    if media.size is None:
        return {"width": width}
    h, w = media.size
    return {"width": width, "height": round(width * h / w)}


def _clip(clip: Clip, page: Page, names: dict[int, str]) -> str:
    video = element(
        "video",
        "",
        src=names[id(clip.media)],
        preload="auto",
        muted=True,
        playsinline=True,
        **_video_size(clip.media, page.clip_width),
    )
    badge = element("span", text(clip.badge), class_="badge") if clip.badge else ""
    label = element("b", text(clip.label))
    caption = label + (element("span", text(clip.caption), class_="note") if clip.caption else "")
    tone = f" tone-{clip.tone}" if clip.tone else ""
    return element(
        "figure",
        element("figcaption", caption) + element("div", video + badge, class_="frame"),
        class_="clip" + tone,
    )


def _track(track: Track, names: dict[int, str]) -> str:
    media = names[id(track.media)]
    audio = element(
        "audio",
        element("source", "", src=media, type=mime_of(track.media.ext)),
        controls=True,
        preload="auto",
    )
    note = element("span", text(track.caption), class_="note") if track.caption else ""
    return element(
        "figure",
        element("figcaption", element("b", text(track.label)) + note) + audio,
        class_="track",
    )


def _controls(group: SyncGroup) -> str:
    button = element("button", "&#9654;", type="button", class_="play", title="play / pause")
    steps = element(
        "button", "&#8249;", type="button", class_="step", data_step=-1, title="previous frame"
    )
    steps += element(
        "button", "&#8250;", type="button", class_="step", data_step=1, title="next frame"
    )
    seek = (
        f"<input{attrs(type='range', class_='seek', min=0, max=0, step=1, value=0)}"
        + ' aria-label="frame">'
    )
    rates = "".join(
        element("option", label, value=v)
        for v, label in (("1", "1&times;"), ("0.5", "&frac12;&times;"), ("0.25", "&frac14;&times;"))
    )
    parts = [
        button,
        steps,
        seek,
        element("span", "", class_="time"),
        element("select", rates, class_="rate", title="speed"),
    ]
    parts.append(
        element("label", f"<input{attrs(type='checkbox', class_='loop', checked=True)}> loop")
    )
    if group.tracks:
        sounds = element("option", "no sound", value="") + "".join(
            element("option", "sound: " + text(t.label), value=i, selected=i == group.sound)
            for i, t in enumerate(group.tracks)
        )
        parts.append(
            element("select", sounds, class_="sound", title="audio that plays with the videos")
        )
    return element("div", "".join(parts), class_="controls")


def _rows(group: SyncGroup, page: Page, names: dict[int, str]) -> str:
    """The group's clips: one row, or a labelled row per run of clips with the same ``row``."""
    if all(not c.row for c in group.clips):
        return element("div", "".join(_clip(c, page, names) for c in group.clips), class_="clips")
    runs: list[list[Clip]] = []
    for clip in group.clips:
        if runs and runs[-1][0].row == clip.row:
            runs[-1].append(clip)
        else:
            runs.append([clip])
    return element(
        "div",
        "".join(
            element(
                "div",
                element("div", text(run[0].row), class_="row-label")
                + element("div", "".join(_clip(c, page, names) for c in run), class_="clips"),
                class_="clip-row",
            )
            for run in runs
        ),
        class_="clip-rows",
    )


def _group(group: SyncGroup, ident: str, page: Page, names: dict[int, str]) -> str:
    if not group.clips:
        raise ValueError(f"group {group.title!r} has no clips")
    if group.sound is not None and not 0 <= group.sound < len(group.tracks):
        raise ValueError(f"group {group.title!r}: sound {group.sound} is not one of its tracks")
    tags = "".join(element("span", text(t), class_="tag") for t in group.tags)
    header = element("header", element("h3", text(group.title)) + tags)
    clips = _rows(group, page, names)
    tracks = "".join(_track(t, names) for t in group.tracks)
    meta = "".join(
        element("tr", element("th", text(k)) + element("td", text(v))) for k, v in group.meta
    )
    body = header + clips + _controls(group)
    if tracks or meta:
        details = element("div", tracks, class_="tracks") if tracks else ""
        details += element("table", element("tbody", meta), class_="meta") if meta else ""
        body += element("div", details, class_="details")
    facets = json.dumps({k: [str(v) for v in vs] for k, vs in group.facets.items()})
    tone = f" tone-{group.tone}" if group.tone else ""
    return element(
        "article",
        body,
        class_="group" + tone,
        id=ident,
        data_fps=repr(float(group.fps)),
        data_facets=facets,
    )
