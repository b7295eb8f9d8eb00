"""Benchmark: ShakeOut's measurements against ground truth, beside a plain reference client.

Run: ``python benchmarks/fidelity.py [--rate 200 --duration 15 --stall 2]`` (about 3 minutes).

The server is ``benchmarks/ground_truth.py``: ``GET /`` answered exactly D ms after the request
reached it (kernel receive timestamp), stallable, with its own record of every request
(arrived, answered) and of each stall. In one run, for each case, two clients load it at the
same time, side by side:

* **ShakeOut**: :class:`shakeout.load.LoadRun` with ``benchmarks/profiles/fidelity_get.py`` (open
  model, constant arrivals, ``--rate`` rps for ``--duration`` s), exactly as a drill runs load;
* **reference**: a plain client in its own process (this script with ``--reference-client``):
  threads with one keep-alive ``http.client`` connection each, each taking the next slot of the
  same constant schedule, sleeping until it is due, sending, and timing from the due time.

Every request carries its client and due time in the query string, so each client record is
paired with the server's record of the same request. Cases: D = 5, 20 and 50 ms, and a stall of
``--stall`` s at D = 20 ms in the middle of the run; each **direct** (loopback) and **through the
embedded platform's router** (a temporary target whose only service is the ground-truth server).
Then, for information, the closed model with the same stall (direct).

Goals (issue 11), each checked against the server's record of the same requests:

* latency: ShakeOut's p50, p95 and p99 each within 5% of D (0.25 ms at D = 5 ms) of the
  server's same percentile (which is D when the server is exact; it is printed beside);
* stall: requests that saw it (latency above D + 100 ms), the largest gap between consecutive
  responses, and the largest latency, each within 5% or 100 ms (the larger) of the server's;
* throughput: the rate sent, ``(N - 1) / (last due - first due)`` from the records, and the
  Recorder's ``stats().throughput_rps``, within 1% of the rate asked;
* the generator's send lag (``started - due``) p99 under 1 ms.

It prints markdown tables and exits non-zero naming every goal missed (or when it could not
measure). Load goes to 127.0.0.1 only; every run is bounded in time and count; every process it
starts is stopped in a ``finally`` and dies with it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from _bench import (
    HERE,
    PROFILES,
    BenchError,
    fail,
    free_port,
    load_run,
    machine,
    percentile,
    read_records,
    started,
    wait_for_exit,
    wait_until,
)

from shakeout._process import tail
from shakeout.load import LoadRun, LoadSpec, Model
from shakeout.measure import RequestRecord
from shakeout.records import Impact, LatencyLimit, RecordSet

LATENCY_GOAL = 0.05  # of D
STALL_GOAL = (0.05, 0.100)  # 5% or 100 ms, whichever is larger
THROUGHPUT_GOAL = 0.01
LAG_GOAL_MS = 1.0
IMPACT_MS = 50.0  # recovery: a request hurts when it is this much slower than D
SAW_MS = 100.0  # a request "saw the stall" when its latency exceeded D by this much
DELAYS_MS = (5.0, 20.0, 50.0)
STALL_DELAY_MS = 20.0
BIN_S = 0.05  # closed model: start times are counted in bins this wide


# -- the reference client (runs in its own process) ------------------------------------------


def reference_client(url: str, rate: float, count: int, start_at: float, threads: int) -> str:
    """Send ``count`` GETs on a constant schedule from ``start_at``; the records as TSV lines
    ``due sent ended status error``."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK: wake within 1 us
    threading.stack_size(256 * 1024)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lock = threading.Lock()
    slots = iter(range(count))
    lines: list[str] = [""] * count

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host, port, timeout=60)

    def send(conn: http.client.HTTPConnection, due: float) -> tuple[int, str]:
        conn.request("GET", f"/?c=ref&due={due:.6f}")
        response = conn.getresponse()
        response.read()
        return response.status, "" if response.status == 200 else f"HTTP {response.status}"

    def worker() -> None:
        conn = connect()
        while True:
            with lock:
                i = next(slots, None)
            if i is None:
                break
            due = start_at + i / rate
            wait = due - time.time() - 0.0002
            if wait > 0:
                time.sleep(wait)
            while time.time() < due:
                time.sleep(0)
            sent = time.time()
            try:
                status, error = send(conn, due)
            except (ConnectionError, http.client.HTTPException):
                conn.close()  # an idle keep-alive connection closed by the other end: once more
                conn = connect()
                try:
                    status, error = send(conn, due)
                except (OSError, http.client.HTTPException) as exc:
                    status, error = 0, type(exc).__name__
            except OSError as exc:
                status, error = 0, type(exc).__name__
            ended = time.time()
            lines[i] = f"{due:.6f}\t{sent:.6f}\t{ended:.6f}\t{status}\t{error}\n"
        conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    deadline = start_at + count / rate + 90.0
    for thread in pool:
        thread.join(timeout=max(0.0, deadline - time.time()))
    return "".join(lines)


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One request as its client saw it, with the server's record of it when there is one."""

    due: float
    started: float
    ended: float
    ok: bool
    arrived: float | None = None
    answered: float | None = None

    @property
    def latency_ms(self) -> float:
        """From due to the end of the response."""
        return (self.ended - self.due) * 1000.0


