"""Benchmark: does ShakeOut's open model measure a known latency and a known stall exactly?

Run: ``python benchmarks/load_accuracy.py [--delay-ms 50 --rate 100 --duration 20 --stall 2]``.

``benchmarks/servers.py`` answers ``GET /`` after exactly ``asyncio.sleep(D)`` (D = 50 ms). Through
:class:`shakeout.load.LoadRun` (``benchmarks/profiles/trivial.py``, 100 rps for 20 s):

(a) open model, no stall: the p99 latency (counted from each request's due time) against D;
    goal within 5%;
(b) open model, one stall: the server process is frozen (SIGSTOP) for S = 2 s in the middle of
    the run, then resumed (SIGCONT). The stall as measured from the records, against the stop
    the harness actually made (the time between its SIGSTOP and SIGCONT); goal within 5%. Two
    estimates from the records: the largest gap between consecutive response ends (no response
    can end while the server is frozen), and the largest latency minus the run's median (the
    undisturbed latency, D plus the client's own overhead);
(c) the closed model at the same rate, with and without the same stall, beside them: each user
    waits for its stuck request, so only one request per user records the stall and the requests
    that should have been sent meanwhile are never sent (coordinated omission); with ShakeOut's
    default 2 rps per user (50 users) and with 10 rps per user (10 users).

Latency percentiles are the harness's own (its Recorder's HdrHistograms), as a drill sees them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _bench import (
    PROFILES,
    BenchError,
    fail,
    load_run,
    machine,
    percentile,
    read_records,
    server,
    wait_for_exit,
)

from shakeout.load import LoadRun, LoadSpec, Model
from shakeout.measure import RequestRecord

GOAL = 0.05  # within 5%


@dataclass(frozen=True)
class Case:
    """One run's configuration."""

    label: str
    model: Model
    stall: bool
    user_rps: float = 2.0


@dataclass
class Result:
    """What the records of one run say."""

    case: Case
    requests: int
    errors: int
    dropped: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    stalled: int  # requests whose latency exceeded D + 100 ms
    stop_s: float | None  # the SIGSTOP to SIGCONT time the harness made
    gap_s: float  # largest gap between consecutive response ends
    throughput_rps: float
    lag_p50_ms: float  # the client's send lag (started - due)
    lag_p99_ms: float
    server: dict[str, float]  # the server's own answer times: count, p50_ms, p99_ms, max_ms

    @property
    def max_minus_median_s(self) -> float:
        """Largest latency minus the run's median latency, in seconds."""
        return (self.max_ms - self.p50_ms) / 1000.0


def _freeze(pid: int, at: float, stall_s: float) -> float:
    """Freeze ``pid`` at Unix time ``at`` for ``stall_s``; return the stop actually made."""
    time.sleep(max(0.0, at - time.time()))
    stopped = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(stall_s)
    finally:
        os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
    return resumed - stopped


def run_case(case: Case, url: str, server_pid: int, args: argparse.Namespace, work: Path) -> Result:
    """Run one case and read its records."""
    spec = LoadSpec(
        profile=PROFILES / "trivial.py",
        rate_rps=args.rate,
        duration_s=args.duration,
        model=case.model,
        user_rps=case.user_rps,
        max_requests=int(args.rate * args.duration * 2),
    )
    run = LoadRun(spec, url, work)
    stop_s = None
    server_timing(url)  # starts the server's own timing afresh
    with load_run(run):
        began = run.recorder.first_due or time.time()
        if case.stall:
            stop_s = _freeze(server_pid, began + args.duration / 2, args.stall)
        if not wait_for_exit(run, args.duration + 20.0):
            print(f"{case.label}: Locust did not end by itself; stopping it")
    stats = run.recorder.stats()
    server = server_timing(url)
    records = [r for r in read_records(run.records_path) if not r.dropped]
    if not records or math.isnan(stats.p99_ms):
        raise BenchError(f"{case.label}: no request recorded")
    lags = sorted((r.started_at - r.due) * 1000.0 for r in records)
    return Result(
        case=case,
        requests=stats.count,
        errors=stats.errors,
        dropped=stats.dropped,
        p50_ms=stats.p50_ms,
        p95_ms=stats.p95_ms,
        p99_ms=stats.p99_ms,
        max_ms=stats.max_ms,
        stalled=sum(1 for r in records if r.latency_ms > args.delay_ms + 100.0),
        stop_s=stop_s,
        gap_s=_largest_gap(records),
        throughput_rps=_throughput(records),
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
        server=server,
    )


def server_timing(url: str) -> dict[str, float]:
    """The server's own answer times since the last call (and start afresh)."""
    with urllib.request.urlopen(f"{url}/timing", timeout=10) as response:
        timing: dict[str, float] = json.load(response)
    return timing


