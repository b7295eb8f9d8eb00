"""The shop's load profiles under plain Locust (``python -m locust -f loadprofiles/...``).

What Locust's own options do to a ShakeOut profile: ``-t`` is the run length when
``--shakeout-duration`` is not given, ``-u``/``-r`` are refused before any request, the
options and their defaults are listed by ``--shakeout-help`` and docs/load.md, and the shared
journeys module refuses to run on its own. Locust always runs in its own process (it patches
the process it is imported into with gevent); the only HTTP server is this test's own, on
127.0.0.1, counting what it receives.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shakeout.loadworker.shapes import DEFAULT_DURATION_S, OPTIONS, Spike, Surge

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["steady", "ramp", "spike", "surge", "diurnal"]
HELP_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 45.0  # a 2 s run ends well within it; the 60 s default would not


class _Counting(http.server.BaseHTTPRequestHandler):
    """Answers every GET and POST with ``{}`` and counts them."""

    server: _Server

    def _answer(self) -> None:
        with self.server.lock:
            self.server.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counting)
        self.lock = threading.Lock()
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    """A local HTTP server (listening once this returns) that counts the requests it gets."""
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, name="test-server", daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


@dataclass(frozen=True)
class Result:
    """A finished Locust process."""

    returncode: int
    stdout: str
    stderr: str


def _env() -> dict[str, str]:
    """This environment without SHAKEOUT_* or LOCUST_* settings (the session marker kept, so
    that leftover checks see the process), and wide enough that help lines are not wrapped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHAKEOUT_", "LOCUST_"))}
    env["SHAKEOUT_TEST_SESSION"] = os.environ["SHAKEOUT_TEST_SESSION"]
    env["COLUMNS"] = "1000"
    return env


def _locust(profile: str, *args: str, timeout: float = RUN_TIMEOUT_S) -> Result:
    command = [sys.executable, "-m", "locust", "-f", f"loadprofiles/{profile}.py", *args]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def _headless(profile: str, host: str, *args: str) -> Result:
    return _locust(profile, "--headless", "--host", host, "--only-summary", *args)


def _errors(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("locust: error:")]


# --- the options and their defaults ---------------------------------------------------------


