"""Headless Chromium driven over the DevTools protocol (a websocket, with aiohttp: no Selenium or
Playwright): set a cookie, open a page, wait until a script says it is ready, read the DOM with a
script, save a screenshot.

Chromium is Debian's ``chromium`` package; :func:`find_chromium` installs it where it is missing
and may be (``scripts/install_chromium.sh``), and says why not otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
NAMES = ("chromium", "chromium-browser", "google-chrome")
SAVED: list[Path] = []  # every screenshot of this session, listed at its end (tests/conftest.py)


def find_chromium() -> tuple[str | None, str]:
    """The browser's path, or None and why there is none (after trying to install it)."""
    for name in NAMES:
        if found := shutil.which(name):
            return found, ""
    script = REPO / "scripts" / "install_chromium.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    for name in NAMES:
        if found := shutil.which(name):
            return found, ""
    why = (done.stderr or done.stdout).strip().splitlines()
    return None, f"no headless Chromium: {why[-1] if why else 'scripts/install_chromium.sh failed'}"


class Page:
    """One browser tab, spoken to over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self.ws.receive(timeout=120)).data)
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str, ready: str, timeout: float = 90) -> None:
        """Navigate to ``url`` and wait until the script ``ready`` is true."""
        await self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await self.evaluate(f"Boolean({ready})"):
                    return
            except RuntimeError:
                pass  # the document is being replaced
            await asyncio.sleep(0.5)
        text = await self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise TimeoutError(f"{url} not ready after {timeout:.0f} s ({ready}); the page says: {text!r}")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        SAVED.append(path.resolve())
        return path


@asynccontextmanager
async def browser(chromium: str, width: int = 1600, height: int = 1000):
    """A headless Chromium with one tab of ``width`` x ``height``; stopped on exit."""
    profile = tempfile.mkdtemp(prefix="sms-chromium-")
    process = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",  # as root in a container, Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = await asyncio.to_thread(_devtools_port, process)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                targets = await answer.json()
            target = next(t for t in targets if t.get("type") == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                await page.send("Network.enable")
                await page.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                yield page
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(process: subprocess.Popen) -> int:
    assert process.stderr is not None
    for line in process.stderr:
        if match := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line):
            # Keep reading what it logs, or a full pipe would block the browser.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return int(match.group(1))
    raise RuntimeError(f"chromium exited ({process.wait()}) before listening")


def artefacts() -> Path:
    """Where screenshots go: ``$SMS_ARTEFACTS``, else ``artefacts/`` in the repository (git-ignored)."""
    return Path(os.environ.get("SMS_ARTEFACTS") or REPO / "artefacts")
