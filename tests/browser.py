"""A real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, for the
report and dashboard tests: console errors and every URL the page fetched are collected from
the browser's own logs.

The driver binary is given explicitly so Selenium never tries to download one, and Chromium
runs with a fresh profile and its background services off, so the only traffic is the page's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@contextmanager
def chromium() -> Iterator[object]:
    """A Selenium WebDriver for headless Chromium with browser and performance logging."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tinyml-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: object) -> list[str]:
    """Console messages of level SEVERE (errors, failed loads, CSP violations) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def requested_urls(driver: object) -> list[str]:
    """Every URL the browser asked for (from the DevTools Network events) since the last call."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def outside_loopback(urls: list[str]) -> list[str]:
    """The URLs that would leave the machine: anything but file:, data: and loopback hosts."""
    bad = []
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme in ("file", "data", "about", "blob", "chrome", "chrome-untrusted", "devtools"):  # local or internal
            continue
        if parsed.hostname not in LOOPBACK:
            bad.append(url)
    return bad


def save_screenshot(driver: object, name: str, tmp: Path) -> Path:
    """A PNG of the viewport in ``tmp``; with TINYML_DOC_SCREENSHOTS=1 also docs/images/NAME."""
    path = tmp / name
    driver.save_screenshot(str(path))
    if os.environ.get("TINYML_DOC_SCREENSHOTS") == "1":
        (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, ROOT / "docs" / "images" / name)
    return path
