"""Run a Chaos Toolkit experiment with ``chaos run`` in its own process and read its journal.

chaoslib's ``Runner`` installs signal handlers, so it belongs on a main thread: its own
process is the clean choice for a harness. The run always uses ``--rollback-strategy always``.
To abort (Ctrl-C in the harness, a failed step, or the harness being killed outright), the
process gets SIGUSR1, which ends the method at once and still plays the rollbacks; SIGTERM
would only fail the running activity and report "completed", hiding the abort. A guard
process (:mod:`shakeout.chaos._guard`) makes sure that SIGUSR1 arrives exactly once.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shakeout._process import die_with_parent, stop_process, tail, wait_for
from shakeout.errors import ConfigError, FaultError

ABORT_SIGNAL = signal.SIGUSR1


def chaos_command() -> list[str]:
    """The ``chaos`` CLI of this environment."""
    beside = Path(sys.executable).with_name("chaos")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("chaos")
    if found is None:
        raise FaultError("the Chaos Toolkit CLI 'chaos' is not installed in this environment")
    return [found]


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    stamp = datetime.fromisoformat(value)
    if stamp.tzinfo is None:  # chaoslib writes naive UTC timestamps
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


@dataclass(frozen=True)
class ActivityRun:
    """One activity of the journal (method step or rollback)."""

    name: str
    kind: str
    status: str
    start: float | None
    end: float | None
    output: Any = None
    exception: str | None = None


@dataclass(frozen=True)
class FaultRun:
    """What an experiment did, read from its journal."""

    experiment: Path
    journal_path: Path
    status: str
    deviated: bool
    exit_code: int
    method: list[ActivityRun] = field(default_factory=list)
    rollbacks: list[ActivityRun] = field(default_factory=list)
    interrupted: bool = False
    abort_reason: str | None = None
    aborted_at: float | None = None
    ended_early: str | None = None  # who ended it before its time (a game day's facilitator)

    def as_summary(self) -> dict[str, Any]:
        """This run as it is kept in a drill's ``summary.json``."""
        return {
            "experiment": str(self.experiment),
            "status": self.status,
            "deviated": self.deviated,
            "fault_start": self.fault_start,
            "fault_end": self.fault_end,
            "rollbacks_ok": self.rollbacks_ok,
            "abort_reason": self.abort_reason,
            "aborted_at": self.aborted_at,
            "ended_early": self.ended_early,
            "rolled_back_at": max((a.end or 0.0 for a in self.rollbacks), default=None),
            "journal": str(self.journal_path),
        }

    @property
    def fault_start(self) -> float | None:
        """When the first method activity began (the fault window opens)."""
        starts = [a.start for a in self.method if a.start is not None]
        return min(starts) if starts else None

    @property
    def fault_end(self) -> float | None:
        """When the fault was reverted: the end of the method's ``revert-*`` activities, or of
        the rollbacks when the method does not revert the fault itself."""
        reverts = [a.end for a in self.method if a.name.startswith("revert-") and a.end]
        if reverts:
            return max(reverts)
        ends = [a.end for a in (self.rollbacks or self.method) if a.end is not None]
        return max(ends) if ends else None

    @property
    def rollbacks_ok(self) -> bool:
        """True when every rollback activity succeeded."""
        return all(a.status == "succeeded" for a in self.rollbacks)

    def summary(self) -> str:
        """One line for messages and logs."""
        failed = [a.name for a in self.rollbacks if a.status != "succeeded"]
        text = f"experiment {self.experiment.name}: status {self.status}"
        if self.deviated:
            text += ", steady state deviated"
        if failed:
            text += f", FAILED rollbacks: {', '.join(failed)}"
        return text


def _activities(runs: list[dict[str, Any]]) -> list[ActivityRun]:
    return [
        ActivityRun(
            name=run["activity"].get("name", "?"),
            kind=run["activity"].get("type", "?"),
            status=run.get("status", "?"),
            start=_timestamp(run.get("start")),
            end=_timestamp(run.get("end")),
            output=run.get("output"),
            exception="".join(run["exception"])[-500:] if run.get("exception") else None,
        )
        for run in runs
    ]


