"""Shared helpers of the load benchmarks: child processes, CPU time from /proc, records.

Every process started here is stopped in a ``finally`` (SIGTERM, a bounded wait, SIGKILL) and
dies with the benchmark anyway (``PR_SET_PDEATHSIG``). Load goes to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shakeout._process import die_with_parent, stop_process, tail
from shakeout.load import LoadRun
from shakeout.measure import RequestRecord

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROFILES = HERE / "profiles"
_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to."""


def machine() -> str:
    """One line naming the machine the figures come from."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout_s: float, period_s: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(period_s)
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@contextlib.contextmanager
def server(
    log: Path, delay_ms: float = 0.0, workers: int = 1
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``benchmarks/servers.py`` on a free loopback port: yields (process, base URL)."""
    port = free_port()
    command = [
        sys.executable,
        str(HERE / "servers.py"),
        "--port",
        str(port),
        "--delay-ms",
        str(delay_ms),
        "--workers",
        str(workers),
    ]
    # One process: SIGKILL when we die, which also ends it while it is frozen (SIGSTOP).
    # Several: SIGTERM, so that uvicorn's supervisor stops its workers.
    death = signal.SIGKILL if workers == 1 else signal.SIGTERM
    with started(command, log, dict(os.environ), death) as process:
        if not wait_until(lambda: process.poll() is not None or _answers(port), 20.0):
            raise BenchError("the benchmark server did not answer within 20 s")
        if process.poll() is not None:
            raise BenchError(f"the benchmark server exited with {process.returncode}\n{tail(log)}")
        yield process, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def started(
    command: Sequence[str],
    log: Path,
    env: dict[str, str],
    death_signal: int = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in ``log``, always stopped on the way out (and sent
    ``death_signal`` by the kernel if this process dies first)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            preexec_fn=die_with_parent(death_signal),  # noqa: PLW1509 (prctl only)
        )
        try:
            yield process
        finally:
            stop_process(process, signal.SIGTERM, grace_s=15.0)


@contextlib.contextmanager
def load_run(run: LoadRun) -> Iterator[LoadRun]:
    """``run`` started, and stopped whatever happens."""
    try:
        run.start()
        yield run
    finally:
        run.stop()


def locust_pid(run: LoadRun) -> int:
    """The Locust process of a started run (the driver keeps it private)."""
    process = run._process  # read-only, to measure its CPU time
    if process is None:
        raise BenchError("the load run has no Locust process")
    return process.pid


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc), e.g. Locust's forked workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes so far (the ones still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


@dataclass
class CpuMeter:
    """CPU time of named process groups over a window, as a fraction of one core."""

    groups: dict[str, list[int]]
    _start: dict[str, float] | None = None
    _started_at: float = 0.0
    share: dict[str, float] | None = None
    window: tuple[float, float] = (0.0, 0.0)  # Unix times the caller measured over

    def start(self) -> None:
        """Open the window."""
        self._started_at = time.monotonic()
        self._start = {name: cpu_seconds(pids) for name, pids in self.groups.items()}

    def stop(self) -> dict[str, float]:
        """Close the window: each group's CPU use, 1.0 being one core fully busy."""
        if self._start is None:
            raise BenchError("CpuMeter.stop() before start()")
        wall = time.monotonic() - self._started_at
        self.share = {
            name: (cpu_seconds(pids) - self._start[name]) / wall
            for name, pids in self.groups.items()
        }
        return self.share

    def line(self) -> str:
        """``locust 99%  server 31% ...`` of one core."""
        return "  ".join(f"{n} {s:4.0%}" for n, s in (self.share or {}).items())


def read_records(path: Path) -> list[RequestRecord]:
    """Every record of a run, from its ``requests.tsv``."""
    with path.open(encoding="utf-8") as fh:
        return [RequestRecord.from_line(line) for line in fh if line.strip()]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def wait_for_exit(run: LoadRun, timeout_s: float) -> bool:
    """Wait (bounded) for a load run's Locust to end by itself; return whether it did."""
    return wait_until(lambda: not run.running, timeout_s, period_s=0.1)


def fail(message: str) -> None:
    """Print why the benchmark could not measure, and exit non-zero."""
    print(f"FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)
