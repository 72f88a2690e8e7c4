"""Headless Chromium driven over the DevTools protocol, for tests that open pages in a browser.

Chromium talks CDP over a pair of pipes (``--remote-debugging-pipe``: it reads commands on its fd
3 and writes answers and events on its fd 4, each message JSON ending in a NUL byte), so no port
is opened and no websocket library is needed. A reader thread splits the stream: answers go to the
command waiting for them, events to a list the test reads.

``Browser()`` starts Debian's ``chromium`` with a fresh profile and the flags that keep it off the
network (no background connections, no component updates, no QUIC); ``close()`` ends it and its
whole process group (it is started in a new session) and removes the profile.
``browser.open(url)`` gives a ``Tab`` (its own CDP session) with ``evaluate(js)``,
``wait_for(js)``, ``requests`` (every URL the tab asked for) and ``screenshot(path)``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-pipe",
]


class BrowserError(RuntimeError):
    pass


def chromium_path() -> str:
    """The chromium executable; ``BrowserError`` (a failure, never a skip) when it is missing."""
    path = shutil.which("chromium")
    if path is None:
        raise BrowserError("chromium is not installed: `make test` installs it (apt-get)")
    return path


class Browser:
    def __init__(self, timeout: float = 30.0, window: tuple[int, int] = (1400, 1000)) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self._closed = False
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.profile = tempfile.mkdtemp(prefix="pages-chromium-")
        self.log = open(Path(self.profile) / "chromium.log", "wb")  # noqa: SIM115
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        try:
            self.proc = self._start(to_chrome_r, from_chrome_w, window)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(to_chrome_r)
            os.close(from_chrome_w)
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.version = self.send("Browser.getVersion")["product"]
        except BaseException:
            self.close()
            raise

    def _start(self, to_chrome_r: int, from_chrome_w: int, window: tuple[int, int]):
        def pipes_on_3_and_4() -> None:  # runs in the child, before exec
            # out of the way first, in case either end is itself fd 3 or 4
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(a, 3)  # inheritable: the only descriptors chromium gets besides 0-2
            os.dup2(b, 4)

        return subprocess.Popen(
            [
                chromium_path(),
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={window[0]},{window[1]}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            close_fds=False,  # Python's own descriptors are not inheritable (PEP 446)
            preexec_fn=pipes_on_3_and_4,
            start_new_session=True,  # its own process group: close() ends every helper
        )

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its answer; a CDP error raises ``BrowserError``."""
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise BrowserError(f"{method}: no answer from chromium")
                self._cond.wait(min(left, 0.5))
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def open(self, url: str) -> Tab:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        tab = Tab(self, target, session["sessionId"])
        tab.navigate(url)
        return tab

    def close(self) -> None:
        """End chromium (politely, then its whole process group) and remove its profile."""
        if self._closed:
            return
        self._closed = True
        if self.proc is not None:
            try:
                if self.proc.poll() is None:
                    self.send("Browser.close")
                self.proc.wait(timeout=10)
            except (BrowserError, OSError, subprocess.TimeoutExpired):
                pass
            try:  # helpers left in the group (crashpad, zygote) end with it
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Tab:
    def __init__(self, browser: Browser, target: str, session: str) -> None:
        self.browser, self.target, self.session = browser, target, session
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable")
        self.send(  # CSP violations and JS errors land in window.__problems
            "Page.addScriptToEvaluateOnNewDocument",
            {
                "source": "window.__problems = [];"
                "document.addEventListener('securitypolicyviolation', e =>"
                " window.__problems.push('csp: ' + e.blockedURI + ' ' + e.violatedDirective));"
                "window.addEventListener('error', e =>"
                " window.__problems.push('error: ' + e.message));"
            },
        )

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str):
        """The value of a JS expression (promises awaited); a JS exception raises."""
        result = self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": True,
            },
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, poll: float = 0.05):
        """Poll a JS expression until it is truthy; ``BrowserError`` at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression[:120]}")
            time.sleep(poll)

    @property
    def requests(self) -> list[str]:
        """Every URL this tab asked for (Network.requestWillBeSent), in order."""
        with self.browser._cond:
            events = list(self.browser.events)
        return [
            e["params"]["request"]["url"]
            for e in events
            if e.get("sessionId") == self.session and e["method"] == "Network.requestWillBeSent"
        ]

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        params: dict = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 1900, at: float = 0.5):
    """A PNG of a page (its first ``height`` pixels) once its media are ready, every synced
    group paused at fraction ``at`` of its clip (e.g. for the README's figure)."""
    with Browser(window=(width, height)) as browser:
        tab = browser.open(Path(page).resolve().as_uri())
        tab.wait_for(
            "Array.from(document.querySelectorAll('video, audio')).every(m => m.readyState >= 2)"
        )
        tab.evaluate(
            f"window.blendkitPages.groups.forEach(g => g.seekFrame(Math.floor({at} * g.frames)))"
        )
        tab.wait_for("Array.from(document.querySelectorAll('video')).every(v => !v.seeking)")
        tab.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        tab.screenshot(out, full_page=False)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot of a blendkit page (headless).")
    parser.add_argument("page", type=Path, help="the page's index.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1900)
    parser.add_argument("--at", type=float, default=0.5, help="where in the clips (0-1)")
    args = parser.parse_args()
    screenshot(args.page, args.out, args.width, args.height, args.at)
