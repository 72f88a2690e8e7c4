"""HTML text and attributes from untrusted strings: every piece of text a page shows goes here.

``text(value)`` escapes ``& < > " '`` of ``str(value)``, so it is safe both between tags and inside
a double-quoted attribute; ``attrs(**values)`` writes ` name="value"` pairs (names are code, never
data; ``None`` and ``False`` values are left out, ``True`` writes the bare name);
``element(tag, body, **attrs)`` wraps an already-escaped body. Nothing here lets a value from data
open a tag, close an attribute or start a script.
"""

from __future__ import annotations

import html
import re

_NAME = re.compile(r"[a-z][a-z0-9-]*")


def text(value: object) -> str:
    """``str(value)`` with ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def attrs(**values: object) -> str:
    """`` name="escaped value"`` for each given value; ``data_x`` is written ``data-x``."""
    out = []
    for key, value in values.items():
        name = key.rstrip("_").replace("_", "-")
        if not _NAME.fullmatch(name):
            raise ValueError(f"bad attribute name {name!r}")
        if value is None or value is False:
            continue
        out.append(f" {name}" if value is True else f' {name}="{text(value)}"')
    return "".join(out)


def element(tag: str, body: str = "", **values: object) -> str:
    """``<tag attrs>body</tag>``; ``body`` must already be markup (escape text with ``text``)."""
    if not _NAME.fullmatch(tag):
        raise ValueError(f"bad tag name {tag!r}")
    return f"<{tag}{attrs(**values)}>{body}</{tag}>"
