"""Shared fixtures of the engine's tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every process this test session starts inherits this marker, so leftover checks only see
# our own processes, not a platform or load run by someone else on the same machine.
SESSION_MARKER = f"SHAKEOUT_TEST_SESSION={uuid.uuid4().hex}"
os.environ["SHAKEOUT_TEST_SESSION"] = SESSION_MARKER.split("=", 1)[1]


_MARKERS = (
    b"shakeout.platform.daemon",
    b"shakeout.services.",
    b"-m\0locust",
    b"--no-version-check",  # chaos run, as shakeout.chaos.runner starts it
    b"shakeout.chaos._guard",
    b"/monitoring/prometheus-data",  # the platform's Prometheus and Alertmanager
    b"/monitoring/alertmanager-data",
)


def shakeout_processes() -> set[int]:
    """Pids of this session's processes that look like ours (platform, replicas, Locust,
    chaos), read from /proc: the full argv and environment, never `ps` output, whose width
    follows COLUMNS or the terminal and can cut the marker off a long command line."""
    marker = SESSION_MARKER.encode()
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker in environ and any(m in argv for m in _MARKERS):
            pids.add(int(proc.name))
    return pids


def describe(pids: set[int]) -> str:
    """One line per pid: its full command line (for a failure message)."""
    lines = []
    for pid in sorted(pids):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            argv = "(gone)"
        lines.append(f"{pid} {argv}")
    return "\n".join(lines)


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated runtime folder for platforms started by one test."""
    path = tmp_path / "runtime"
    monkeypatch.setenv("SHAKEOUT_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail the test if it leaves a platform, replica, Locust or chaos process behind, or a
    platform's cgroups (where the machine lets the platform make them)."""
    from shakeout._process import wait_for
    from shakeout.platform.cgroups import platform_cgroups

    before, cgroups_before = shakeout_processes(), platform_cgroups()
    yield
    wait_for(lambda: not (shakeout_processes() - before), 10.0)
    left = shakeout_processes() - before
    if left:
        raise AssertionError(f"processes left behind:\n{describe(left)}")
    wait_for(lambda: not (platform_cgroups() - cgroups_before), 10.0)
    cgroups_left = platform_cgroups() - cgroups_before
    if cgroups_left:
        raise AssertionError(f"cgroups left behind: {sorted(map(str, cgroups_left))}")
