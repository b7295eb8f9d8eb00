"""``shakeout gameday FEATURE``: the facilitator's console.

The drills run in a pytest child of their own session (``--gameday DIR``, see
:mod:`shakeout.gameday.live`): Chaos Toolkit's signal handlers and Locust's gevent stay out of
this process, and a key read here never races the drill. This process shows the live view
(:mod:`shakeout.gameday.view`, on ``rich``), serves the room's read-only page
(:mod:`shakeout.gameday.page`), turns keys into controls, and writes the record
(:mod:`shakeout.gameday.record`) once the drills ended.

Safe by construction: abort (``a``, or Ctrl-C) is a SIGINT to the drill process, which plays
the fault's rollbacks exactly as Ctrl-C in a plain run; quit (``q``) aborts, then waits for
the drill process to end; a console killed outright takes the drill process with it through
PDEATHSIG (SIGINT again), so every path ends with the rollbacks played.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from shakeout._process import die_with_parent
from shakeout.errors import ConfigError
from shakeout.gameday import record, snapshot, view
from shakeout.gameday.live import PID_FILE, send
from shakeout.gameday.page import LivePage
from shakeout.plan import plan_feature
from shakeout.target import load_target_file

KEYS = "g go · x no-go · n note · h hold · e end fault · a abort · q quit"
QUIT_WAIT_S = 180.0  # rollbacks of a fault and the drill's own teardown fit well within
REFRESH_S = 0.25


@dataclass
class Options:
    """What ``shakeout gameday`` was given (``attach``: drive a drill process started with
    ``pytest --gameday DIR`` instead of starting one)."""

    feature: Path | None
    target: Path
    select: str | None = None  # pytest's -k expression
    auto: bool = False
    large: bool = False
    no_color: bool = False
    page: bool = True
    port: int = 0
    reports: Path = Path("reports")
    alluredir: Path | None = None
    attach: Path | None = None


class _Attached:
    """A drill process started elsewhere (``pytest ... --gameday DIR``), known by the pid it
    wrote in DIR: the few calls of ``subprocess.Popen`` the console makes."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="utf-8")
        except OSError:
            return 0
        # "pid (comm) state ...": an exited process its parent has not reaped yet is a zombie.
        return 0 if stat.rpartition(")")[2].split()[0] == "Z" else None

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.2)  # polls the process under the deadline above
        return 0


@contextlib.contextmanager
def _keys_immediate() -> Iterator[None]:
    """Keys arrive one by one, unechoed (cbreak: Ctrl-C still signals)."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _key(timeout_s: float) -> str | None:
    """The next key within ``timeout_s``: None when none came, "" when input has ended."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    if not ready:
        return None
    data = os.read(sys.stdin.fileno(), 1)
    return data.decode("utf-8", "replace")


def plan_view(live: snapshot.Snapshot, page_url: str | None, height: int) -> RenderableType:
    """Before the first go, in ``height`` rows: the question, the faults and their reach, the
    steps up to the first check, what will be judged, runbooks and the room's page."""
    plan: dict[str, Any] = live.get("plan") or {}  # type: ignore[assignment]
    steps = list(plan.get("steps", []))
    first_check = next((i for i, s in enumerate(steps) if s.startswith("Then ")), len(steps))
    rows: list[tuple[str, str]] = [
        (f"GAME DAY · {live['feature']}", "bold"),
        (f"{live['scenario']} · target {live['target']}", ""),
        (f"steady state: {plan.get('steady_state', '?')}", ""),
        (str(live["prompt"]), "bold reverse"),
        ("g go · x no-go · q quit", "dim"),
        ("", ""),
    ]
    for fault in plan.get("faults", []):
        rows += [(f"FAULT {fault['word']}: {fault['step']}", "bold"), (f"  {fault['reach']}", "")]
    rows.append(("steps:", "bold"))
    rows += [(f"  {step}", "") for step in steps[:first_check]]
    checks = len(steps) - first_check
    rows.append((f"  then {checks} checks", ""))
    rows += [(f"runbook: {link}", "") for link in plan.get("runbooks", [])]
    if plan.get("checklist"):
        rows.append((f"runbook checklist: {len(plan['checklist'])} items, asked at the end", ""))
    if page_url:
        rows.append((f"room page (read-only): {page_url}", ""))
    lines = [
        Text(text, style=style, no_wrap=True, overflow="ellipsis") for text, style in rows[:height]
    ]
    return Group(*lines)


