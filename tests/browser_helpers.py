"""Headless Chromium from Debian driven by Selenium (chromedriver from Debian too; Selenium
Manager is never asked to download anything). No tests here."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1500,850"]


def require_browser() -> None:
    """Skip (locally) or fail (CI sets LIQMAP_REQUIRE_BROWSER=1) without Chromium + driver."""
    have = all(shutil.which(p) or os.path.exists(p) for p in (CHROMIUM, CHROMEDRIVER))
    try:
        import selenium  # noqa: F401
    except ImportError:
        have = False
    if have:
        return
    if os.environ.get("LIQMAP_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium, chromedriver and selenium are required (LIQMAP_REQUIRE_BROWSER=1)"
                    "; run `make browser`")
    pytest.skip("headless Chromium/chromedriver/selenium not installed (`make browser`)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver; quit at the end."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
