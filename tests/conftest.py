"""Shared fixtures of the engine's tests."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every process this test session starts inherits this marker, so leftover checks only see
# our own processes, not a platform or load run by someone else on the same machine.
SESSION_MARKER = f"SHAKEOUT_TEST_SESSION={uuid.uuid4().hex}"
os.environ["SHAKEOUT_TEST_SESSION"] = SESSION_MARKER.split("=", 1)[1]


def _ours(pid: int) -> bool:
    try:
        return SESSION_MARKER.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def shakeout_processes() -> set[int]:
    """Pids of processes that look like ours (platform, replicas, Locust, chaos)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True)
    pids = set()
    for line in out.stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if int(pid) == os.getpid():
            continue
        if _ours(int(pid)) and any(
            marker in args
            for marker in (
                "shakeout.platform.daemon",
                "shakeout.services.",
                "-m locust",
                "chaos --no-version-check",
                "shakeout.chaos._guard",
            )
        ):
            pids.add(int(pid))
    return pids


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated runtime folder for platforms started by one test."""
    path = tmp_path / "runtime"
    monkeypatch.setenv("SHAKEOUT_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fail the test if it leaves a platform, replica, Locust or chaos process behind."""
    before = shakeout_processes()
    yield
    from shakeout._process import wait_for

    wait_for(lambda: not (shakeout_processes() - before), 10.0)
    left = shakeout_processes() - before
    if left:
        pids = ",".join(map(str, left))
        out = subprocess.run(
            ["ps", "-o", "pid=,args=", "-p", pids], capture_output=True, text=True, check=False
        )
        raise AssertionError(f"processes left behind:\n{out.stdout}")
