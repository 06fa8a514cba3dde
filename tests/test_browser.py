"""The report in a real browser: headless Chromium opens the HTML from disk (file://) and the
test checks it renders with no console errors, every image decoded (naturalWidth > 0), and no
request left the file (offline). A full-page screenshot is kept in the test's pytest temporary
directory (pytest keeps the last three runs' under its basetemp), never in the checkout.

Chromium is driven through the DevTools protocol over `--remote-debugging-pipe` (NUL-separated
JSON on file descriptors 3 and 4), so the test needs only the standard library and the Debian
`chromium` package (installed by scripts/setup.sh in CI).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ttsgraph.report import build_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import make_run  # noqa: E402  (the run-store fixture builder of the report tests)

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser")
                             or "") if p and Path(p).exists()), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]

# Outside CI a machine without Chromium skips; in CI (where scripts/setup.sh installs it) that fails.
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                 reason="Debian package chromium is not installed")]


def _above_nine(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class CdpPipe:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # move the child's ends above 9 so bash's 3<&N / 4>&M redirections cannot clobber them
        to_chrome_r, from_chrome_w = (_above_nine(fd) for fd in (to_chrome_r, from_chrome_w))
        # the browser reads commands on fd 3 and writes replies and events on fd 4
        script = f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self.log = profile / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", script, "bash", executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self._read(timeout)
            self.events.append(e)
            if e.get("method") == method:
                return e

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"no reply from chromium (exit {self.proc.poll()}): "
                                   f"{self.log.read_text(errors='replace')[-1500:]}")
            ready, _, _ = select.select([self._from_chrome], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the debugging pipe (exit {self.proc.poll()}): "
                                       f"{self.log.read_text(errors='replace')[-1500:]}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=10)
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass


def open_in_chromium(html: Path, screenshot: Path) -> dict[str, Any]:
    """Load `html` from disk; return console errors, exceptions, image states and requested URLs."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (scripts/setup.sh installs the Debian package)")
    profile = Path(tempfile.mkdtemp(prefix="ttsgraph-chromium-"))
    cdp = CdpPipe(str(CHROMIUM), profile)
    try:
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.send(f"{domain}.enable", session=session)
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        cdp.events.clear()
        cdp.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        cdp.wait_event("Page.loadEventFired", timeout=60)
        probe = ("JSON.stringify({images: [...document.images].map(i => ({complete: i.complete, "
                 "width: i.naturalWidth, height: i.naturalHeight, alt: i.alt})), title: document.title, "
                 "h2: [...document.querySelectorAll('h2')].map(h => h.textContent), "
                 "details: document.querySelectorAll('details').length, "
                 "scrollHeight: document.documentElement.scrollHeight})")
        value = cdp.send("Runtime.evaluate", {"expression": probe, "returnByValue": True}, session=session)
        page = json.loads(value["result"]["value"])
        shot = cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session,
                        timeout=120)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        events = [e for e in cdp.events if e.get("sessionId") == session]
        console_errors = [e["params"] for e in events if e.get("method") == "Runtime.consoleAPICalled"
                          and e["params"].get("type") in ("error", "assert")]
        exceptions = [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
        log_errors = [e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"
                      and e["params"]["entry"].get("level") == "error"]
        urls = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
        return {"page": page, "console_errors": console_errors, "exceptions": exceptions,
                "log_errors": log_errors, "urls": urls}
    finally:
        cdp.close()
        shutil.rmtree(profile, ignore_errors=True)


def check_rendered(html: Path, shot: Path, min_images: int) -> dict[str, Any]:
    seen = open_in_chromium(html, shot)
    assert seen["console_errors"] == [] and seen["exceptions"] == [] and seen["log_errors"] == [], seen
    images = seen["page"]["images"]
    assert len(images) >= min_images
    broken = [i for i in images if not i["complete"] or i["width"] <= 0 or i["height"] <= 0]
    assert broken == [], broken
    offline = [u for u in seen["urls"] if not u.startswith(("file://", "data:"))]
    assert offline == [], offline
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    return seen


def test_run_report_renders_in_chromium(tmp_path: Path) -> None:
    made = make_run(tmp_path / "run")
    res = build_report(made.path)
    seen = check_rendered(res.html_path, tmp_path / "report-run.png", min_images=5)
    page = seen["page"]
    assert page["title"] == "ttsgraph report: run"
    assert "Selected graph" in page["h2"] and "Agent transcript" in page["h2"]
    assert page["details"] == made.agent_entries
    assert page["scrollHeight"] > 1500  # the whole report laid out, not an error page


def test_bench_report_renders_in_chromium(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    for opt in ("agent-reinforce", "random"):
        make_run(root / "runs" / f"{opt}-seed0", opt, 0, agent=False, test=False)
    res = build_report(root)
    seen = check_rendered(res.html_path, tmp_path / "report-bench.png", min_images=6)
    assert "Optimizers" in seen["page"]["h2"]


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The probe is not vacuous: a corrupt embedded PNG, a console error, an exception and a
    remote request are all seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>'
                   '<img alt="x" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB">'
                   '<img alt="remote" src="http://127.0.0.1:9/remote.png">'
                   '<script>console.error("boom"); null.x;</script></body></html>')
    seen = open_in_chromium(bad, tmp_path / "checks-can-fail.png")
    assert [i["width"] for i in seen["page"]["images"]] == [0, 0]
    assert any("boom" in json.dumps(e) for e in seen["console_errors"])
    assert seen["exceptions"]
    assert "http://127.0.0.1:9/remote.png" in seen["urls"]
