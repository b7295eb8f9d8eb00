"""Shared fixtures of the engine's tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shakeout_processes() -> set[int]:
    """Pids of processes that look like ours (platform, replicas, Locust, chaos)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True)
    pids = set()
    for line in out.stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if int(pid) == os.getpid():
            continue
        if any(
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
