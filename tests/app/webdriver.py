"""A headless Chromium driven over the W3C WebDriver protocol by Debian's chromedriver (plain HTTP and JSON: no
client library, nothing downloaded).

The tests use the browser as a person would: open the page, choose files in the file input, click, read what the
page says, download, take a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

# Flags that let Chromium run headless as root on a machine with no GPU and no network besides loopback.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)  # fmt: skip
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) executables, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """One Chromium session in a fresh profile; downloads land in `downloads`."""

    def __init__(self, chromium: str, driver: str, downloads: Path, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="nafft-chromium-")
        port = _free_port()
        self.driver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                self.driver.kill()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.05)
        options = {"binary": chromium, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                                f"--window-size={width},{height}"],
                   "prefs": {"download.default_directory": str(downloads), "download.prompt_for_download": False}}
        session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"/session/{session['sessionId']}"
        # headless Chromium saves downloads only where it is told to, through the DevTools protocol
        self._call("POST", f"{self.session}/goog/cdp/execute", {
            "cmd": "Browser.setDownloadBehavior", "params": {"behavior": "allow", "downloadPath": str(downloads)}})

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"WebDriver {method} {path}: {exc.read().decode(errors='replace')[:500]}") from None

    def get(self, url: str) -> None:
        self._call("POST", f"{self.session}/url", {"url": url})

    def find(self, css: str) -> str:
        return self._call("POST", f"{self.session}/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        found = self._call("POST", f"{self.session}/elements", {"using": "css selector", "value": css})
        return [e[ELEMENT] for e in found]

    def send_keys(self, element: str, text: str) -> None:
        self._call("POST", f"{self.session}/element/{element}/value", {"text": text})

    def click(self, element: str) -> None:
        self._call("POST", f"{self.session}/element/{element}/click", {})

    def text(self, element: str) -> str:
        return self._call("GET", f"{self.session}/element/{element}/text")

    def run(self, script: str, *args):
        """The value of a JavaScript function body run in the page (`args` as `arguments`)."""
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self) -> bytes:
        return base64.b64decode(self._call("GET", f"{self.session}/screenshot"))

    def wait_for(self, script: str, timeout: float = 120, what: str = "the page"):
        """The first truthy value of `script` (a function body), polled until `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.run(script)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{what}: not there after {timeout} s")

    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        except Exception:  # the browser may be gone already; the driver is stopped below either way
            pass
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def wait_for_file(folder: Path, name: str, timeout: float = 60) -> Path:
    """A finished download (Chromium writes NAME.crdownload, then renames it)."""
    deadline = time.monotonic() + timeout
    path = folder / name
    while time.monotonic() < deadline:
        if path.is_file() and not (folder / f"{name}.crdownload").exists() and os.path.getsize(path) > 0:
            return path
        time.sleep(0.05)
    raise AssertionError(f"{name} was not downloaded into {folder} after {timeout} s (found {os.listdir(folder)})")
