"""Render a local HTML file in headless Chromium and report what a reader would see.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages
ended by a NUL byte on file descriptors 3 and 4 of the browser), so it needs
nothing but the standard library and Debian's ``chromium``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Chromium executables tried in order.
EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a Chromium executable, or None."""
    return next((p for p in map(shutil.which, EXECUTABLES) if p), None)


@dataclass
class PageCheck:
    """What rendering a page showed."""

    images: list[dict]  # {"alt", "complete", "naturalWidth"}
    headings: list[str]  # h2 texts
    console_errors: list[str]  # console.error calls, uncaught exceptions, error log entries
    requests: list[str] = field(default_factory=list)  # every URL the page requested
    screenshot: Path | None = None


class _Pipe:
    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int):
        self.proc, self.write_fd = proc, write_fd
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, args=(read_fd,), daemon=True).start()

    def _read(self, fd: int) -> None:
        buf = b""
        with os.fdopen(fd, "rb", buffering=0) as f:
            while chunk := f.read(1 << 16):
                buf += chunk
                *done, buf = buf.split(b"\0")
                for raw in done:
                    self.messages.put(json.loads(raw))

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        return self.next_id


def render(html_path: Path, screenshot: Path, *, timeout: float = 60.0, width: int = 1280) -> PageCheck:
    """Open ``html_path`` in headless Chromium, wait for its load event, and check it.

    Raises
    ------
    RuntimeError
        When no Chromium is installed or the page does not load within ``timeout`` [s].
    """
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # Out of the way of 3 and 4, which the child gets them as.
    high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
    high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
    os.close(to_browser_r)
    os.close(from_browser_w)

    def child_fds() -> None:
        os.dup2(high_r, 3)
        os.dup2(high_w, 4)

    events: list[dict] = []
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},900",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_fds,
            pass_fds=(3, 4),
        )
        os.close(high_r)
        os.close(high_w)
        pipe = _Pipe(proc, to_browser_w, from_browser_r)
        deadline = time.monotonic() + timeout

        def wait(pred) -> dict:
            while time.monotonic() < deadline:
                try:
                    msg = pipe.messages.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if pred(msg):
                    return msg
                events.append(msg)
            raise RuntimeError(f"chromium: no answer within {timeout} s rendering {html_path}")

        def call(method: str, params: dict | None = None, session: str | None = None) -> dict:
            i = pipe.send(method, params, session)
            answer = wait(lambda m: m.get("id") == i)
            if "error" in answer:
                raise RuntimeError(f"chromium: {method}: {answer['error']}")
            return answer["result"]

        try:
            target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                call(f"{domain}.enable", session=session)
            call("Page.navigate", {"url": html_path.resolve().as_uri()}, session)
            wait(lambda m: m.get("method") == "Page.loadEventFired")

            def evaluate(expression: str):
                result = call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
                return result["result"]["value"]

            images = evaluate(
                "Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, "
                "naturalWidth: i.naturalWidth}))"
            )
            headings = evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
            height = evaluate("document.documentElement.scrollHeight")
            call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": min(int(height), 16000), "deviceScaleFactor": 1, "mobile": False},
                session,
            )
            shot = call("Page.captureScreenshot", {"format": "png"}, session)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            try:
                call("Browser.close")
            except RuntimeError:
                pass
        finally:
            os.close(to_browser_w)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    while not pipe.messages.empty():
        events.append(pipe.messages.get())
    errors = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", ""))
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return PageCheck(images, headings, errors, requests, screenshot)
