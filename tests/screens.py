"""Screens for tests that look at what a person sees: docs screenshots and headless Chromium.

A module of its own (not ``conftest``): each test folder's conftest is imported as
``conftest``, so helpers shared across folders live here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS_IMAGES = ROOT / "docs" / "images"


def docs_shots(tmp_path: Path) -> Path:
    """Where a test keeps its screenshots: docs/images/ with SHAKEOUT_DOCS_SCREENSHOTS=1 (the
    docs' own, retaken on purpose), else a throwaway folder."""
    if os.environ.get("SHAKEOUT_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


def browser_missing() -> str | None:
    """Why headless Chromium cannot run here (Debian's chromium and chromium-driver), or None."""
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install chromium chromium-driver)"
    return None


@contextlib.contextmanager
def chromium(width: int, height: int) -> Iterator[Any]:
    """Debian's headless Chromium through its own driver (never selenium-manager's download);
    skips the test, saying why, where they are missing."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    service = Service(executable_path=str(shutil.which("chromedriver")))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
