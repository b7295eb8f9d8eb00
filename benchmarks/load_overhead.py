"""Benchmark: requests/s of ShakeOut's load driver (full per-request capture) vs plain Locust.

Run: ``python benchmarks/load_overhead.py [--rounds 5 --duration 10 --users 50 --what-if]``.

Both drive ``GET /`` of ``benchmarks/servers.py`` (no delay) on 127.0.0.1 with the same number
of users, one Locust process, no wait time, alternating A/B over several rounds in one run:

* A, ShakeOut: :class:`shakeout.load.LoadRun` with ``benchmarks/profiles/trivial.py`` in the
  closed model, as fast as possible (a huge rate and ``user_rps = rate / users``: ``users`` users
  whose pacing interval is nanoseconds), every request streamed to ``requests.tsv`` and read back
  into the harness's Recorder, as in a drill;
* B, plain Locust: ``python -m locust --headless -u N -r N -t D`` with a plain FastHttpUser
  (``benchmarks/profiles/plain.py``);
* D, only with ``--what-if``: B plus ShakeOut's per-request capture and nothing else
  (``benchmarks/profiles/plain_capture.py`` with ``--shakeout-records``), the cost of recording
  every request. (An earlier variant C measured per-request savings in a copied profile; they
  are now in ``src/shakeout/loadworker`` and C was removed.)

Every rate is measured the same way: Locust's own request count, sampled every 0.5 s inside
each Locust process, over the steady window from ``--warmup`` s after the first request to 1.5 s
before the end. The CPU time of each process over that window (from /proc) shows what limits
the rate; the Locust process's CPU time per request is the figure least disturbed by other load
on a shared machine. Goal: ShakeOut at least 90% of plain Locust.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _bench import (
    PROFILES,
    BenchError,
    CpuMeter,
    descendants,
    fail,
    load_run,
    locust_pid,
    machine,
    read_records,
    server,
    started,
    wait_until,
)

from shakeout.load import LoadRun, LoadSpec

HUGE_RATE = 1e9  # closed model: pacing interval users / rate = nanoseconds, i.e. never waits
MAX_REQUESTS = 5_000_000  # count bound of every run (the time bound is --duration)
GOAL = 0.90


@dataclass
class Sample:
    """One run's steady-window rate and where the CPU went."""

    rate_rps: float
    failures: int
    cpu: CpuMeter
    records_rps: float | None = None

    @property
    def cpu_us_per_request(self) -> float:
        """CPU time of the Locust process per request, in microseconds."""
        share = (self.cpu.share or {}).get("locust", float("nan"))
        return share / self.rate_rps * 1e6


@dataclass(frozen=True)
class Setup:
    """What every run of one benchmark shares."""

    url: str
    server_pids: list[int]
    users: int
    duration: float
    warmup: float

    def meter(self, locust: list[int]) -> CpuMeter:
        """CPU meter of the Locust process(es), the server and this harness."""
        return CpuMeter({"locust": locust, "server": self.server_pids, "harness": [os.getpid()]})