@dataclass
class Truth:
    """The server's record of one case."""

    delay_ms: float
    stalls: list[tuple[float, float]]
    by_client: dict[str, dict[str, tuple[float, float]]]  # client -> due -> (arrived, answered)

    @classmethod
    def fetch(cls, url: str, keep: Path) -> Truth:
        """``GET /truth`` (a copy kept in ``keep``)."""
        with urllib.request.urlopen(f"{url}/truth", timeout=30) as response:
            raw = response.read()
        keep.write_bytes(raw)
        data = json.loads(raw)
        by_client: dict[str, dict[str, tuple[float, float]]] = {}
        for arrived, _read, answered, query in data["requests"]:
            params = parse_qs(query)
            client = params.get("c", ["?"])[0]
            due = params.get("due", [f"{arrived:.6f}"])[0]
            by_client.setdefault(client, {})[due] = (arrived, answered)
        if data["truncated"]:
            raise BenchError(f"the server dropped {data['truncated']} of its records")
        return cls(data["delay_ms"], [tuple(s) for s in data["stalls"]], by_client)

    def times_ms(self, client: str) -> list[float]:
        """The server's own answer times (answered - arrived) of one client's requests."""
        return sorted((b - a) * 1000.0 for a, b in self.by_client.get(client, {}).values())


Row = tuple[str, float, float, bool]  # due as written, started, ended, ok


def _pair(rows: Sequence[Row], truth: dict[str, tuple[float, float]]) -> list[Sent]:
    """Client rows (due as written, started, ended, ok) joined with the server's records."""
    out = []
    for due_text, start, end, ok in rows:
        arrived, answered = truth.get(due_text, (None, None))
        out.append(Sent(float(due_text), start, end, ok, arrived, answered))
    return out


def _shakeout_rows(run: LoadRun) -> tuple[list[Row], int]:
    rows, dropped = [], 0
    for record in read_records(run.records_path):
        if record.dropped:
            dropped += 1
            continue
        rows.append((f"{record.due:.6f}", record.started_at, record.ended_at, record.ok))
    return rows, dropped


