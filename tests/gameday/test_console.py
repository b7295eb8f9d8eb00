"""The game-day console driven as a facilitator drives it: in a terminal (tmux: keys in with
send-keys, the screen out with capture-pane), against the embedded platform.

Each test runs a real feature from the console: go / no-go, a note, a hold, ending a fault
early, an abort, a quit; then it reads the record and the fault's own journal to check that
every fault was rolled back, and ``no_leftovers`` that no process stayed behind. With
``SHAKEOUT_DOCS_SCREENSHOTS=1`` the screens are kept as SVG in docs/images/ (docs/gameday.md).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from screens import DOCS_IMAGES, ROOT

TMUX = shutil.which("tmux")
pytestmark = [
    pytest.mark.drill,
    pytest.mark.skipif(
        TMUX is None,
        reason="tmux not installed (apt-get install tmux): the console is tested in a terminal",
    ),
]
SCREEN_S = 240.0  # a whole drill fits well within this under one busy core


class Terminal:
    """An 80x24 terminal running one command, on a tmux server of its own."""

    def __init__(self, tmp_path: Path, command: list[str]) -> None:
        self.socket = f"shakeout-{os.getpid()}-{tmp_path.name}"
        env = {
            "SHAKEOUT_RUNTIME_DIR": str(tmp_path / "runtime"),
            "SHAKEOUT_REPORTS_DIR": str(tmp_path / "reports"),
        }
        line = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line += " " + shlex.join(command) + "; echo EXIT=$?; sleep 600"
        self._tmux("new-session", "-d", "-s", "gameday", "-x", "80", "-y", "24", "-c", str(ROOT),
                   line)  # fmt: skip

    def _tmux(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def screen(self, colours: bool = False) -> str:
        """What the terminal shows now (with its escape sequences when ``colours``)."""
        return self._tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", "gameday")

    def scrollback(self) -> str:
        """The screen and the lines that scrolled off it."""
        return self._tmux("capture-pane", "-p", "-S", "-200", "-t", "gameday")

    def keys(self, *keys: str) -> None:
        """Press keys (tmux key names: Enter, Escape, ...)."""
        self._tmux("send-keys", "-t", "gameday", *keys)

    def type(self, text: str) -> None:
        """Type text literally."""
        self._tmux("send-keys", "-t", "gameday", "-l", text)

    def wait(self, what: str | Callable[[str], bool], timeout_s: float = SCREEN_S) -> str:
        """Poll the screen (and scrollback) until ``what`` shows; fail showing the screen."""
        check = what if callable(what) else (lambda text: what in text)
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.scrollback()
            if check(text):
                return text
            if time.monotonic() > deadline:
                pytest.fail(f"the console never showed {what!r}; it shows:\n{self.screen()}")
            time.sleep(0.2)  # polls the terminal under the deadline above

    def exit_code(self) -> int:
        """Wait for the command to end; its exit code."""
        found = re.search(r"EXIT=(\d+)", self.wait(lambda t: "EXIT=" in t))
        assert found is not None
        return int(found.group(1))

    def keep(self, name: str) -> None:
        """The screen as an SVG screenshot in docs/images/ (with SHAKEOUT_DOCS_SCREENSHOTS)."""
        if os.environ.get("SHAKEOUT_DOCS_SCREENSHOTS") != "1":
            return
        console = Console(record=True, width=80, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(Text.from_ansi(self.screen(colours=True).rstrip("\n")))
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        console.save_svg(str(DOCS_IMAGES / f"{name}.svg"), title="shakeout gameday")
        console.file.close()

    def close(self) -> None:
        subprocess.run([TMUX or "tmux", "-L", self.socket, "kill-server"], check=False,
                       capture_output=True)  # fmt: skip


@pytest.fixture
def terminal(tmp_path: Path, no_leftovers: None) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(feature: str | None, select: str | None, *extra: str) -> Terminal:
        command = [sys.executable, "-m", "shakeout.cli", "gameday"]
        if feature is not None:
            command += [f"features/{feature}", "-k", str(select)]
        command += ["--alluredir", str(tmp_path / "allure"), *extra]
        opened.append(Terminal(tmp_path, command))
        return opened[-1]

    yield start
    for term in opened:
        term.close()


def _day(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "reports" / "gameday").glob("*-*/")
    return found


def _fault_summary(day: Path) -> dict[str, object]:
    (scenario,) = sorted((day / "scenarios").glob("*.json"))
    run_dir = Path(json.loads(scenario.read_text())["run_dir"])
    (journal,) = run_dir.glob("journal-*.json")
    data = json.loads(journal.read_text())
    return {
        "rollbacks": [r["status"] for r in data["rollbacks"]],
        "summary": json.loads((run_dir / "summary.json").read_text()),
    }


def test_zone_failure_step_by_step_with_a_note_a_hold_and_an_early_end(
    terminal: Callable[..., Terminal], tmp_path: Path
) -> None:
    term = terminal("zone_failure.feature", "goes")
    plan = term.wait("go / no-go")
    assert "FAULT zone-outage" in plan
    assert "steady state: met" in plan
    term.keep("gameday-plan")
    url = re.search(r"room page \(read-only\): (http://127\.0\.0\.1:\d+/)", plan)
    assert url is not None, plan
    with urllib.request.urlopen(url.group(1) + "live.json", timeout=10) as answer:
        assert json.load(answer)["state"] == "waiting"
    term.keys("g")
    term.wait("WAITING: go: next")
    term.keys("n")
    term.type("on-call paged by ZoneDown")
    term.keys("Enter")
    term.wait("on-call paged by ZoneDown")
    term.keys("g")
    term.wait("ends in")
    term.keys("h")
    term.wait("held +10 s")
    term.keep("gameday-console")
    term.keys("e")
    term.wait("Runbook checklist")
    for number in range(1, 5):
        term.wait(f"{number}/4 ")
        term.keys("p")
    code = term.exit_code()
    day = _day(tmp_path)
    record = (day / "record.md").read_text()
    fault = _fault_summary(day)
    assert fault["rollbacks"] == ["succeeded"]
    assert fault["summary"]["faults"][0]["ended_early"] == "ended early by the facilitator"
    assert json.loads((day / "hold.json").read_text())["extra_s"] == 10.0
    for expected in ("note: on-call paged by ZoneDown", "hold: +10 s (10 of 60 s)",
                     "end-fault: zone-outage ended early", "| the zone came back without a "
                     "manual step | pass |"):  # fmt: skip
        assert expected in record
    outcome = json.loads(sorted((day / "scenarios").glob("*.json"))[0].read_text())["outcome"]
    assert (code == 0) == (outcome == "pass"), (code, outcome)
    if os.environ.get("SHAKEOUT_DOCS_SCREENSHOTS") == "1":  # docs/gameday.md's sample
        sample = ROOT / "docs" / "gameday-sample"
        sample.mkdir(exist_ok=True)
        for path in [day / "record.md", *day.glob("*-chart.png")]:
            shutil.copyfile(path, sample / path.name)


def test_dependency_brownout_aborted_mid_fault_is_rolled_back(
    terminal: Callable[..., Terminal], tmp_path: Path
) -> None:
    term = terminal("dependency.feature", "errors", "--large")
    term.wait("go / no-go")
    term.keys("g")
    term.wait("WAITING: go: next")
    term.keys("g")
    term.wait("ends in")
    term.keep("gameday-console-large")
    term.keys("a")
    term.wait("Runbook checklist")
    for key, number in zip("pfs", range(1, 4), strict=True):
        term.wait(f"{number}/3 ")
        term.keys(key)
    assert term.exit_code() == 1
    day = _day(tmp_path)
    record = (day / "record.md").read_text()
    assert _fault_summary(day)["rollbacks"] == ["succeeded"]
    assert "Outcome: **aborted**" in record
    assert "abort: the facilitator aborted" in record
    assert "| on-call saw deferred payments rather than failed checkouts | fail |" in record
    assert "game day FAIL" in term.scrollback()


def test_quit_mid_fault_of_a_drill_started_from_pytest_leaves_no_fault_behind(
    terminal: Callable[..., Terminal], tmp_path: Path
) -> None:
    """``pytest FEATURE --gameday DIR`` runs the drill; ``shakeout gameday --attach DIR`` is
    its console. Quitting mid-fault interrupts that pytest, which plays the rollbacks."""
    day = tmp_path / "reports" / "gameday" / "from-pytest"
    env = {
        **os.environ,
        "SHAKEOUT_RUNTIME_DIR": str(tmp_path / "runtime"),
        "SHAKEOUT_REPORTS_DIR": str(tmp_path / "reports"),
    }
    command = [sys.executable, "-m", "pytest", "features/dependency.feature", "-k", "slows"]
    command += ["-p", "no:cacheprovider", "-q", "--gameday", str(day)]
    with (tmp_path / "pytest.log").open("w") as log:
        drill = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (day / "drill.pid").exists():  # the plugin writes it as the session starts
            assert drill.poll() is None, (tmp_path / "pytest.log").read_text()
            assert time.monotonic() < deadline, "pytest --gameday never started"
            time.sleep(0.2)  # polls for the file under the deadline above
        term = terminal(None, None, "--attach", str(day))
        term.wait("go / no-go")
        term.keys("g")
        term.wait("WAITING: go: next")
        term.keys("g")
        term.wait("ends in")
        term.keys("q")
        assert term.exit_code() == 1
        assert drill.wait(timeout=120) == 2  # interrupted, as Ctrl-C
    finally:
        if drill.poll() is None:
            drill.send_signal(signal.SIGINT)
            drill.wait(timeout=120)
    assert _fault_summary(day)["rollbacks"] == ["succeeded"]
    record = (day / "record.md").read_text()
    assert "abort: the facilitator quit" in record
    assert "| not asked |" in record  # quitting asks nothing more
