"""Child-process helpers shared by the platform, the load driver and the fault runner."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to send ``sig`` to the child when its parent dies.

    This is what makes a killed harness (SIGKILL, no cleanup code runs) still end its children:
    the platform's replicas get SIGTERM, and a running ``chaos run`` gets SIGUSR1, which aborts
    its method and still plays its rollbacks. ``prctl`` is looked up here, in the parent, so the
    child only makes one system call between fork and exec (no allocation, no lock taken).
    Returns None where ``prctl`` does not exist (not Linux).
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    signum = int(sig)
    parent = os.getpid()

    def _set() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return _set


def die_with_my_parent(sig: int) -> None:
    """Ask for ``sig`` when this process's parent dies (exit at once if it already has)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))
    if os.getppid() != parent:
        os._exit(1)


def stop_process(process: subprocess.Popen[bytes], sig: int, grace_s: float) -> int:
    """Send ``sig``, wait up to ``grace_s`` for the exit, then SIGKILL; return the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            return process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a log file, indented, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"  (no log at {path})"
    return "\n".join("  " + line for line in text.splitlines()[-lines:]) or "  (empty log)"


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float,
    period_s: float = 0.05,
    on_tick: Callable[[], None] | None = None,
) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        if on_tick is not None:
            on_tick()
        time.sleep(period_s)  # the poll period, under the deadline above
