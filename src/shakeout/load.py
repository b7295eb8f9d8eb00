"""The load driver: Locust in its own process(es), every request streamed back to the harness.

Locust is never imported here (it monkey-patches the process with gevent). The driver starts
``python -m locust`` headless with a profile from ``loadprofiles/`` and ``--processes N`` when
more than one worker is asked for, so load uses every core. Locust's workers send every
request record to its master (Locust's own messaging, so workers on other machines stream
too), which appends them to ``requests.tsv`` in the run folder; a monitor thread here reads the
file as it grows into a :class:`~shakeout.measure.Recorder`; ``report()`` prints a progress line.

Workers on other machines: start the driver with ``expect_remote_workers=K`` (the master binds
``master_bind_host`` and waits for K workers, Locust's own ``--expect-workers``), then on each
machine run ``locust -f loadprofiles/<shape>.py --worker --master-host <harness host>`` with
``SHAKEOUT_WORKERS=K`` (each worker takes 1/K of the rate). See docs/load.md.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shakeout._process import die_with_parent, stop_process, tail, wait_for
from shakeout.errors import LoadError
from shakeout.measure import Recorder, RequestRecord
from shakeout.records import GENERATOR_SATURATED_MS, RecordSet

WARMUP_S = 1.0  # the generator's health is judged after its first second

Model = Literal["open", "closed"]
Arrivals = Literal["constant", "poisson"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadSpec:
    """What load to run: a profile (shape) at a base rate, in a model, for a bounded time."""

    profile: Path
    rate_rps: float
    duration_s: float = 300.0
    model: Model = "open"
    arrivals: Arrivals = "constant"
    workers: int = 1
    user_rps: float = 2.0
    max_in_flight: int = 2000
    max_requests: int = 10_000_000
    expect_remote_workers: int = 0
    master_bind_host: str = "127.0.0.1"
    shape_options: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.rate_rps > 0:
            raise LoadError(f"load rate must be positive, got {self.rate_rps}")
        if not 0 < self.duration_s <= 24 * 3600:
            raise LoadError(f"load duration must be within (0, 86400] s, got {self.duration_s}")
        if self.workers < 1:
            raise LoadError(f"workers must be at least 1, got {self.workers}")

    @property
    def label(self) -> str:
        """Human label, e.g. ``open model, constant arrivals, 300 rps``."""
        model = (
            f"open model, {self.arrivals} arrivals"
            if self.model == "open"
            else "closed model (latency under-reports stalls)"
        )
        return f"{self.profile.stem} at {self.rate_rps:g} rps, {model}, {self.workers} worker(s)"

    def environment(self) -> dict[str, str]:
        """The ``SHAKEOUT_*`` options the profile reads."""
        env = {
            "SHAKEOUT_RATE": str(self.rate_rps),
            "SHAKEOUT_DURATION_S": str(self.duration_s),
            "SHAKEOUT_MODEL": self.model,
            "SHAKEOUT_ARRIVALS": self.arrivals,
            "SHAKEOUT_WORKERS": str(self.expect_remote_workers or self.workers),
            "SHAKEOUT_USER_RPS": str(self.user_rps),
            "SHAKEOUT_MAX_IN_FLIGHT": str(self.max_in_flight),
            "SHAKEOUT_MAX_REQUESTS": str(self.max_requests),
        }
        env.update({f"SHAKEOUT_{k.upper()}": str(v) for k, v in self.shape_options})
        return env


class LoadRun:
    """One Locust run producing load and a stream of request records."""

    def __init__(
        self,
        spec: LoadSpec,
        host: str,
        run_dir: Path,
        progress: Progress | None = None,
        progress_every_s: float = 2.0,
    ):
        self.spec = spec
        self.host = host
        self.records_path = run_dir / "requests.tsv"
        self.log_path = run_dir / "locust.log"
        self.recorder = Recorder()
        self.progress = progress
        self.progress_every_s = progress_every_s
        self._process: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._partial = ""
        self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.started_at = 0.0
        self.stopped_at: float | None = None
        self.warnings: list[str] = []
        self._last_report = time.monotonic()
        self._records: RecordSet | None = None

    def command(self) -> list[str]:
        """The Locust command line."""
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(self.spec.profile),
            "--headless",
            "--host",
            self.host,
            "--stop-timeout",
            "3",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--shakeout-records",
            str(self.records_path),
        ]
        if self.spec.expect_remote_workers:
            # Locust refuses --processes with --master: remote workers replace local ones.
            command += [
                "--master",
                "--master-bind-host",
                self.spec.master_bind_host,
                "--expect-workers",
                str(self.spec.expect_remote_workers),
            ]
        elif self.spec.workers > 1:
            command += ["--processes", str(self.spec.workers)]
        return command

    def start(self, first_request_timeout_s: float = 30.0) -> None:
        """Start Locust; return once the first request is recorded (or fail with its log)."""
        self.records_path.parent.mkdir(parents=True, exist_ok=True)
        self.records_path.write_bytes(b"")
        env = {**os.environ, **self.spec.environment()}
        env.pop("SHAKEOUT_RECORDS", None)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=False,
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
        if process.poll() is not None and self.records_path.stat().st_size == 0:
            raise LoadError(
                f"load profile {self.spec.profile} failed to start (Locust exit code "
                f"{process.returncode}); Locust log:\n{tail(self.log_path)}"
            )
        self._monitor = threading.Thread(target=self._watch, name="shakeout-load", daemon=True)
        self._monitor.start()

    @property
    def running(self) -> bool:
        """True while the Locust process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def ended(self) -> bool:
        """True once :meth:`stop` was called: every record is accounted."""
        return self._stop.is_set()

    def summary(self) -> dict[str, dict[str, float]]:
        """Per journey (and ``all``): requests, errors, rates and percentiles of the run."""
        records = self.records()
        out: dict[str, dict[str, float]] = {}
        for name in [*records.names(), None]:
            s = records.stats(name)
            out[name or "all"] = {
                "requests": s.count,
                "errors": s.errors,
                "dropped": s.dropped,
                "error_rate": s.error_rate,
                "throughput_rps": s.throughput_rps,
                "p50_ms": s.p50_ms,
                "p95_ms": s.p95_ms,
                "p99_ms": s.p99_ms,
                "max_ms": s.max_ms,
                "window_s": s.end - s.start,
            }
        return out

    def read(self) -> int:
        """Account every record appended since the last read; return how many were new."""
        with self._read_lock:
            try:
                with self.records_path.open("r", encoding="utf-8") as fh:
                    fh.seek(self._offset)
                    chunk = fh.read()
                    self._offset = fh.tell()
            except FileNotFoundError:
                return 0
            data = self._partial + chunk
            lines = data.split("\n")
            self._partial = lines.pop()
            self.recorder.add_all(RequestRecord.from_line(line) for line in lines if line)
            return len(lines)

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            self.read()

    def report(self) -> None:
        """Print the progress line if one is due (call from the main thread while waiting)."""
        now = time.monotonic()
        if self.progress and now - self._last_report >= self.progress_every_s:
            self._last_report = now
            self.progress(self.progress_line())

    def progress_line(self, window_s: int = 5) -> str:
        """Live line: rate, p95, errors and dropped over the last complete seconds."""
        now = int(time.time()) - 1
        first = int(self.recorder.first_due or now)
        s = self.recorder.stats(None, max(first, now - window_s), now)
        p95 = "-" if math.isnan(s.p95_ms) else f"{s.p95_ms:.0f} ms"
        return (
            f"load {self.spec.profile.stem}: {s.throughput_rps:6.1f} rps "
            f"(target {self.spec.rate_rps:g})  p95 {p95}  errors {s.error_rate:6.2%}  "
            f"dropped {s.dropped}  total {self.recorder.total}"
        )

    def stop(self) -> None:
        """Stop Locust (SIGTERM, then SIGKILL after a grace period) and read the last records."""
        if self._process is not None:
            code = stop_process(self._process, signal.SIGTERM, grace_s=15.0)
            if self.stopped_at is None:
                self.stopped_at = time.time()
                if code not in (0, 1, -signal.SIGTERM, -signal.SIGKILL):
                    self.warnings.append(f"Locust ended with exit code {code}")
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        self.read()
        self._check_rate()
        self._check_generator()

    def records(self) -> RecordSet:
        """Every request of the run, exactly (read once from the run folder after the stop)."""
        if self.running:
            raise LoadError("the load is still running: stop it before judging its records")
        if self._records is None:
            self._records = RecordSet.read(self.records_path)
        return self._records

    def generator_health(self) -> dict[str, float | int | bool]:
        """How late the generator sent its requests (``started - due``), and whether that
        made it saturated; kept in ``summary.json``."""
        records = self.records()
        # The first second is the Locust process warming up (its first connections and
        # greenlets): a few requests a few ms late there are not a saturated generator.
        start = float(records.due[0]) + WARMUP_S if len(records) else None
        lateness = records.stats(None, start, None).lateness_p99_ms
        return {
            "lateness_p99_ms": lateness,
            "saturated": not math.isnan(lateness) and lateness > GENERATOR_SATURATED_MS,
            "saturated_above_ms": GENERATOR_SATURATED_MS,
            "late_records": self.recorder.late,
        }

    def _check_generator(self) -> None:
        if self._process is None or any("generator" in w for w in self.warnings):
            return
        health = self.generator_health()
        if health["saturated"]:
            self.warnings.append(
                f"the load generator was saturated: it sent requests up to "
                f"{health['lateness_p99_ms']:.1f} ms late at p99 (bound "
                f"{GENERATOR_SATURATED_MS:g} ms); latency verdicts within that of their "
                "threshold are inconclusive (add workers, or lower the rate)"
            )

    def _check_rate(self) -> None:
        stats = self.recorder.stats()
        if stats.dropped and not any("dropped" in w for w in self.warnings):
            self.warnings.append(
                f"{stats.dropped} requests were dropped: the workers could not keep "
                f"{self.spec.rate_rps:g} rps with {self.spec.max_in_flight} in flight each "
                "(add workers, or the target is too slow)"
            )

    def save_series(self, path: Path) -> None:
        """The per-second series of every journey, kept with the run for the report."""
        series = {name: self.recorder.series(name) for name in self.recorder.names()}
        series["all"] = self.recorder.series(None)
        path.write_text(json.dumps(series), encoding="utf-8")
