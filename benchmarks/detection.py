"""Benchmark: the platform finds a fault itself, whether the fault word or anyone else made it.

Run: ``python benchmarks/detection.py [--rate 40 --baseline 3 --fault 6 --after 8]``.

Two faults under the shop's mix (``loadprofiles/steady.py``, open model, 40 rps by default),
each made two ways, on a fresh ``targets/local.yaml`` platform every time:

* **fault word**: through the control API, as the drills' Chaos Toolkit actions do
  (``zone-freeze``: ``POST /v1/zones/b/freeze`` then ``resume``; ``replica-kill``:
  ``POST /v1/replicas/gateway-1/kill``);
* **unannounced**: the same signals sent from this script to the replicas' process groups
  (``SIGSTOP`` to every zone-b replica, then ``SIGCONT``; ``SIGKILL`` to gateway-1), nothing
  told to the platform. (A zone freeze through the fault word also stops the zone's node
  heartbeats, which no signal to the replicas can do: the node controller is a second,
  slower, way to find it.)

For each case and journey: requests, errors, p99, requests over 1 s, and impact and recovery as
a drill reads them (``RecordSet.impact`` with the SLO file's objectives: a request hurts when
it failed or reached the journey's latency bound; recovered once its objectives hold for 3 s).
And the platform's own detection, from its events: fault to its first reaction to a faulted
replica (an ejection by the router, a failed readiness probe, an exit seen), fault to every
faulted replica out of the endpoints, and revert (or kill) to every one ready again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _bench import ROOT, BenchError, load_run, machine, read_records, wait_for_exit

from shakeout._process import wait_for
from shakeout.load import LoadRun, LoadSpec
from shakeout.measure import RequestRecord
from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState
from shakeout.records import LatencyLimit, RecordSet
from shakeout.slofile import load_slo

JOURNEYS = ("browse", "checkout")
ZONE = "b"
REPLICA = "gateway-1"


@dataclass(frozen=True)
class Case:
    """One fault made one way."""

    fault: str  # zone-freeze | replica-kill
    how: str  # fault word | unannounced

    @property
    def label(self) -> str:
        """Row label."""
        return f"{self.fault}, {self.how}"


def _pids(client: lifecycle.PlatformClient, fault: str) -> dict[str, int]:
    replicas = client.replicas()
    if fault == "zone-freeze":
        return {r["id"]: r["pid"] for r in replicas if r["zone"] == ZONE and r["pid"]}
    return {r["id"]: r["pid"] for r in replicas if r["id"] == REPLICA}


def _inject(client: lifecycle.PlatformClient, case: Case, pids: dict[str, int]) -> None:
    if case.how == "fault word":
        if case.fault == "zone-freeze":
            client.zone_action(ZONE, "freeze")
        else:
            client.replica_action(REPLICA, "kill")
        return
    sig = signal.SIGSTOP if case.fault == "zone-freeze" else signal.SIGKILL
    for pid in pids.values():
        os.killpg(pid, sig)


def _revert(client: lifecycle.PlatformClient, case: Case, pids: dict[str, int]) -> None:
    if case.fault != "zone-freeze":
        return  # a killed replica is restarted by the platform itself
    if case.how == "fault word":
        client.zone_action(ZONE, "resume")
    else:
        for pid in pids.values():
            os.killpg(pid, signal.SIGCONT)


@dataclass
class Result:
    """What one case measured (times are Unix seconds; durations in seconds, None: never)."""

    case: Case
    records: list[RequestRecord]
    fault_start: float
    fault_end: float
    detected_s: float | None  # fault start -> the platform's first reaction to a faulted replica
    out_s: float | None  # fault start -> every faulted replica out of the endpoints
    back_s: float | None  # revert (freeze) or fault (kill) -> every faulted replica ready again
    events: list[dict[str, Any]]


def run_case(case: Case, args: argparse.Namespace, work: Path) -> Result:
    """Platform up, load, fault at ``baseline`` s, revert after ``fault`` s, load to the end."""
    os.environ["SHAKEOUT_RUNTIME_DIR"] = str(work / "runtime")
    state, _ = lifecycle.up(ROOT / "targets" / "local.yaml", owner_pid=os.getpid())
    try:
        return _drive(case, args, work, state)
    finally:
        lifecycle.down(state.target)


def _drive(case: Case, args: argparse.Namespace, work: Path, state: PlatformState) -> Result:
    duration = args.baseline + args.fault + args.after
    spec = LoadSpec(
        profile=ROOT / "loadprofiles" / "steady.py",
        rate_rps=args.rate,
        duration_s=duration,
        max_requests=int(args.rate * duration * 2),
    )
    run = LoadRun(spec, state.gateway_url, work)
    with lifecycle.PlatformClient(state) as client, load_run(run):
        since = max((e["seq"] for e in client.events()), default=0)
        run.read()
        first_due = run.recorder.first_due or time.time()
        pids = _pids(client, case.fault)
        time.sleep(max(0.0, first_due + args.baseline - time.time()))
        fault_start = time.time()
        _inject(client, case, pids)
        time.sleep(max(0.0, fault_start + args.fault - time.time()))
        fault_end = time.time()
        _revert(client, case, pids)
        wait_for(lambda: all(r["ready"] for r in client.replicas() if r["id"] in pids), 30)
        events = client.events(since)
        if not wait_for_exit(run, duration + 30):
            print("Locust did not end by itself: stopping it")
    records = read_records(run.records_path)
    if not records:
        raise BenchError(f"{case.label}: no request recorded")
    watched = set(pids)
    after = [e for e in events if e["t"] >= fault_start and e.get("replica") in watched]
    reactions = ("replica_ejected", "replica_not_ready", "replica_exited")
    detected = [e["t"] for e in after if e["kind"] in reactions]
    out: dict[str, float] = {}
    for e in after:
        if e["kind"] in ("replica_not_ready", "replica_exited"):
            out.setdefault(e["replica"], e["t"])
    revert = fault_end if case.fault == "zone-freeze" else fault_start
    back: dict[str, float] = {}
    for e in after:
        if e["kind"] == "replica_ready" and e["t"] >= revert and e["replica"] in out:
            back.setdefault(e["replica"], e["t"])
    return Result(
        case,
        records,
        fault_start,
        fault_end,
        (min(detected) - fault_start) if detected else None,
        (max(out.values()) - fault_start) if len(out) == len(watched) else None,
        (max(back.values()) - revert) if back and len(back) == len(out) else None,
        [e for e in events if e["t"] >= fault_start - 0.5],
    )


def _fmt(value: float | None, unit: str = "s") -> str:
    return "never" if value is None else f"{value:.2f} {unit}"


def report(results: list[Result]) -> list[str]:
    """The markdown table: one row per case and journey."""
    slo = load_slo(ROOT / "targets" / "local.slo.yaml")
    lines = [
        "| fault, made by | journey | requests | errors | p99 | over 1 s | first impact | "
        "impact window | recovery from fault start / end | detected | out of endpoints | "
        "back after revert (freeze) or kill |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        records = RecordSet(result.records)
        for journey in JOURNEYS:
            limits = [
                LatencyLimit(o.percentile, o.below_ms) for o in slo.latency if o.journey == journey
            ]
            rate = next((o.below_pct / 100 for o in slo.error_rate if o.journey == journey), 0.01)
            impact = records.impact(
                journey, result.fault_start, result.fault_end, rate, limits, 3.0
            )
            stats = records.stats(journey)
            slow = sum(
                1
                for r in result.records
                if r.name == journey and not r.dropped and r.latency_ms > 1000
            )
            lines.append(
                f"| {result.case.label} | {journey} | {stats.count} | {stats.errors} | "
                f"{stats.p99_ms:.0f} ms | {slow} | {_fmt(impact.first_impact_s)} | "
                f"{_fmt(impact.impact_window_s)} | {_fmt(impact.from_fault_start_s)} / "
                f"{_fmt(impact.from_fault_end_s)} | {_fmt(result.detected_s)} | "
                f"{_fmt(result.out_s)} | {_fmt(result.back_s)} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--baseline", type=float, default=3.0, help="seconds before the fault")
    parser.add_argument("--fault", type=float, default=6.0, help="seconds the fault lasts")
    parser.add_argument("--after", type=float, default=8.0, help="seconds of load after it")
    parser.add_argument("--only", help="run only the cases whose label contains this")
    parser.add_argument("--events", action="store_true", help="print each case's events")
    args = parser.parse_args()
    cases = [
        Case(fault, how)
        for fault in ("zone-freeze", "replica-kill")
        for how in ("fault word", "unannounced")
    ]
    cases = [c for c in cases if not args.only or args.only in c.label]
    print(f"machine: {machine()}")
    print(f"load: loadprofiles/steady.py, open model, {args.rate:g} rps; fault at "
          f"{args.baseline:g} s for {args.fault:g} s, then {args.after:g} s")  # fmt: skip
    results = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shakeout-detect-") as tmp:
        for n, case in enumerate(cases):
            work = Path(tmp) / f"case-{n}"
            work.mkdir()
            result = run_case(case, args, work)
            results.append(result)
            print(
                f"{case.label}: detected after {_fmt(result.detected_s)}, out of the "
                f"endpoints after {_fmt(result.out_s)}, back {_fmt(result.back_s)} after "
                "the revert or kill "
                f"({time.perf_counter() - began:.0f} s in)",
                flush=True,
            )
            if args.events:
                for event in result.events:
                    t = event["t"] - result.fault_start
                    detail = {k: v for k, v in event.items() if k not in ("seq", "t", "kind")}
                    print(f"  {t:+7.3f} s  {event['kind']}  {json.dumps(detail)}")
    print()
    print("\n".join(report(results)))


if __name__ == "__main__":
    main()