class GameDayConsole:
    """One game day: the drill process, the view, the controls and the record."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.console = Console(no_color=options.no_color or None, highlight=False)
        self.child: subprocess.Popen[bytes] | _Attached | None = None
        self.aborted = False
        self.typing: str | None = None  # a note being typed
        self.controls: list[dict[str, object]] = []
        self._directory: Path | None = None
        self._stdin_open = True

    def check(self) -> None:
        """Bad input is refused before anything starts (ConfigError names file and line)."""
        options = self.options
        if options.attach is not None:
            if not (options.attach / PID_FILE).is_file():
                raise ConfigError(
                    f"{options.attach}: no drill process to attach to (start one with `pytest "
                    f"FEATURE --gameday {options.attach}`)"
                )
            return
        if options.feature is None:
            raise ConfigError("name a feature file to run, or --attach DIR")
        target = load_target_file(options.target)
        plans = plan_feature(options.feature, target, str(options.target))
        if not any(p.faults for p in plans):
            raise ConfigError(f"{options.feature}: no scenario injects a fault (nothing to run)")

    def command(self, directory: Path) -> list[str]:
        """The pytest run of the feature, driven through ``directory``."""
        options = self.options
        assert options.feature is not None
        command = [sys.executable, "-m", "pytest", str(options.feature), "-p", "no:cacheprovider"]
        command += ["-q", "--target", str(options.target), "--gameday", str(directory)]
        if options.select:
            command += ["-k", options.select]
        if options.auto:
            command.append("--gameday-auto")
        if options.alluredir is not None:
            command += ["--alluredir", str(options.alluredir)]
        return command

    def run(self) -> int:
        """Run the game day; 0 when it passed (every drill and checklist item)."""
        self.check()
        started = time.time()
        if self.options.attach is not None:
            directory = self.options.attach
            self.child = _Attached(int((directory / PID_FILE).read_text(encoding="utf-8")))
        else:
            assert self.options.feature is not None
            stamp = time.strftime("%Y%m%d-%H%M%S")
            directory = self.options.reports / "gameday" / f"{stamp}-{self.options.feature.stem}"
            directory.mkdir(parents=True, exist_ok=True)
            with (directory / "drill.log").open("wb") as log:
                self.child = subprocess.Popen(
                    self.command(directory),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # the terminal's Ctrl-C is the console's to handle
                    preexec_fn=die_with_parent(signal.SIGINT),  # noqa: PLW1509
                )
        previous = signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        page = LivePage(directory / snapshot.LIVE_FILE, port=self.options.port)
        url = page.start() if self.options.page else None
        try:
            self._watch(directory, url)
        finally:
            self._finish_child()
            page.stop()
            signal.signal(signal.SIGINT, previous)
        return self._close(directory, started)

    # -- the live loop -------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self.abort(f"signal {signal.Signals(signum).name}")

    def abort(self, why: str) -> None:
        """Abort the drill: a SIGINT to the drill process (its rollbacks play)."""
        child = self.child
        if child is None or child.poll() is not None or self.aborted:
            return
        self.aborted = True
        self._control("abort", why)
        child.send_signal(signal.SIGINT)

    def _control(self, kind: str, detail: str = "") -> None:
        self.controls.append({"t": time.time(), "control": kind, "detail": detail})
        directory = self._directory
        if directory is not None:
            send(directory, kind, detail)

    def _watch(self, directory: Path, url: str | None) -> None:
        self._directory = directory
        live_file = directory / snapshot.LIVE_FILE
        assert self.child is not None
        with (
            _keys_immediate(),
            Live(console=self.console, screen=True, auto_refresh=False) as screen,
        ):
            while self.child.poll() is None:
                current = snapshot.read(live_file)
                screen.update(self._render(current, url), refresh=True)
                if not self._stdin_open:
                    time.sleep(REFRESH_S)  # no keyboard: the view still refreshes
                    continue
                key = _key(REFRESH_S)
                if key == "":
                    self._stdin_open = False
                elif key is not None:
                    self._on_key(key, current)

    def _render(self, current: snapshot.Snapshot | None, url: str | None) -> RenderableType:
        keys = KEYS if self.typing is None else f"note> {self.typing}_  (Enter adds, Esc drops)"
        if self.aborted:
            keys = "aborting: the fault's rollbacks are playing…"
        if current is not None and current.get("state") == "waiting" and current["step"] is None:
            return plan_view(current, url, self.console.size.height)
        size = self.console.size
        return view.render(
            current, large=self.options.large, keys=keys, width=size.width, height=size.height
        )

    def _on_key(self, key: str, current: snapshot.Snapshot | None) -> None:
        if self.typing is not None:
            if key in ("\r", "\n"):
                if self.typing.strip():
                    self._control("note", self.typing.strip())
                self.typing = None
            elif key == "\x1b":
                self.typing = None
            elif key in ("\x7f", "\b"):
                self.typing = self.typing[:-1]
            elif key.isprintable():
                self.typing += key
            return
        waiting = current is not None and current.get("state") == "waiting"
        if key == "g" and waiting:
            self._control("go")
        elif key == "x" and waiting:
            self._control("no-go")
        elif key == "n":
            self.typing = ""
        elif key == "h":
            self._control("hold")
        elif key == "e":
            self._control("end-fault")
        elif key == "a":
            self.abort("the facilitator aborted")
        elif key == "q":
            self._control("quit")
            self.abort("the facilitator quit")

    def _finish_child(self) -> None:
        """However the loop ended, the drill process ends with its rollbacks played."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        self.abort("the console is closing")
        try:
            child.wait(timeout=QUIT_WAIT_S)
        except subprocess.TimeoutExpired:
            child.terminate()  # its chaos guard still plays the rollbacks (SIGUSR1 on exit)
            child.wait(timeout=30)

    # -- the end -------------------------------------------------------------------------

    def _close(self, directory: Path, started: float) -> int:
        scenarios = record.load_scenarios(directory)
        items: list[str] = []
        if scenarios:
            items = list(scenarios[0].get("plan", {}).get("checklist", []))
        answers = self._checklist(items) if items and not self._quit() else {}
        feature = self.options.feature or (scenarios[0]["feature_file"] if scenarios else "?")
        day = record.GameDay(
            feature_file=str(feature),
            target=str(scenarios[0]["target"]) if scenarios else str(self.options.target),
            started_at=started,
            ended_at=time.time(),
            scenarios=scenarios,
            checklist={item: answers.get(item, "not asked") for item in items},
            console_controls=[c for c in self.controls if c["control"] in ("abort", "quit")],
        )
        path, consecutive = record.write(
            day, directory, self.options.reports / "gameday" / record.HISTORY_FILE
        )
        if self.options.alluredir is not None:
            record.attach_to_allure(day, path, self.options.alluredir)
        verdict = "PASS" if day.passed else "FAIL"
        self.console.print(f"game day {verdict}: record {path}")
        self.console.print(f"consecutive passing game days of {day.feature_file}: {consecutive}")
        return 0 if day.passed else 1

    def _quit(self) -> bool:
        return any(c["control"] == "quit" for c in self.controls)

    def _checklist(self, items: list[str]) -> dict[str, str]:
        """Ask the room about each runbook item: pass, fail or skip (one key each)."""
        self.console.print("\n[bold]Runbook checklist[/] (p pass · f fail · s skip)")
        answers: dict[str, str] = {}
        with _keys_immediate():
            for number, item in enumerate(items, start=1):
                self.console.print(f"{number}/{len(items)} {item}? ", end="")
                key = None
                while key not in ("p", "f", "s"):
                    key = _key(3600.0) if self._stdin_open else ""
                    if not key:  # no answer within an hour, or no keyboard: skipped
                        key = "s"
                answers[item] = {"p": "pass", "f": "fail", "s": "skipped"}[key]
                self.console.print(answers[item])
        return answers
