"""The room's read-only live page: two GETs on loopback, every write refused, and in headless
Chromium a page that draws the snapshot and follows it as it changes.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and is skipped, saying
so, without them. Its screenshot goes to docs/images/ only when SHAKEOUT_DOCS_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from screens import chromium, docs_shots

from shakeout.gameday.page import LivePage
from shakeout.gameday.snapshot import Snapshot, sample, write

BACK = "zone b is back <img src=x>"


def _fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, Message, bytes]:
    """Status, headers and body of one request, an HTTP error status included."""
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The page's URL and its live file (not written yet)."""
    live = tmp_path / "gameday" / "live.json"
    with LivePage(live) as page:
        yield page.url, live


def test_the_page_is_html_without_any_control(served: tuple[str, Path]) -> None:
    url, _ = served
    status, headers, body = _fetch(url)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "form-action 'none'" in headers["Content-Security-Policy"]
    page = body.decode().lower()
    assert "<html" in page
    for control in ("<form", "<button", "<input", "<select", "<textarea"):
        assert control not in page, f"the read-only page has a {control}>"
    assert "innerhtml" not in page, "data is written with textContent only"


def test_the_snapshot_is_the_live_file_and_never_cached(served: tuple[str, Path]) -> None:
    url, live = served
    status, headers, body = _fetch(url + "live.json")
    assert status == 503
    assert json.loads(body) == {"error": "no snapshot yet"}
    assert headers["Cache-Control"] == "no-store"
    write(live, sample())
    status, headers, body = _fetch(url + "live.json")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert body == live.read_bytes()
    status, headers, body = _fetch(url + "live.json", method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) == live.stat().st_size


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["", "live.json"])
def test_writes_are_refused(served: tuple[str, Path], method: str, path: str) -> None:
    url, live = served
    write(live, sample())
    before = live.read_bytes()
    status, headers, _ = _fetch(url + path, method=method, data=b'{"state": "aborted"}')
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert live.read_bytes() == before


def test_an_unknown_path_is_not_found(served: tuple[str, Path]) -> None:
    url, _ = served
    assert _fetch(url + "live.json/../../etc/passwd")[0] == 404
    assert _fetch(url + "index.html")[0] == 404


def test_it_binds_loopback_and_frees_its_port(tmp_path: Path) -> None:
    page = LivePage(tmp_path / "live.json")
    with pytest.raises(RuntimeError, match="not served"):
        _ = page.url
    url = page.start()
    try:
        assert urlsplit(url).hostname == "127.0.0.1"
        assert _fetch(url)[0] == 200
        with pytest.raises(RuntimeError, match="already served"):
            page.start()
    finally:
        page.stop()
    with pytest.raises(urllib.error.URLError):
        _fetch(url)


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def test_the_page_draws_the_drill_and_follows_it(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    def text_of(driver: WebDriver, selector: str) -> str:
        return str(driver.find_element(By.CSS_SELECTOR, selector).text)

    live = tmp_path / "live.json"
    first = sample()
    write(live, first)
    shot = docs_shots(tmp_path) / "gameday-page.png"
    with chromium(1280, 720) as driver:
        # The window's size includes the browser's chrome: fix the page's own to the projector's.
        viewport = {"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", viewport)
        # The page redraws only a new document, so elements found between writes stay valid.
        with LivePage(live) as page:
            wait = WebDriverWait(driver, 30)
            driver.get(page.url)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".objective")) == 3)
            assert text_of(driver, "#scenario") == first["scenario"]
            assert text_of(driver, "#state") == "running"
            assert text_of(driver, "#phase") == "fault"
            assert text_of(driver, "#countdown") == "ends in 12 s"
            assert text_of(driver, "#hold") == "held +10 s of 60 s cap"
            red = driver.find_element(By.CSS_SELECTOR, '.objective[data-light="red"]')
            assert red.text.startswith("[FAIL] browse error rate < 1%")
            amber = driver.find_element(By.CSS_SELECTOR, '.objective[data-light="amber"]')
            assert "[NEAR]" in amber.text
            assert "burn 4.2x" in amber.text
            journeys = driver.find_elements(By.CSS_SELECTOR, ".journey")
            assert [j.get_attribute("data-name") for j in journeys] == ["browse", "checkout"]
            assert journeys[1].find_elements(By.CSS_SELECTOR, "svg.spark.errors rect")
            assert "ZoneDown firing" in text_of(driver, "#alerts li.firing")
            assert text_of(driver, "#updated") == f"last update: {_clock(first['now'])}"

            after = _recovered(first)
            write(live, after)
            wait.until(lambda d: text_of(d, "#phase") == "recovery")
            assert not driver.find_element(By.ID, "fault").is_displayed()
            notes = driver.find_elements(By.CSS_SELECTOR, "#notes li .text")
            assert notes[-1].text == BACK, "a note is text, never HTML"
            assert not driver.find_elements(By.CSS_SELECTOR, "#notes img")
            assert text_of(driver, "#updated") == f"last update: {_clock(after['now'])}"

            # The screenshot for the docs: mid-fault again, just updated.
            again = sample(now=first["now"] + 2.0)
            write(live, again)
            wait.until(lambda d: text_of(d, "#updated").endswith(_clock(again["now"])))
            assert driver.find_element(By.ID, "countdown").is_displayed()
            root = "document.documentElement"
            overflow = driver.execute_script(
                f"return [{root}.scrollWidth - innerWidth, {root}.scrollHeight - innerHeight]"
            )
            assert overflow[0] <= 0, "the page scrolls sideways at 1280x720"
            assert overflow[1] <= 0, "the page scrolls down at 1280x720"
            driver.save_screenshot(str(shot))

            # The snapshot stands still: the page says so; the console is gone: likewise.
            wait.until(lambda d: "no new snapshot" in text_of(d, "#stale"))
            page.stop()
            wait.until(lambda d: "cannot read" in text_of(d, "#stale"))
    assert shot.stat().st_size > 10_000


def _recovered(before: Snapshot) -> Snapshot:
    """A second later: the fault has ended and the facilitator noted the zone's return."""
    after = sample(now=before["now"] + 1.0)
    after["phase"] = "recovery"
    after["fault"] = None
    after["notes"].append({"t": after["now"] - 0.5, "text": BACK})
    return after