def _probe(path: Path) -> list[tuple[float, int, int, int]]:
    """The probe's samples: (time, requests, failures, users)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        t, n, f, u = line.split()
        rows.append((float(t), int(n), int(f), int(u)))
    return rows


def _window(probe: Path, alive: Callable[[], bool], setup: Setup, cpu: CpuMeter) -> None:
    """Wait through the steady window (from the first counted request) measuring CPU."""

    def counted() -> bool:
        return any(row[1] > 0 for row in _probe(probe)) or not alive()

    if not wait_until(counted, 30.0, period_s=0.1):
        raise BenchError("no request counted within 30 s")
    first = [row[0] for row in _probe(probe) if row[1] > 0]
    if not first:
        raise BenchError("the load generator ended before its first request")
    start, end = first[0] + setup.warmup, first[0] + setup.duration - 1.5
    time.sleep(max(0.0, start - time.time()))
    cpu.start()
    time.sleep(max(0.0, end - time.time()))
    cpu.stop()
    cpu.window = (start, end)


def _rate(probe: Path, window: tuple[float, float], users: int) -> tuple[float, float, float, int]:
    """(first sample time, last sample time, rate, failures) inside the window."""
    rows = [r for r in _probe(probe) if window[0] <= r[0] <= window[1]]
    if len(rows) < 2:
        raise BenchError(f"fewer than two samples in the steady window ({len(rows)})")
    if any(r[3] != users for r in rows):
        raise BenchError(f"not {users} users throughout the window: {sorted({r[3] for r in rows})}")
    (t1, n1, f1, _), (t2, n2, f2, _) = rows[0], rows[-1]
    return t1, t2, (n2 - n1) / (t2 - t1), f2 - f1


def shakeout(setup: Setup, work: Path, profile: str = "trivial.py") -> Sample:
    """One ShakeOut run through LoadRun: closed model as fast as possible, full capture."""
    probe = work / "probe.tsv"
    spec = LoadSpec(
        profile=PROFILES / profile,
        rate_rps=HUGE_RATE,
        duration_s=setup.duration,
        model="closed",
        user_rps=HUGE_RATE / setup.users,
        max_requests=MAX_REQUESTS,
    )
    os.environ["BENCH_PROBE_FILE"] = str(probe)  # LoadRun passes its environment to Locust
    run = LoadRun(spec, setup.url, work)
    try:
        with load_run(run):
            cpu = setup.meter([locust_pid(run)])
            _window(probe, lambda: run.running, setup, cpu)
    finally:
        os.environ.pop("BENCH_PROBE_FILE", None)
    t1, t2, rate, failures = _rate(probe, cpu.window, setup.users)
    # Cross-check: the records that ended between the same two samples (Locust counts at the end).
    ended = sum(1 for r in read_records(run.records_path) if t1 < r.ended_at <= t2)
    return Sample(rate, failures, cpu, records_rps=ended / (t2 - t1))


def plain(setup: Setup, work: Path, capture: bool = False) -> Sample:
    """One plain Locust run: FastHttpUser, no wait time, same users, one process."""
    probe = work / "probe.tsv"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(PROFILES / ("plain_capture.py" if capture else "plain.py")),
        "--headless",
        "--host",
        setup.url,
        "-u",
        str(setup.users),
        "-r",
        str(setup.users),
        "-t",
        f"{setup.duration:g}s",
        "--stop-timeout",
        "3",
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if capture:
        command += ["--shakeout-records", str(work / "requests.tsv")]
    env = {**os.environ, "BENCH_PROBE_FILE": str(probe), "BENCH_MAX_REQUESTS": str(MAX_REQUESTS)}
    with started(command, work / "locust.log", env) as process:
        cpu = setup.meter([process.pid])
        _window(probe, lambda: process.poll() is None, setup, cpu)
        if not wait_until(lambda: process.poll() is not None, 15.0):
            print("plain Locust did not end by itself: stopping it", file=sys.stderr)
    _, _, rate, failures = _rate(probe, cpu.window, setup.users)
    return Sample(rate, failures, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--server-workers", type=int, default=1)
    parser.add_argument("--what-if", action="store_true", help="also run variant D")
    args = parser.parse_args()
    if args.duration - 1.5 - args.warmup < 3:
        parser.error("--duration must leave a steady window of at least 3 s")
    variants: dict[str, Callable[[Setup, Path], Sample]] = {
        "A ShakeOut": shakeout,
        "B plain": plain,
    }
    if args.what_if:
        variants["D plain+rec"] = lambda setup, work: plain(setup, work, capture=True)
    print(f"machine: {machine()}")
    print(
        f"GET / on 127.0.0.1, {args.users} users, 1 Locust process, {args.rounds} rounds x "
        f"{args.duration:g} s, {args.server_workers} server process(es); " + ", ".join(variants)
    )
    results: dict[str, list[Sample]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-") as tmp:
        root = Path(tmp)
        with server(root / "server.log", workers=args.server_workers) as (process, url):
            setup = Setup(url, descendants(process.pid), args.users, args.duration, args.warmup)
            for i in range(args.rounds):
                for name, run in variants.items():
                    work = root / f"{i}-{name[0]}"
                    work.mkdir()
                    sample = run(setup, work)
                    results[name].append(sample)
                    check = (
                        f"  (records {sample.records_rps:.0f} rps)"
                        if sample.records_rps is not None
                        else ""
                    )
                    print(
                        f"round {i + 1} {name:11s}: {sample.rate_rps:6.0f} rps  "
                        f"{sample.cpu_us_per_request:5.1f} CPU-us/request  failures "
                        f"{sample.failures}  CPU: {sample.cpu.line()}{check}",
                        flush=True,
                    )
    _summary(results)


def _summary(results: dict[str, list[Sample]]) -> None:
    base = results["B plain"]
    for name, samples in results.items():
        rate = statistics.median(s.rate_rps for s in samples)
        cost = statistics.median(s.cpu_us_per_request for s in samples)
        line = f"{name:11s}: median {rate:6.0f} rps, {cost:5.1f} CPU-us/request"
        if samples is not base:
            ratio = statistics.median(
                s.rate_rps / b.rate_rps for s, b in zip(samples, base, strict=True)
            )
            efficiency = statistics.median(
                b.cpu_us_per_request / s.cpu_us_per_request
                for s, b in zip(samples, base, strict=True)
            )
            line += (
                f"; vs plain (median of per-round ratios): rate {ratio:.1%}, "
                f"CPU efficiency {efficiency:.1%}; goal >= {GOAL:.0%}: "
                + ("met" if ratio >= GOAL else "NOT met")
            )
        print(line)
    failures = sum(s.failures for samples in results.values() for s in samples)
    if failures:
        fail(f"{failures} requests failed: the rates are not comparable")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        fail(str(exc))