def _reference_rows(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            due, sent, ended, _status, error = line.split("\t")
            rows.append((due, float(sent), float(ended), not error))
    return rows


# -- what is measured ------------------------------------------------------------------------


def _pcts(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return percentile(ordered, 50), percentile(ordered, 95), percentile(ordered, 99)


def _largest_gap(times: list[float]) -> float:
    ordered = sorted(times)
    return max((b - a for a, b in itertools.pairwise(ordered)), default=0.0)


@dataclass
class ClientResult:
    """What one client measured in one case, and the server's truth for its requests."""

    client: str
    sent: list[Sent]
    truth_ms: list[float]  # the server's answer times of this client's requests, sorted
    answered: list[float]  # the server's answer instants of this client's requests
    served: list[tuple[float, float]] = field(default_factory=list)  # (arrived, answered)
    dropped: int = 0
    recorder_rps: float | None = None

    @property
    def ok(self) -> list[Sent]:
        """Requests that got a good response."""
        return [s for s in self.sent if s.ok]

    @property
    def errors(self) -> int:
        """Requests that failed."""
        return sum(1 for s in self.sent if not s.ok)

    def latency(self) -> tuple[float, float, float]:
        """p50, p95, p99 of the latency from due, ms."""
        return _pcts([s.latency_ms for s in self.ok])

    def truth(self) -> tuple[float, float, float]:
        """p50, p95, p99 of the server's own answer times, ms."""
        return _pcts(self.truth_ms)

    def paired(self) -> list[Sent]:
        """Requests the server has a record of."""
        return [s for s in self.ok if s.arrived is not None]

    def parts(self) -> dict[str, tuple[float, float]]:
        """Where the time went, p50 and p99 in ms: send lag, to the server, back from it, and
        the whole overhead (client latency minus the server's time for the same request)."""
        paired = [
            (s, s.arrived, s.answered)
            for s in self.ok
            if s.arrived is not None and s.answered is not None
        ]

        def p(values: list[float]) -> tuple[float, float]:
            ordered = sorted(values)
            return percentile(ordered, 50), percentile(ordered, 99)

        return {
            "send lag": p([(s.started - s.due) * 1000 for s in self.ok]),
            "to server": p([(arrived - s.started) * 1000 for s, arrived, _ in paired]),
            "back": p([(s.ended - answered) * 1000 for s, _, answered in paired]),
            "overhead": p([s.latency_ms - (b - a) * 1000 for s, a, b in paired]),
        }

    def sent_rps(self) -> float:
        """(N - 1) / (last due - first due) of every request sent or dropped."""
        dues = sorted(s.due for s in self.sent)
        span = dues[-1] - dues[0] if len(dues) > 1 else 0.0
        return (len(dues) + self.dropped - 1) / span if span > 0 else 0.0

    def impact(self, stall: tuple[float, float], delay_ms: float) -> tuple[Impact, Impact]:
        """(measured, truth): first impact, impact window and recovery of the stall, as a
        drill reads them (``RecordSet.impact``: a request hurts from D + 50 ms; recovered once
        p99 < D + 50 ms holds for 3 s), from this client's records and from the server's record
        of the same requests (arrival as due, answer as end)."""

        def judge(records: list[RequestRecord]) -> Impact:
            limit = [LatencyLimit(99.0, delay_ms + IMPACT_MS)]
            return RecordSet(records).impact("get", stall[0], stall[1], 0.01, limit, 3.0)

        client = [
            RequestRecord(
                s.due, s.started, s.ended, "get", "GET", 200 if s.ok else 0, None if s.ok else "e"
            )
            for s in self.sent
        ]
        server = [RequestRecord(a, a, b, "get", "GET", 200, None) for a, b in self.served]
        return judge(client), judge(server)

    def stall(self, delay_ms: float) -> dict[str, tuple[float, float]]:
        """(measured, truth): requests that saw the stall, largest response gap (s), max latency
        (s)."""
        ok = self.ok
        return {
            "saw": (
                sum(1 for s in ok if s.latency_ms > delay_ms + SAW_MS),
                sum(1 for t in self.truth_ms if t > delay_ms + SAW_MS),
            ),
            "gap": (_largest_gap([s.ended for s in ok]), _largest_gap(self.answered)),
            "max": (
                max(s.latency_ms for s in ok) / 1000.0,
                (self.truth_ms[-1] if self.truth_ms else math.nan) / 1000.0,
            ),
        }


@dataclass(frozen=True)
class Case:
    """One run: where the load goes, the server's delay, a stall or not, and the model."""

    route: str  # "direct" or "router"
    delay_ms: float
    stall: bool = False
    model: Model = "open"

    @property
    def label(self) -> str:
        """``direct D=20 ms + 2 s stall``."""
        text = f"{self.route} D={self.delay_ms:g} ms"
        if self.stall:
            text += " + stall"
        if self.model == "closed":
            text += " (closed model)"
        return text


@dataclass
class CaseResult:
    """Both clients' results in one case."""

    case: Case
    stall_s: float | None
    clients: dict[str, ClientResult] = field(default_factory=dict)
    stall_window: tuple[float, float] | None = None  # the server's clock stopped, Unix s
    spread: float | None = None  # closed model: busiest 50 ms bin / mean bin


# -- running a case --------------------------------------------------------------------------


def _post(url: str, path: str) -> dict[str, float]:
    request = urllib.request.Request(f"{url}{path}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, float] = json.load(response)
    return answer


def _reference_threads(args: argparse.Namespace, case: Case) -> int:
    held_s = case.delay_ms / 1000.0 + (args.stall + 0.5 if case.stall else 0.1)
    return min(1000, math.ceil(float(args.rate) * held_s) + 8)


def run_case(case: Case, url: str, args: argparse.Namespace, work: Path) -> CaseResult:
    """Both clients at once against ``url``; the server's record read afterwards."""
    _post(url, f"/reset?delay_ms={case.delay_ms:g}")
    count = int(args.rate * args.duration)
    spec = LoadSpec(
        profile=PROFILES / "fidelity_get.py",
        rate_rps=args.rate,
        duration_s=args.duration,
        model=case.model,
        user_rps=2.0,
        max_requests=count * 2,
    )
    run = LoadRun(spec, url, work)
    reference_out = work / "reference.tsv"
    stall_s = None
    stall_window = None
    # The stall cases need both clients at once (one stall, seen by both); the latency cases
    # run them one after the other with --one-at-a-time, so neither takes CPU from the other.
    together = case.model == "open" and (case.stall or not args.one_at_a_time)

    def reference_command() -> list[str]:
        start_at = time.time() + 2.0  # the reference client's process needs time to start
        return [
            sys.executable,
            str(Path(__file__).resolve()),
            "--reference-client",
            url,
            "--rate",
            str(args.rate),
            "--count",
            str(count),
            "--start-at",
            f"{start_at:.6f}",
            "--threads",
            str(_reference_threads(args, case)),
            "--out",
            str(reference_out),
        ]

    def wait_reference(reference: subprocess.Popen[bytes]) -> None:
        ended = wait_until(lambda: reference.poll() is not None, args.duration + 90.0)
        if not ended or reference.returncode != 0:
            raise BenchError(
                f"{case.label}: the reference client failed or did not end\n"
                + tail(work / "reference.log")
            )

    log = work / "reference.log"
    with load_run(run):
        began = run.recorder.first_due or time.time()
        with contextlib.ExitStack() as stack:
            reference = None
            if together:
                reference = stack.enter_context(started(reference_command(), log, dict(os.environ)))
            if case.stall:
                time.sleep(max(0.0, began + args.duration / 2 - time.time()))
                window = _post(url, f"/stall?s={args.stall:g}")
                stall_s = window["end"] - window["start"]
                stall_window = (window["start"], window["end"])
            if not wait_for_exit(run, args.duration + 30.0):
                print(f"{case.label}: Locust did not end by itself; stopping it", flush=True)
            if reference is not None:
                wait_reference(reference)
    if case.model == "open" and not together:
        with started(reference_command(), log, dict(os.environ)) as reference:
            wait_reference(reference)
    truth = Truth.fetch(url, work / "truth.json")
    result = CaseResult(case, stall_s, stall_window=stall_window)
    rows, dropped = _shakeout_rows(run)
    sources = {"ShakeOut": ("so", rows)}
    if case.model == "open":
        sources["reference"] = ("ref", _reference_rows(reference_out))
    for name, (tag, client_rows) in sources.items():
        if not client_rows:
            raise BenchError(f"{case.label}: {name} recorded no request")
        records = truth.by_client.get(tag, {})
        result.clients[name] = ClientResult(
            client=name,
            sent=_pair(client_rows, records),
            truth_ms=truth.times_ms(tag),
            answered=[b for _, b in records.values()],
            served=list(records.values()),
        )
    shakeout = result.clients["ShakeOut"]
    shakeout.dropped = dropped
    shakeout.recorder_rps = run.recorder.stats().throughput_rps
    if case.model == "closed":
        result.spread = _spread([s.started for s in shakeout.sent], args.duration)
    return result


def _spread(starts: list[float], duration: float) -> float:
    """The busiest 50 ms bin of request starts over the mean bin, from 1 s in to 1 s before the
    end of the run (users spawn in the first second)."""
    if not starts:
        return math.nan
    first = min(starts)
    lo, hi = first + 1.0, first + duration - 1.0
    bins: dict[int, int] = {}
    for t in starts:
        if lo <= t < hi:
            bins[int((t - lo) / BIN_S)] = bins.get(int((t - lo) / BIN_S), 0) + 1
    n_bins = int((hi - lo) / BIN_S)
    mean = sum(bins.values()) / n_bins if n_bins else math.nan
    return max(bins.values(), default=0) / mean if mean else math.nan


@contextlib.contextmanager
def ground_truth_server(log: Path) -> Iterator[str]:
    """``benchmarks/ground_truth.py`` on a free loopback port: its base URL."""
    port = free_port()
    command = [sys.executable, str(HERE / "ground_truth.py"), "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with started(command, log, dict(os.environ)) as process:
        if not wait_until(lambda: process.poll() is not None or _ready(url), 20.0):
            raise BenchError("the ground-truth server did not answer within 20 s")
        if process.poll() is not None:
            raise BenchError(f"the ground-truth server exited\n{tail(log)}")
        yield url


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


TARGET = """\
# Temporary target of benchmarks/fidelity.py: the ground-truth server behind the router.
name: fidelity-bench
kind: local
description: ground-truth server behind the embedded router
platform:
  zones: [a]
  gateway: truth
  health_checks: true
  router: {{retries: 0, eject_after_failures: 0, timeout_s: 60}}
  rollout: {{auto_rollback: false}}
services:
  truth:
    command: ["{{python}}", "{server}", "--port", "{{port}}"]
    replicas: 1
"""


@contextlib.contextmanager
def platform(work: Path) -> Iterator[str]:
    """The embedded platform with the ground-truth server as its only service: the router's
    URL for it."""
    os.environ["SHAKEOUT_RUNTIME_DIR"] = str(work / "runtime")
    from shakeout.platform import lifecycle  # after the runtime folder is chosen

    target = work / "fidelity.yaml"
    target.write_text(TARGET.format(server=HERE / "ground_truth.py"), encoding="utf-8")
    state, _ = lifecycle.up(target, owner_pid=os.getpid())
    try:
        yield state.gateway_url
    finally:
        lifecycle.down(state.target)


# -- reporting -------------------------------------------------------------------------------


def _within(measured: float, truth: float, tolerance: float) -> bool:
    return abs(measured - truth) <= tolerance


def report(results: list[CaseResult], args: argparse.Namespace) -> list[str]:
    """Print the tables; return the goals missed."""
    missed: list[str] = []
    print("\n### Latency (ms): each client beside the server's own time for its requests\n")
    print(
        "| case | client | requests | p50 | p95 | p99 | server p50 / p95 / p99 | "
        "goal: ±5% of D off the server's | ShakeOut - reference |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.case.stall or r.case.model != "open":
            continue
        tolerance = LATENCY_GOAL * r.case.delay_ms
        reference = r.clients["reference"].latency()
        for name, c in r.clients.items():
            measured, truth = c.latency(), c.truth()
            off = [m - t for m, t in zip(measured, truth, strict=True)]
            worst = max(off, key=abs)
            verdict = "met" if abs(worst) <= tolerance else f"**NOT met** ({worst:+.2f})"
            versus = ""
            if name == "ShakeOut":
                versus = " / ".join(
                    f"{m - f:+.2f}" for m, f in zip(measured, reference, strict=True)
                )
                if abs(worst) > tolerance:
                    missed.append(
                        f"latency {r.case.label}: a percentile is {worst:+.2f} ms off the "
                        f"server's (goal ±{tolerance:.2f} ms)"
                    )
            else:
                verdict = f"({verdict})"
            print(
                f"| {r.case.label} | {name} | {len(c.ok):,} | {measured[0]:.2f} | "
                f"{measured[1]:.2f} | {measured[2]:.2f} | {truth[0]:.2f} / {truth[1]:.2f} / "
                f"{truth[2]:.2f} | {verdict} | {versus} |"
            )
    print("\n### Where the client's time goes (ms, p50 / p99), paired request by request\n")
    print(
        "| case | client | send lag (started - due) | to server (arrived - started) | "
        "back (ended - answered) | overhead (latency - server's time) |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        if r.case.model != "open":
            continue
        for name, c in r.clients.items():
            parts = c.parts()
            cells = " | ".join(f"{a:.3f} / {b:.3f}" for a, b in parts.values())
            print(f"| {r.case.label} | {name} | {cells} |")
            lag99 = parts["send lag"][1]
            if name == "ShakeOut" and lag99 >= LAG_GOAL_MS:
                missed.append(f"send lag {r.case.label}: p99 {lag99:.3f} ms (goal < 1 ms)")
    print(f"\n### Stall of {args.stall:g} s: measured vs the server's record\n")
    print(
        "| case | client | stall made | saw it (> D + 100 ms) | largest response gap (s) | "
        "max latency (s) | goal (5% or 100 ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if not r.case.stall:
            continue
        for name, c in r.clients.items():
            s = c.stall(r.case.delay_ms)
            saw, gap, top = s["saw"], s["gap"], s["max"]
            bad = []
            if not _within(saw[0], saw[1], max(STALL_GOAL[0] * saw[1], 0.5)):
                bad.append(f"saw it {saw[0]} vs {saw[1]}")
            for label, (m, t) in (("largest gap", gap), ("max latency", top)):
                if not _within(m, t, max(STALL_GOAL[0] * t, STALL_GOAL[1])):
                    bad.append(f"{label} {m:.3f} vs {t:.3f} s")
            verdict = "met" if not bad else "**NOT met**: " + "; ".join(bad)
            if name == "ShakeOut" and r.case.model == "open" and bad:
                missed.append(f"stall {r.case.label}: " + "; ".join(bad))
            if r.case.model != "open":
                verdict = f"(closed model, for information: {verdict})"
            elif name != "ShakeOut":
                verdict = f"({verdict})"
            print(
                f"| {r.case.label} | {name} | {r.stall_s or 0:.3f} s | {saw[0]:.0f} vs "
                f"{saw[1]:.0f} | {gap[0]:.3f} vs {gap[1]:.3f} | {top[0]:.3f} vs {top[1]:.3f} | "
                f"{verdict} |"
            )
    print(f"\n### Impact and recovery of the {args.stall:g} s stall, as a drill reads them\n")
    print(
        "| case | client | stall made (s) | first impact (s) | impact window (s) | "
        "recovery from the stall's start (s) | goal (5% or 100 ms of the server's) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if not r.case.stall or r.stall_window is None or r.case.model != "open":
            continue
        for name, c in r.clients.items():
            measured, truth = c.impact(r.stall_window, r.case.delay_ms)

            def show(m: float | None, t: float | None) -> str:
                return " vs ".join("never" if v is None else f"{v:.3f}" for v in (m, t))

            got, want = measured.from_fault_start_s, truth.from_fault_start_s
            ok = (
                got is not None
                and want is not None
                and _within(got, want, max(STALL_GOAL[0] * want, STALL_GOAL[1]))
            )
            verdict = "met" if ok else f"**NOT met** ({show(got, want)})"
            if name == "ShakeOut" and not ok:
                missed.append(f"recovery {r.case.label}: {show(got, want)} s")
            if name != "ShakeOut":
                verdict = f"({verdict})"
            print(
                f"| {r.case.label} | {name} | {r.stall_s or 0:.3f} | "
                f"{show(measured.first_impact_s, truth.first_impact_s)} | "
                f"{show(measured.impact_window_s, truth.impact_window_s)} | "
                f"{show(got, want)} | {verdict} |"
            )
    print(f"\n### Throughput of ShakeOut's runs (rate asked {args.rate:g} rps)\n")
    print("| case | requests | dropped | errors | sent (records) | Recorder throughput_rps | "
          "server received | goal (±1%) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        c = r.clients["ShakeOut"]
        sent = c.sent_rps()
        recorder = c.recorder_rps or 0.0
        arrived = sorted(s.arrived for s in c.sent if s.arrived is not None)
        received = (len(arrived) - 1) / (arrived[-1] - arrived[0]) if len(arrived) > 1 else 0.0
        bad = [
            f"{label} {value:.1f} rps"
            for label, value in (("sent", sent), ("Recorder", recorder))
            if abs(value - args.rate) > THROUGHPUT_GOAL * args.rate
        ]
        verdict = "met" if not bad else "**NOT met**: " + ", ".join(bad)
        if r.case.model != "open":
            verdict = "(closed model: no goal)"
        elif bad:
            missed.append(f"throughput {r.case.label}: " + ", ".join(bad))
        print(
            f"| {r.case.label} | {len(c.sent):,} | {c.dropped} | {c.errors} | {sent:.2f} | "
            f"{recorder:.2f} | {received:.2f} | {verdict} |"
        )
    for r in results:
        if r.spread is not None:
            print(
                f"\n{r.case.label}: request starts' busiest 50 ms bin holds {r.spread:.2f}x "
                "the mean bin (users spread, not in lockstep, when this is small)"
            )
    for r in results:
        for name, c in r.clients.items():
            if c.errors:
                missed.append(f"{r.case.label}: {name} had {c.errors} failed requests")
            unpaired = len(c.ok) - len(c.paired())
            if unpaired:
                missed.append(f"{r.case.label}: {unpaired} {name} requests not in the server's")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per case")
    parser.add_argument("--stall", type=float, default=2.0, help="seconds")
    parser.add_argument("--route", choices=["direct", "router", "both"], default="both")
    parser.add_argument("--no-closed", action="store_true", help="skip the closed-model case")
    parser.add_argument("--keep", type=Path, help="keep every run's files in this folder")
    parser.add_argument("--only", help="run only the cases whose label contains this")
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="latency cases: ShakeOut, then the reference client (not both at once)",
    )
    # The reference client's own process:
    parser.add_argument("--reference-client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_client:
        if not args.reference_client.startswith("http://127.0.0.1:") or args.out is None:
            parser.error("the reference client loads 127.0.0.1 only and needs --out")
        text = reference_client(
            args.reference_client, args.rate, args.count, args.start_at, args.threads
        )
        args.out.write_text(text, encoding="utf-8")
        return
    if not 0 < args.rate <= 2000 or not 5 <= args.duration <= 120:
        parser.error("--rate must be in (0, 2000] and --duration in [5, 120]")
    if not 0 < args.stall < args.duration / 3:
        parser.error("--stall must be positive and under a third of --duration")
    routes = ["direct", "router"] if args.route == "both" else [args.route]
    print(f"machine: {machine()}")
    print(
        f"ground truth: benchmarks/ground_truth.py; {args.rate:g} rps for {args.duration:g} s "
        f"per case, ShakeOut (open model, constant arrivals) and the reference client at once; "
        f"D = {', '.join(f'{d:g}' for d in DELAYS_MS)} ms; stall {args.stall:g} s at "
        f"D = {STALL_DELAY_MS:g} ms",
        flush=True,
    )
    began = time.monotonic()
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="shakeout-bench-") as tmp:
        root = Path(tmp)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            root = args.keep
        for route in routes:
            cases = [Case(route, d) for d in DELAYS_MS] + [Case(route, STALL_DELAY_MS, True)]
            if route == "direct" and not args.no_closed:
                cases.append(Case(route, STALL_DELAY_MS, True, "closed"))
            cases = [c for c in cases if args.only is None or args.only in c.label]
            if not cases:
                continue
            with contextlib.ExitStack() as stack:
                if route == "direct":
                    url = stack.enter_context(ground_truth_server(root / "server.log"))
                else:
                    url = stack.enter_context(platform(root))
                for i, case in enumerate(cases):
                    work = root / f"{route}-{i}"
                    work.mkdir(exist_ok=True)
                    result = run_case(case, url, args, work)
                    results.append(result)
                    so = result.clients["ShakeOut"]
                    p = so.latency()
                    print(
                        f"{case.label}: ShakeOut {len(so.sent)} requests p50/p95/p99 "
                        f"{p[0]:.2f}/{p[1]:.2f}/{p[2]:.2f} ms, server's "
                        + "/".join(f"{t:.2f}" for t in so.truth())
                        + f" ms ({time.monotonic() - began:.0f} s in)",
                        flush=True,
                    )
    missed = report(results, args)
    print(f"\nwhole run: {time.monotonic() - began:.0f} s")
    if missed:
        print("\nGOALS MISSED:\n" + "\n".join(f"- {m}" for m in missed))
        raise SystemExit(1)
    print("\nevery goal met")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        fail(str(exc))
    except subprocess.SubprocessError as exc:
        fail(f"a child process failed: {exc}")