@pytest.mark.parametrize("profile", SHAPES)
def test_shakeout_help_lists_every_option_with_its_default(profile: str) -> None:
    result = _locust(profile, "--shakeout-help", timeout=HELP_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "ShakeOut load:" in result.stdout
    for option in OPTIONS:
        assert option.flag in text
        assert " ".join(option.help.replace("%%", "%").split()) in text, option.flag
    # The spike's timing, spelled out (docs/load.md says the same).
    assert (
        "--shakeout-at <s> spike/surge: seconds into the run when it starts (default: 10)" in text
    )
    assert "--shakeout-window <s> spike: seconds it lasts (default: 10;" in text
    assert "2 for spike, 1.5 for surge" in text
    assert "-t/--run-time if given, else 60" in text


@pytest.mark.xfail(
    strict=True,
    reason="Locust prints --help before it imports the locustfile, where the ShakeOut options "
    "are added (locustio/locust#2917): docs/load.md points to --shakeout-help instead. When "
    "this passes, Locust has fixed it: say so in docs/load.md and drop this mark.",
)
def test_locust_own_help_lists_the_shakeout_options() -> None:
    result = _locust("spike", "--help", timeout=HELP_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert "--shakeout-at" in result.stdout


def test_docs_give_every_option_with_its_default() -> None:
    docs = (ROOT / "docs" / "load.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(): line for line in docs.splitlines() if line.startswith("| `--")
    }
    for option in OPTIONS:
        row = rows.get(f"`{option.flag}`")
        assert row is not None, f"docs/load.md has no row for {option.flag}"
        cells = [cell.strip() for cell in row.split("|")]
        assert cells[2] == f"`{option.env}`", option.flag
        default = cells[3]
        if option.default is None:
            assert default.startswith(f"`-t` if given, else {DEFAULT_DURATION_S:g}"), option.flag
        elif isinstance(option.default, str):
            assert default == f"`{option.default}`", option.flag
        else:
            assert default.split()[0] == option.shown_default, option.flag
    spike = next(line for line in docs.splitlines() if line.startswith("| `spike`"))
    assert spike.endswith(f"| {Spike.at_s:g} s, {Spike.window_s:g} s, {Spike.factor:g}x |")
    surge = next(line for line in docs.splitlines() if line.startswith("| `surge`"))
    assert f"| {Spike.at_s:g} s, {Surge.factor:g}x" in surge


# --- Locust's -u, -r and -t -----------------------------------------------------------------


@pytest.mark.parametrize("profile", SHAPES)
def test_users_are_refused_in_the_open_model_before_any_request(
    profile: str, server: _Server, no_leftovers: None
) -> None:
    result = _headless(profile, server.url, "-u", "10")
    assert result.returncode == 2, result.stderr
    assert _errors(result) == [
        f"locust: error: loadprofiles/{profile}.py: -u/--users does not apply to ShakeOut's "
        "open model, which launches requests on schedule at --shakeout-rate (20 rps here), "
        "with no users to count or spawn; use --shakeout-rate instead"
    ]
    assert server.requests == 0


def test_spawn_rate_is_refused_in_the_open_model(server: _Server, no_leftovers: None) -> None:
    result = _headless("spike", server.url, "-r", "5", "--shakeout-rate", "7")
    assert result.returncode == 2, result.stderr
    [error] = _errors(result)
    assert "-r/--spawn-rate does not apply to ShakeOut's open model" in error
    assert "(7 rps here)" in error
    assert error.endswith("use --shakeout-rate instead")
    assert server.requests == 0


def test_users_and_spawn_rate_are_refused_in_the_closed_model(
    server: _Server, no_leftovers: None
) -> None:
    result = _headless("steady", server.url, "-u", "3", "-r", "3", "--shakeout-model", "closed")
    assert result.returncode == 2, result.stderr
    [error] = _errors(result)
    assert "-u/--users and -r/--spawn-rate do not apply to ShakeOut's closed model" in error
    assert "(--shakeout-rate 20 / --shakeout-user-rps 2 = 10 users at the base rate" in error
    assert error.endswith("use --shakeout-rate (and --shakeout-user-rps) instead")
    assert server.requests == 0


def test_run_time_is_the_run_length_when_no_duration_is_given(
    server: _Server, no_leftovers: None
) -> None:
    result = _headless("spike", server.url, "-t", "2", "--shakeout-rate", "10")
    assert result.returncode == 0, result.stderr
    assert (
        "run length 2 s from -t/--run-time (--shakeout-duration not given), then up to 3 s for "
        "requests in flight" in result.stderr
    )
    assert "Spike(rate=10.0, duration_s=2.0, factor=2.0, at_s=10.0, window_s=10.0)" in (
        result.stderr
    )
    assert "will be ignored" not in result.stderr  # Locust's own warning for shapes
    # 10 rps for 2 s, on schedule (the 60 s default would have sent up to 600).
    assert 10 <= server.requests <= 20


def test_run_time_shorter_than_the_duration_ends_a_closed_model_run(
    server: _Server, no_leftovers: None
) -> None:
    result = _headless(
        "steady",
        server.url,
        "-t",
        "2",
        "--shakeout-duration",
        "30",
        "--shakeout-model",
        "closed",
        "--shakeout-rate",
        "10",
    )
    assert result.returncode == 0, result.stderr
    assert "run length 2 s from -t/--run-time, shorter than --shakeout-duration 30" in (
        result.stderr
    )
    # 5 users pacing at 2 rps each, for 2 s.
    assert 1 <= server.requests <= 20


# --- the journeys module --------------------------------------------------------------------


def test_the_journeys_module_on_its_own_names_the_profiles_that_use_it(
    server: _Server, no_leftovers: None
) -> None:
    result = _headless("_shop", server.url, "-t", "2")
    assert result.returncode == 2, result.stderr
    assert _errors(result) == [
        "locust: error: loadprofiles/_shop.py is a journeys module (ShakeOut users: Shopper), "
        "not a load profile: it has no load shape (ShakeoutShape subclass). Profiles that use "
        f"it: {', '.join(sorted(SHAPES))}; run one of them: locust -f loadprofiles/<profile>.py"
    ]
    assert server.requests == 0
