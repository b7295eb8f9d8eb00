"""The built HTML report as a reviewer sees it: headless Chromium opens a drill and finds its
name, its chart and its Chaos Toolkit journal. The screenshot is kept under reports/.

Needs Debian's ``chromium`` and ``chromium-driver`` and the pinned Allure CLI (``npm ci``) with
Java; CI installs all of them (.ci/run), elsewhere the test is skipped saying what is missing.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from screens import chromium

from conftest import ROOT, SampleRun
from shakeout.report.build import build_html, missing_tools

SHOTS = ROOT / "reports" / "browser"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def served(sample: SampleRun, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The sample drills' report, built with the pinned CLI and served on loopback.

    Served over HTTP because the report loads its data with fetch(), which file:// refuses.
    """
    missing = missing_tools(ROOT)
    if missing:
        pytest.skip("cannot build the HTML report: missing " + "; ".join(missing))
    results = tmp_path / "allure-results"
    shutil.copytree(sample.results, results)
    report = tmp_path / "allure-report"
    built = build_html(results, report, ROOT)
    assert built.built, built.message
    handler = functools.partial(_Quiet, directory=str(report))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/index.html", report
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def _screenshot(driver: Any, path: Path) -> Iterator[None]:
    """A screenshot however the block ends (what a reviewer would have seen)."""
    try:
        yield
    finally:
        driver.save_screenshot(str(path))


def test_drill_chart_and_journal_are_visible(served: tuple[str, Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, report = served
    # The failed drill: the one a reviewer opens first.
    case = next(
        json.loads(p.read_text("utf-8"))
        for p in sorted((report / "data" / "test-cases").glob("*.json"))
        if json.loads(p.read_text("utf-8"))["status"] == "failed"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium(1400, 2000) as driver, _screenshot(driver, SHOTS / "drill.png"):
        wait = WebDriverWait(driver, 30)
        driver.get(f"{url}#testresult/{case['uid']}")
        wait.until(ec.visibility_of_element_located((By.XPATH, "//*[text()='drill chart']")))
        body = driver.find_element(By.TAG_NAME, "body").text
        assert case["name"] in body
        assert "SLO breach (resilience regression)" in body  # its category
        assert "runbook" in body

        driver.find_element(By.XPATH, "//*[text()='drill chart']").click()
        chart = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "img[src*='attachment']"))
        )
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", chart) > 0)
        assert chart.size["width"] > 200, "the chart is drawn too small to read"

        journal = "//*[starts-with(text(), 'Chaos Toolkit journal')]"
        driver.find_element(By.XPATH, journal).click()
        wait.until(lambda d: '"rollbacks"' in d.find_element(By.TAG_NAME, "body").text)
        driver.execute_script("arguments[0].scrollIntoView()", chart)
    assert (SHOTS / "drill.png").stat().st_size > 10_000
