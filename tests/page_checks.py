"""What a test asserts about a blendkit page open in a browser tab (``tests.browser.Tab``).

Each check drives the page the way a person does (the group's own buttons and slider) and reads
the state of its media elements. Any page written by ``blendkit.pages`` can be checked this way:
the inspect page now, the eval report and ``decompose`` pages later.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from tests.media import GRID_COLS, GRID_ROWS, ONE_RGB, ZERO_RGB

MEDIA = "Array.from(document.querySelectorAll('video, audio'))"
# ready to play at the current position, and seekable over the whole clip
READY = (
    f"{MEDIA}.every(m => m.readyState >= 2 && !m.error && m.seekable.length > 0"
    " && m.seekable.end(0) >= m.duration - 0.05)"
)

# The index a tests.media.frame_image frame carries, read from what a video shows right now.
FRAME_CODE_JS = f"""
window.__frameCode = (v) => {{
  const w = v.videoWidth, h = v.videoHeight, c = document.createElement('canvas');
  c.width = w; c.height = h;
  const g = c.getContext('2d', {{willReadFrequently: true}});
  g.drawImage(v, 0, 0);
  const px = g.getImageData(0, 0, w, h).data;
  const R = {GRID_ROWS}, C = {GRID_COLS}, thr = {(sum(ONE_RGB) + sum(ZERO_RGB)) / 6.0};
  let k = 0;
  for (let r = 0; r < R; r++) for (let q = 0; q < C; q++) {{
    const y0 = Math.floor(h * (4 * r + 1) / (4 * R)), y1 = Math.floor(h * (4 * r + 3) / (4 * R));
    const x0 = Math.floor(w * (4 * q + 1) / (4 * C)), x1 = Math.floor(w * (4 * q + 3) / (4 * C));
    let sum = 0, n = 0;
    for (let y = y0; y < Math.max(y1, y0 + 1); y++) {{
      for (let x = x0; x < Math.max(x1, x0 + 1); x++) {{
        const i = 4 * (y * w + x); sum += (px[i] + px[i + 1] + px[i + 2]) / 3; n++;
      }}
    }}
    if (sum / n > thr) k |= 1 << (r * C + q);
  }}
  return k;
}};
"""


def wait_ready(tab, timeout: float = 20.0) -> int:
    """Wait until every video and audio element is ready and seekable; returns how many."""
    tab.wait_for(READY, timeout=timeout)
    return tab.evaluate(f"{MEDIA}.length")


def problems(tab) -> list[str]:
    """Media errors, JS errors and Content-Security-Policy violations seen so far."""
    errors = tab.evaluate(
        f"{MEDIA}.filter(m => m.error).map(m => m.currentSrc + ': ' + m.error.code)"
    )
    return errors + tab.evaluate("window.__problems")


def check_every_medium_plays(tab, seconds: float = 0.4) -> list[dict]:
    """Play every element at once from its start; each must advance with no error. Returns
    ``{src, from, to}`` per element (its times before and after)."""
    start = tab.evaluate(
        f"Promise.all({MEDIA}.map(m => {{ m.currentTime = 0; return m.play(); }}))"
        f".then(() => {MEDIA}.map(m => m.currentTime))"
    )
    time.sleep(seconds)
    end = tab.evaluate(f"{MEDIA}.map(m => {{ m.pause(); return m.currentTime; }})")
    srcs = tab.evaluate(f"{MEDIA}.map(m => m.currentSrc)")
    return [{"src": s, "from": a, "to": b} for s, a, b in zip(srcs, start, end, strict=True)]


def group_times(tab, group: str) -> list[float]:
    """currentTime of every video of the group ``group`` (a CSS selector), read at one instant."""
    return tab.evaluate(
        f"Array.from(document.querySelectorAll('{group} video')).map(v => v.currentTime)"
    )


def settle(tab, group: str) -> None:
    """Wait until no video of the group is seeking and each shows its frame."""
    tab.evaluate(
        f"Promise.all(Array.from(document.querySelectorAll('{group} video')).map(v =>"
        " v.seeking ? new Promise(r => v.addEventListener('seeked', r, {once: true}))"
        " : null)).then(() => new Promise(r => requestAnimationFrame(() => r(1))))"
    )
    tab.wait_for(
        f"Array.from(document.querySelectorAll('{group} video'))"
        ".every(v => !v.seeking && v.readyState >= 2)"
    )


def seek_with_slider(tab, group: str, frame: int) -> None:
    tab.evaluate(
        f"(() => {{ const s = document.querySelector('{group} .seek');"
        f" s.value = '{frame}'; s.dispatchEvent(new Event('input')); }})()"
    )
    settle(tab, group)


def click(tab, selector: str) -> None:
    tab.evaluate(f"document.querySelector('{selector}').click()")


def shown_frames(tab, group: str, videos: str = "video") -> list[int]:
    """The frame code each chosen video of the group shows (canvas read-back: same origin)."""
    tab.evaluate(FRAME_CODE_JS)
    return tab.evaluate(
        f"Array.from(document.querySelectorAll('{group} {videos}')).map(window.__frameCode)"
    )


def outside(urls: list[str], folder_url: str) -> list[str]:
    """The requested URLs that are not in the page's folder. ``data:`` URLs fetch nothing, and
    ``blob:`` URLs of the page's own origin are the in-memory copies the page makes of its
    media when the server ignores Range requests (``page.js``)."""
    parts = urlsplit(folder_url)
    blobs = f"blob:{parts.scheme}://{parts.netloc}/"
    local = (
        (folder_url, "data:", blobs) if parts.scheme in ("http", "https") else (folder_url, "data:")
    )
    return [u for u in urls if not u.startswith(local)]
