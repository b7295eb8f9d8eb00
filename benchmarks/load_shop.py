"""Benchmark: the shop's journey mix against the embedded platform, load and platform together.

Run: ``python benchmarks/load_shop.py [--rate 300 --duration 30 --spike-at 10 --spike-window 10]``.

Starts the embedded reference platform (``targets/local.yaml``: 12 replicas behind the daemon's
router), then, through :class:`shakeout.load.LoadRun` and the open model (latency from each
request's due time):

1. ``loadprofiles/steady.py`` at 300 rps for 30 s;
2. ``loadprofiles/spike.py`` at 300 rps with a 2x spike (600 rps) for 10 s from 10 s on.

For each phase (steady; before, during and after the spike): requests, p50/p95/p99 latency, the
error rate (dropped requests count as errors, as in the harness), dropped requests, and whether
p95 < 300 ms, computed exactly from the records of requests due in the phase. The CPU time of
every process over each run (from /proc) shows where the machine's two cores went: Locust, the
platform daemon (router, supervisor, control API), each service's replicas, this harness.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _bench import (
    ROOT,
    BenchError,
    CpuMeter,
    descendants,
    fail,
    load_run,
    locust_pid,
    machine,
    percentile,
    read_records,
    wait_for_exit,
)

from shakeout.load import LoadRun, LoadSpec
from shakeout.measure import RequestRecord
from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState

P95_GOAL_MS = 300.0


@dataclass(frozen=True)
class Phase:
    """Figures of the requests due in one phase of a run."""

    name: str
    rate_rps: float
    requests: int
    errors: int
    dropped: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    achieved_rps: float

    @property
    def error_rate(self) -> float:
        """Failed (dropped included) over all requests."""
        return self.errors / self.requests if self.requests else 0.0

    def line(self) -> str:
        """One printed line."""
        verdict = "yes" if self.p95_ms < P95_GOAL_MS else "NO"
        return (
            f"{self.name:14s} target {self.rate_rps:4.0f} rps, sent {self.achieved_rps:5.1f} rps, "
            f"{self.requests:5d} req  p50 {self.p50_ms:6.1f}  p95 {self.p95_ms:6.1f}  "
            f"p99 {self.p99_ms:6.1f} ms  errors {self.error_rate:6.2%}  dropped {self.dropped}  "
            f"p95 < {P95_GOAL_MS:g} ms: {verdict}"
        )


def phase(name: str, rate: float, records: list[RequestRecord], start: float, end: float) -> Phase:
    """Exact figures of the records due in ``[start, end)``."""
    chosen = [r for r in records if start <= r.due < end]
    if not chosen:
        raise BenchError(f"no request due in phase {name!r}")
    latencies = sorted(r.latency_ms for r in chosen if not r.dropped)
    return Phase(
        name=name,
        rate_rps=rate,
        requests=len(chosen),
        errors=sum(1 for r in chosen if not r.ok),
        dropped=sum(1 for r in chosen if r.dropped),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        achieved_rps=len(chosen) / (end - start),
    )


def journeys_line(records: list[RequestRecord], start: float, end: float) -> str:
    """p95 / p99 of each journey due in ``[start, end)``."""
    names = sorted({r.name for r in records})
    parts = []
    for name in names:
        values = sorted(
            r.latency_ms
            for r in records
            if r.name == name and start <= r.due < end and not r.dropped
        )
        parts.append(f"{name} {percentile(values, 95):.0f}/{percentile(values, 99):.0f}")
    return "p95/p99 ms by journey: " + ", ".join(parts)


def service_groups(state: PlatformState) -> dict[str, list[int]]:
    """The platform's processes by role: the daemon, then each service's replicas."""
    groups: dict[str, list[int]] = {"daemon": [state.pid]}
    for pid in descendants(state.pid)[1:]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        service = next((s for s in state.services if f"services.{s}:" in command), "other")
        groups.setdefault(service, []).append(pid)
    return groups


def drive(
    spec: LoadSpec, state: PlatformState, work: Path, windows: list[tuple[float, float]]
) -> tuple[list[RequestRecord], list[CpuMeter], list[str]]:
    """Run one load spec to its end; return its records, CPU use over each window (seconds
    from the first request) and the driver's warnings."""
    run = LoadRun(spec, state.gateway_url, work)
    meters = []
    with load_run(run):
        run.read()
        t0 = run.recorder.first_due or time.time()
        groups = {
            "locust": descendants(locust_pid(run)),
            **service_groups(state),
            "harness": [os.getpid()],
        }
        for start, end in windows:
            meter = CpuMeter(groups)
            time.sleep(max(0.0, t0 + start - time.time()))
            meter.start()
            time.sleep(max(0.0, t0 + end - time.time()))
            meter.stop()
            meters.append(meter)
        if not wait_for_exit(run, 20.0):
            print("Locust did not end by itself: stopping it")
    records = read_records(run.records_path)
    if not records:
        raise BenchError(f"{spec.profile.name}: no request recorded")
    return records, meters, run.warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--spike-at", type=float, default=10.0)
    parser.add_argument("--spike-window", type=float, default=10.0)
    parser.add_argument("--spike-factor", type=float, default=2.0)
    parser.add_argument("--target", type=Path, default=ROOT / "targets" / "local.yaml")
    args = parser.parse_args()
    if args.spike_at + args.spike_window >= args.duration:
        parser.error("the spike must end before the run does")
    print(f"machine: {machine()}")
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-") as tmp:
        root = Path(tmp)
        os.environ["SHAKEOUT_RUNTIME_DIR"] = str(root / "runtime")
        began = time.perf_counter()
        state, started = lifecycle.up(args.target, owner_pid=os.getpid())
        try:
            print(
                f"platform {state.target!r} up in {time.perf_counter() - began:.1f} s: "
                f"{len(state.replica_pids)} replicas, gateway {state.gateway_url}"
            )
            steady = LoadSpec(
                profile=ROOT / "loadprofiles" / "steady.py",
                rate_rps=args.rate,
                duration_s=args.duration,
                max_requests=int(args.rate * args.duration * 2),
            )
            (root / "steady").mkdir()
            records, meters, warnings = drive(
                steady, state, root / "steady", [(0.0, args.duration)]
            )
            t0 = min(r.due for r in records)
            phases.append(phase("steady", args.rate, records, t0, t0 + args.duration))
            print(phases[-1].line(), flush=True)
            print(f"{'':14s} {journeys_line(records, t0, t0 + args.duration)}")
            print(f"{'':14s} CPU (100% = one core): {meters[0].line()}", flush=True)
            for warning in warnings:
                print(f"{'':14s} driver: {warning}")
            spike = LoadSpec(
                profile=ROOT / "loadprofiles" / "spike.py",
                rate_rps=args.rate,
                duration_s=args.duration,
                max_requests=int(args.rate * args.spike_factor * args.duration * 2),
                shape_options=(
                    ("at_s", args.spike_at),
                    ("window_s", args.spike_window),
                    ("factor", args.spike_factor),
                ),
            )
            (root / "spike").mkdir()
            at, until = args.spike_at, args.spike_at + args.spike_window
            high = args.rate * args.spike_factor
            parts = [
                ("before spike", args.rate, 0.0, at),
                (f"spike {args.spike_factor:g}x", high, at, until),
                ("after spike", args.rate, until, args.duration),
            ]
            records, meters, warnings = drive(
                spike, state, root / "spike", [(start, end) for _, _, start, end in parts]
            )
            t0 = min(r.due for r in records)
            for (name, rate, start, end), meter in zip(parts, meters, strict=True):
                phases.append(phase(name, rate, records, t0 + start, t0 + end))
                print(phases[-1].line(), flush=True)
                print(f"{'':14s} {journeys_line(records, t0 + start, t0 + end)}")
                print(f"{'':14s} CPU (100% = one core): {meter.line()}", flush=True)
            for warning in warnings:
                print(f"{'':14s} driver: {warning}")
        finally:
            if started:
                lifecycle.down(state.target)
    met = all(p.p95_ms < P95_GOAL_MS for p in phases)
    print(f"p95 < {P95_GOAL_MS:g} ms in every phase: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        fail(str(exc))