def _largest_gap(records: list[RequestRecord]) -> float:
    ends = sorted(r.ended_at for r in records)
    return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)


def _throughput(records: list[RequestRecord]) -> float:
    """Requests sent per second over the run (first to last send)."""
    starts = sorted(r.started_at for r in records)
    span = starts[-1] - starts[0]
    return (len(starts) - 1) / span if span > 0 else 0.0


def _verdict(measured: float, expected: float) -> str:
    error = abs(measured - expected) / expected
    return f"{error:.1%} off: {'met' if error <= GOAL else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--stall", type=float, default=2.0, help="seconds the server is frozen")
    args = parser.parse_args()
    if not 0 < args.stall < args.duration / 3:
        parser.error("--stall must be positive and under a third of --duration")
    cases = [
        Case("open", "open", stall=False),
        Case("open + stall", "open", stall=True),
        Case("closed 2/user", "closed", stall=False, user_rps=2.0),
        Case("closed 2/user + stall", "closed", stall=True, user_rps=2.0),
        Case("closed 10/user", "closed", stall=False, user_rps=10.0),
        Case("closed 10/user + stall", "closed", stall=True, user_rps=10.0),
    ]
    print(f"machine: {machine()}")
    print(
        f"GET / answering after {args.delay_ms:g} ms, {args.rate:g} rps for {args.duration:g} s "
        f"per run, stall {args.stall:g} s (SIGSTOP/SIGCONT of the server) mid-run"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-") as tmp:
        root = Path(tmp)
        with server(root / "server.log", delay_ms=args.delay_ms) as (process, url):
            for i, case in enumerate(cases):
                work = root / str(i)
                work.mkdir()
                result = run_case(case, url, process.pid, args, work)
                results.append(result)
                _show(result)
    _summary(results, args)


def _show(r: Result) -> None:
    print(
        f"{r.case.label:22s} {r.requests:5d} req {r.throughput_rps:5.1f} rps  p50 {r.p50_ms:6.1f}"
        f"  p95 {r.p95_ms:6.1f}  p99 {r.p99_ms:6.1f}  max {r.max_ms:6.1f} ms  "
        f">D+100ms {r.stalled:3d}  errors {r.errors}  dropped {r.dropped}",
        flush=True,
    )
    detail = (
        f"{'':22s} send lag (started - due) p50 {r.lag_p50_ms:.2f} p99 {r.lag_p99_ms:.2f} ms; "
        f"the server's own answer times p50 {r.server['p50_ms']:.2f} p99 "
        f"{r.server['p99_ms']:.2f} max {r.server['max_ms']:.1f} ms"
    )
    if r.stop_s is not None:
        detail += (
            f"; stop {r.stop_s:.3f} s, largest gap between response ends {r.gap_s:.3f} s, "
            f"max - p50 {r.max_minus_median_s:.3f} s"
        )
    print(detail, flush=True)


def _summary(results: list[Result], args: argparse.Namespace) -> None:
    open_plain, open_stall = results[0], results[1]
    print(
        f"(a) open model p99 {open_plain.p99_ms:.1f} ms vs D = {args.delay_ms:g} ms: "
        + _verdict(open_plain.p99_ms, args.delay_ms)
    )
    server_p99 = open_plain.server["p99_ms"]
    above = open_plain.p99_ms - server_p99
    print(
        f"    vs the server's own p99 answer time {server_p99:.1f} ms (its event loop's timer): "
        f"{above:+.1f} ms ({above / server_p99:+.1%}); the client's send lag p50 "
        f"{open_plain.lag_p50_ms:.2f} ms, p99 {open_plain.lag_p99_ms:.2f} ms"
    )
    assert open_stall.stop_s is not None
    for label, value in (
        ("largest gap between response ends", open_stall.gap_s),
        ("max latency - median latency", open_stall.max_minus_median_s),
    ):
        print(
            f"(b) open model stall, {label}: {value:.3f} s vs the {open_stall.stop_s:.3f} s "
            "stop made: " + _verdict(value, open_stall.stop_s)
        )
    for result in results[2:]:
        if result.stop_s is None:
            continue
        base = next(
            r
            for r in results
            if not r.case.stall
            and (r.case.model, r.case.user_rps) == (result.case.model, result.case.user_rps)
        )
        print(
            f"(c) {result.case.label}: p99 {base.p99_ms:.1f} -> {result.p99_ms:.1f} ms, "
            f"{result.stalled} requests saw the stall (open model: {open_stall.stalled}), "
            f"{result.requests} sent (open: {open_stall.requests})"
        )
    bad = [r for r in results if r.errors]
    if bad:
        fail("errors in " + ", ".join(r.case.label for r in bad) + ": the figures are not clean")
    if open_plain.dropped or open_stall.dropped:
        fail("the open model dropped requests: the figures are not clean")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        fail(str(exc))
