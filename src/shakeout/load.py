"""The load driver: Locust in its own process, every request streamed back to the harness.

Locust is never imported here (it monkey-patches the process with gevent). The driver starts
``python -m locust`` headless with a profile from ``loadprofiles/``, bounded by ``--run-time``,
and reads the per-request records that ``shakeout.loadworker.capture`` writes as they arrive.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from shakeout._process import die_with_parent, stop_process, tail, wait_for
from shakeout.errors import LoadError
from shakeout.measure import RequestRecord

PROFILE_DIR = Path("loadprofiles")


def resolve_profile(name: str, directory: Path = PROFILE_DIR) -> Path:
    """Path of a load profile by name (``shop``) or path; errors list what exists."""
    candidate = Path(name)
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate
    path = directory / f"{name}.py"
    if path.is_file():
        return path
    known = sorted(p.stem for p in directory.glob("*.py") if not p.stem.startswith("_"))
    raise LoadError(
        f"unknown load profile {name!r}: no {path} (profiles: {', '.join(known) or 'none'})"
    )


@dataclass(frozen=True)
class LoadSpec:
    """What load to run: a profile at a rate, for at most ``max_duration_s``."""

    profile: Path
    rate_rps: float
    max_duration_s: float = 300.0
    users: int | None = None

    @property
    def user_count(self) -> int:
        """Users to spawn: enough that each keeps a modest share of the rate."""
        return self.users or max(1, math.ceil(self.rate_rps / 2))


class LoadRun:
    """One Locust process producing load and a stream of request records."""

    def __init__(self, spec: LoadSpec, host: str, run_dir: Path):
        self.spec = spec
        self.host = host
        self.records_path = run_dir / "requests.jsonl"
        self.log_path = run_dir / "locust.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._records: list[RequestRecord] = []
        self._offset = 0
        self._partial = b""
        self.started_at = 0.0
        self.stopped_at: float | None = None

    def start(self, first_request_timeout_s: float = 20.0) -> None:
        """Start Locust; return once the first request is recorded (or fail with its log)."""
        if self.spec.rate_rps <= 0:
            raise LoadError(f"load rate must be positive, got {self.spec.rate_rps}")
        self.records_path.parent.mkdir(parents=True, exist_ok=True)
        self.records_path.write_bytes(b"")
        users = self.spec.user_count
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(self.spec.profile),
            "--headless",
            "--host",
            self.host,
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{math.ceil(self.spec.max_duration_s)}s",
            "--stop-timeout",
            "2",
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        env = {
            **os.environ,
            "SHAKEOUT_RECORDS": str(self.records_path),
            "SHAKEOUT_RATE": str(self.spec.rate_rps),
            "SHAKEOUT_USERS": str(users),
        }
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                preexec_fn=die_with_parent(  # noqa: PLW1509 (see die_with_parent)
                    signal.SIGTERM
                ),
            )
        self.started_at = time.time()
        process = self._process
        if not wait_for(
            lambda: process.poll() is not None or self.records_path.stat().st_size > 0,
            first_request_timeout_s,
        ):
            self.stop()
            raise LoadError(
                f"load profile {self.spec.profile} made no request within "
                f"{first_request_timeout_s:g} s; Locust log:\n{tail(self.log_path)}"
            )
        if process.poll() is not None:
            raise LoadError(
                f"load profile {self.spec.profile} failed to start (Locust exit code "
                f"{process.returncode}); Locust log:\n{tail(self.log_path)}"
            )

    @property
    def running(self) -> bool:
        """True while the Locust process is alive."""
        return self._process is not None and self._process.poll() is None

    def records(self) -> list[RequestRecord]:
        """Every record so far (reads what Locust appended since the last call)."""
        try:
            with self.records_path.open("rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return self._records
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        self._records.extend(RequestRecord.from_row(json.loads(line)) for line in lines if line)
        return self._records

    def stop(self) -> None:
        """Stop Locust (SIGTERM, then SIGKILL after a grace period) and read the last records."""
        if self._process is not None:
            code = stop_process(self._process, signal.SIGTERM, grace_s=10.0)
            if self.stopped_at is None:
                self.stopped_at = time.time()
                if code not in (0, 1, -signal.SIGTERM, -signal.SIGKILL):
                    self.records()
                    raise LoadError(
                        f"Locust ended with exit code {code}; log:\n{tail(self.log_path)}"
                    )
        self.records()
