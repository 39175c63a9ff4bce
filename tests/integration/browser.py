"""A real browser for the UI tests: Debian's `chromium`, headless, driven over the DevTools
protocol on a pipe (`--remote-debugging-pipe`: no port, no extra package, nothing downloaded).

`Browser.open` loads a page and waits until the app has drawn the text that proves its data
arrived and the page has stopped changing; `click` presses a tab the way a person would (the
Evidently snapshot's "Tests" tab has no URL of its own); `screenshot` saves what is on screen.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

WINDOW = (1280, 800)  # the screenshots' size: the README shows them as they are
MISSING = (
    "chromium not found on PATH: the browser test needs Debian's chromium; "
    "install it with `make sysdeps` (or `apt-get install -y chromium`)"
)
LOAD_TIMEOUT_S = 90.0  # a page's data on a loaded 2-core machine (MLflow's app is ~10 MB of JS)
SETTLE_S = 1.0  # the DOM unchanged this long: the charts are drawn


def chromium() -> str:
    """The browser's path; RuntimeError(MISSING) when it is not installed."""
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError(MISSING)
    return path


@dataclass(frozen=True)
class Page:
    url: str
    dom: str  # the DOM as the app left it
    text: str  # what it shows (`innerText`), whitespace collapsed


class Browser:
    """`with Browser() as b: page = b.open(url, ready="...")`: one headless chromium, one tab."""

    def __init__(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="xfer-chromium-")
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def fds_3_and_4() -> None:  # where --remote-debugging-pipe reads and writes
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            for target, fd in zip((3, 4), high, strict=True):
                os.dup2(fd, target)  # inheritable, unlike the pipe's own descriptors

        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                # charts drawn without animation: otherwise the DOM may be read mid-animation
                # (Evidently's verdict bars read height 0 in 4 of 5 dumps while the shot
                # showed them)
                "--force-prefers-reduced-motion",
                f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe", "about:blank",
            ],
            preexec_fn=fds_3_and_4, pass_fds=(3, 4), stdout=self._log, stderr=self._log,
        )  # fmt: skip
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id = b"", 0
        tab = next(t for t in self._call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self._call("Target.attachToTarget", targetId=tab["targetId"], flatten=True)[
            "sessionId"
        ]
        self._page(
            "Emulation.setDeviceMetricsOverride",
            width=WINDOW[0], height=WINDOW[1], deviceScaleFactor=1, mobile=False,
        )  # fmt: skip

    def open(self, url: str, ready: str) -> Page:
        """Load `url` and wait until it shows `ready` (proof the app drew its data, whatever the
        test then asserts) and stops changing; AssertionError with what it showed instead."""
        self._page("Page.navigate", url="about:blank")  # nothing of the last page lingers
        self._page("Page.navigate", url=url)
        self._until(lambda: ready in self.text(), f"{url} to show {ready!r}")
        return self.settled(url)

    def click(self, role: str, label: str, then: str) -> Page:
        """Click the element of ARIA `role` whose text is `label`; wait until the page shows
        `then` and stops changing."""
        js = f"""(() => {{
            const el = [...document.querySelectorAll('[role={role}]')]
                .find(e => e.textContent.trim() === {json.dumps(label)});
            if (el) el.click();
            return !!el;
        }})()"""
        assert self._eval(js), f"no {role} {label!r} on the page: {self.text()[:1500]!r}"
        self._until(lambda: then in self.text(), f"the page to show {then!r} after {label!r}")
        return self.settled(self._eval("location.href"))

    def settled(self, url: str) -> Page:
        """The page once its DOM has not changed for SETTLE_S."""
        last, since = self.dom(), time.monotonic()
        deadline = since + LOAD_TIMEOUT_S
        while time.monotonic() - since < SETTLE_S and time.monotonic() < deadline:
            time.sleep(0.2)
            if (now := self.dom()) != last:
                last, since = now, time.monotonic()
        return Page(url, last, self.text())

    def text(self) -> str:
        return " ".join(str(self._eval("document.body ? document.body.innerText : ''")).split())

    def dom(self) -> str:
        return str(self._eval("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> Path:
        """What the window shows now, as a PNG of WINDOW's size."""
        data = self._page("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._call("Browser.close")
            self._proc.wait(timeout=15)
        except (RuntimeError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait(timeout=15)
        finally:
            for fd in (self._in, self._out):
                os.close(fd)
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _until(self, ok: Any, what: str) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not ok():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {LOAD_TIMEOUT_S:.0f}s for {what}: {self.text()[:1500]!r}"
                )
            time.sleep(0.25)

    def _eval(self, expression: str) -> Any:
        """The value of a JS expression in the page (None while a page is being replaced)."""
        try:
            result = self._page("Runtime.evaluate", expression=expression, returnByValue=True)
        except RuntimeError as exc:
            if "context" in str(exc).lower():  # navigating: no document to ask yet
                return None
            raise
        return result.get("result", {}).get("value")

    def _page(self, method: str, **params: Any) -> dict[str, Any]:
        return self._call(method, self._session, **params)

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:  # events in between are not needed: the waits poll the page
            reply = self._recv()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def _recv(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._in], [], [], LOAD_TIMEOUT_S)
            chunk = os.read(self._in, 1 << 20) if ready else b""
            if not chunk:
                self._log.seek(0)
                raise RuntimeError(
                    f"chromium stopped answering (exit code {self._proc.poll()}): "
                    f"{self._log.read()[-2000:].decode(errors='replace')}"
                )
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return dict(json.loads(msg))


# a screenshot of a page that drew something: at least this much of it is not the background,
# with this many colours (measured: a blank page is one colour; the sparsest UI page here, the
# Evidently dashboard, leaves 7 % of the pixels to content in ~640 colours)
MIN_CONTENT_SHARE = 0.03
MIN_COLOURS = 64
MIN_BYTES = 10_000


def check_screenshot(path: Path) -> None:
    """A valid PNG of the browser window that is not a blank page."""
    assert path.is_file(), f"no screenshot at {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as img:
        img.verify()  # the whole file decodes (CRCs, chunks)
    with Image.open(path) as img:
        assert img.size == WINDOW, (path, img.size)
        rgb = img.convert("RGB")
    counts = sorted(rgb.getcolors(maxcolors=WINDOW[0] * WINDOW[1]) or [], reverse=True)
    background_share = counts[0][0] / (WINDOW[0] * WINDOW[1])
    assert 1 - background_share >= MIN_CONTENT_SHARE, (
        f"{path} is nearly blank: {background_share:.1%} is one colour {counts[0][1]}"
    )
    assert len(counts) >= MIN_COLOURS, f"{path} has only {len(counts)} colours"
    assert path.stat().st_size >= MIN_BYTES, f"{path} is only {path.stat().st_size} bytes"


def section(text: str, start: str, end: str) -> str:
    """The part of a page's text from `start` up to `end` (AssertionError if either is missing)."""
    m = re.search(re.escape(start) + "(.*?)" + re.escape(end), text, flags=re.S)
    assert m, f"no text between {start!r} and {end!r} in {text[:1500]!r}"
    return m.group(1)