def read_journal(experiment: Path, journal_path: Path, exit_code: int) -> FaultRun:
    """Parse a Chaos Toolkit journal."""
    try:
        journal = json.loads(journal_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FaultError(f"{experiment}: no readable journal at {journal_path}: {exc}") from exc
    return FaultRun(
        experiment=experiment,
        journal_path=journal_path,
        status=journal.get("status", "unknown"),
        deviated=bool(journal.get("deviated")),
        exit_code=exit_code,
        method=_activities(journal.get("run", [])),
        rollbacks=_activities(journal.get("rollbacks", [])),
    )


def validate(experiment: Path, run_dir: Path) -> None:
    """``chaos validate`` the experiment; a bad file fails before anything is touched."""
    if not experiment.is_file():
        raise ConfigError(f"{experiment}: experiment file not found")
    result = subprocess.run(
        [
            *chaos_command(),
            "--no-version-check",
            "--log-file",
            str(run_dir / "chaos-validate.log"),
            "validate",
            str(experiment),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise ConfigError(
            f"{experiment}: not a valid Chaos Toolkit experiment:\n"
            + tail(run_dir / "chaos-validate.log", 10)
        )


def _var(key: str, value: str | float | int) -> str:
    if isinstance(value, bool | str):
        return f"{key}={value}"
    kind = "int" if isinstance(value, int) else "float"
    return f"{key}:{kind}={value}"


def run_experiment(
    experiment: Path,
    run_dir: Path,
    variables: dict[str, str | float | int] | None = None,
    timeout_s: float = 600.0,
    on_tick: Callable[[], None] | None = None,
    should_abort: Callable[[], str | None] | None = None,
) -> FaultRun:
    """Run an experiment to its end with rollbacks always played; abort cleanly if interrupted.

    An exception in the caller while this waits (KeyboardInterrupt included) aborts the run
    with SIGUSR1, waits for its rollbacks, then propagates. ``should_abort`` is polled every
    0.1 s; when it returns a reason (a stop condition), the run is aborted the same way and the
    reason is kept in the result.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    journal = run_dir / f"journal-{experiment.stem}.json"
    log = run_dir / f"chaos-{experiment.stem}.log"
    command = [
        sys.executable,
        "-m",
        "shakeout.chaos._guard",
        *chaos_command(),
        "--no-version-check",
        "--log-file",
        str(log),
        "run",
        "--rollback-strategy",
        "always",
        "--journal-path",
        str(journal),
    ]
    for key, value in (variables or {}).items():
        command += ["--var", _var(key, value)]
    command.append(str(experiment))
    with (run_dir / f"chaos-{experiment.stem}.out").open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=die_with_parent(  # noqa: PLW1509 (see die_with_parent)
                ABORT_SIGNAL
            ),
        )
    interrupted = False
    abort_reason: str | None = None
    aborted_at: float | None = None

    def done() -> bool:
        nonlocal abort_reason, aborted_at
        if process.poll() is not None:
            return True
        if should_abort is not None and abort_reason is None:
            abort_reason = should_abort()
            if abort_reason is not None:
                aborted_at = time.time()
                process.send_signal(ABORT_SIGNAL)
        return False

    try:
        if not wait_for(done, timeout_s, 0.05, on_tick):
            interrupted = True
            stop_process(process, ABORT_SIGNAL, grace_s=60.0)
        code = process.wait()
    except BaseException:
        stop_process(process, ABORT_SIGNAL, grace_s=60.0)
        raise
    if not journal.exists():
        raise FaultError(
            f"{experiment}: 'chaos run' ended (exit code {code}) without a journal; log:\n"
            + tail(log)
        )
    result = read_journal(experiment, journal, code)
    if interrupted or abort_reason:
        changes = {"interrupted": True, "abort_reason": abort_reason, "aborted_at": aborted_at}
        result = FaultRun(**{**result.__dict__, **changes})
    return result
