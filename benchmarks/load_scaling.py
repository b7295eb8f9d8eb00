"""Benchmark: ShakeOut's load driver with 1 vs 2 Locust worker processes (``workers=2``).

Run: ``python benchmarks/load_scaling.py [--rounds 3 --duration 10 --users 50]``.

The same trivial endpoint as ``load_overhead.py`` (``GET /`` of ``benchmarks/servers.py``, no
delay, 127.0.0.1), the same closed model as fast as possible (a huge rate and ``user_rps = rate /
users``), through :class:`shakeout.load.LoadRun` with full capture: ``workers=1`` is one Locust
process; ``workers=2`` is ``--processes 2`` (a master and two forked workers, every record sent to
the master). Alternating 1/2 over the rounds. The rate is the records that ended in the steady
window (``--warmup`` s after the run started to 1.5 s before its end) divided by its length; the
CPU time of every process over that window (from /proc) shows what limits it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
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
)

from shakeout.load import LoadRun, LoadSpec

HUGE_RATE = 1e9  # closed model: pacing interval users / rate = nanoseconds, i.e. never waits


def one_run(
    url: str, server_pids: list[int], workers: int, args: argparse.Namespace, work: Path
) -> tuple[float, int, CpuMeter]:
    """(rate, errors, CPU) of one run with ``workers`` Locust worker processes."""
    spec = LoadSpec(
        profile=PROFILES / "trivial.py",
        rate_rps=HUGE_RATE,
        duration_s=args.duration,
        model="closed",
        user_rps=HUGE_RATE / args.users,
        workers=workers,
        max_requests=5_000_000,
    )
    run = LoadRun(spec, url, work)
    with load_run(run):
        began = time.time()
        start, end = began + args.warmup, began + args.duration - 1.5
        time.sleep(max(0.0, start - time.time()))
        pid = locust_pid(run)
        processes = descendants(pid)
        groups = {"master" if workers > 1 else "locust": [pid]}
        groups.update({f"worker{i + 1}": [p] for i, p in enumerate(processes[1:])})
        cpu = CpuMeter({**groups, "server": server_pids, "harness": [os.getpid()]})
        cpu.start()
        time.sleep(max(0.0, end - time.time()))
        cpu.stop()
        if workers > 1 and len(processes) != workers + 1:
            raise BenchError(f"expected {workers} Locust workers, found {len(processes) - 1}")
    records = read_records(run.records_path)
    in_window = [r for r in records if start <= r.ended_at < end]
    if not in_window:
        raise BenchError(f"no request ended in the steady window with {workers} worker(s)")
    return len(in_window) / (end - start), sum(1 for r in in_window if not r.ok), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.5)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    if args.duration - 1.5 - args.warmup < 3:
        parser.error("--duration must leave a steady window of at least 3 s")
    print(f"machine: {machine()}")
    print(
        f"GET / on 127.0.0.1, closed model as fast as possible, {args.users} users, full "
        f"capture, {args.rounds} rounds x {args.duration:g} s, 1 vs 2 Locust worker processes"
    )
    rates: dict[int, list[float]] = {1: [], 2: []}
    errors = 0
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-") as tmp:
        root = Path(tmp)
        with server(root / "server.log") as (process, url):
            server_pids = descendants(process.pid)
            for i in range(args.rounds):
                for workers in (1, 2):
                    work = root / f"{i}-{workers}"
                    work.mkdir()
                    rate, failed, cpu = one_run(url, server_pids, workers, args, work)
                    rates[workers].append(rate)
                    errors += failed
                    print(
                        f"round {i + 1} workers={workers}: {rate:6.0f} rps  errors {failed}  "
                        f"CPU: {cpu.line()}",
                        flush=True,
                    )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    paired = statistics.median(b / a for a, b in zip(rates[1], rates[2], strict=True))
    print(f"workers=1: median {one:.0f} rps")
    print(f"workers=2: median {two:.0f} rps")
    print(f"ratio 2 workers / 1 worker: {two / one:.2f}x (median of per-round {paired:.2f}x)")
    if errors:
        fail(f"{errors} requests failed: the rates are not comparable")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        fail(str(exc))
