"""The drill side of a game day: the live snapshot out, the facilitator's controls in.

The console (:mod:`shakeout.gameday.console`) runs the drills in a pytest child with
``--gameday DIR``; they meet only through files in ``DIR``, so that neither imports the
other's event loop or signal handlers:

- ``live.json``: the snapshot (:mod:`shakeout.gameday.snapshot`), rewritten every second and
  at every change by a thread of the drill process;
- ``controls.jsonl``: the console appends one line per control (go, no-go, hold, end-fault,
  note, abort); the drill process applies them as they come. Abort is also a SIGINT to the
  drill process, which plays the fault's rollbacks exactly as Ctrl-C does;
- ``hold.json`` / ``holding.json``: a hold's extra seconds, read by the fault's own
  ``hold-the-fault`` probe (:mod:`shakeout.chaos.hold`);
- ``scenarios/NN.json``: each scenario's final snapshot and timeline, for the record.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shakeout.chaos.hold import EXTRA_FILE, HOLDING_FILE, write_json
from shakeout.errors import PlatformError
from shakeout.events import EVENT_WORDS, describe
from shakeout.gameday import snapshot as snap
from shakeout.measure import Recorder

if TYPE_CHECKING:
    from shakeout.drill import Drill

CONTROLS_FILE = "controls.jsonl"
PID_FILE = "drill.pid"
SCENARIOS_DIR = "scenarios"
HOLD_STEP_S = 10.0  # one press of "hold" adds this much
GAMEDAY_LOAD_S = 1800.0  # a game day's load may run this long (a room talks; still bounded)
RECENT_S = 5  # rate, percentiles, error rate and burn rate over the last 5 complete seconds
PUBLISH_S = 1.0


def send(directory: Path, control: str, detail: str = "") -> None:
    """Append one control for the drill process (the console's side); one write per line, so
    a reader never sees half of one."""
    line = json.dumps({"t": time.time(), "control": control, "detail": detail}) + "\n"
    fd = os.open(directory / CONTROLS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


class ControlTail:
    """The controls appended since the last read (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> list[dict[str, Any]]:
        """New controls, oldest first."""
        try:
            with self.path.open("rb") as source:
                source.seek(self._offset)
                data = source.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


class _Sparks:
    """Per-second figures of each journey, computed once per complete second (a second's
    histogram is decoded once, not at every refresh)."""

    def __init__(self) -> None:
        self._done: dict[tuple[str, int], tuple[float, float, float | None, int, int]] = {}

    def second(
        self, recorder: Recorder, name: str, second: int, now: float
    ) -> tuple[float, float, float | None, int, int]:
        key = (name, second)
        found = self._done.get(key)
        if found is not None:
            return found
        stats = recorder.stats(name, second, second + 1)
        p95 = None if math.isnan(stats.p95_ms) else round(stats.p95_ms, 1)
        value = (float(stats.count), stats.error_rate * 100.0, p95, stats.count, stats.errors)
        if second < now - 4:  # complete: late records are rare and the verdicts are exact
            self._done[key] = value
        return value


class GameDayRun:
    """One console's drills, seen from the drill process (one per pytest session)."""

    def __init__(self, directory: Path, *, auto: bool, hold_cap_s: float) -> None:
        self.dir = directory
        self.auto = auto
        self.hold_cap_s = hold_cap_s
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / SCENARIOS_DIR).mkdir(exist_ok=True)
        (self.dir / PID_FILE).write_text(str(os.getpid()), encoding="utf-8")  # for --attach
        self._tail = ControlTail(self.dir / CONTROLS_FILE)
        self._lock = threading.RLock()
        self._go = threading.Event()
        self._nogo = False
        self._waiting_for = ""  # what a go answers: "start" or the fault step
        self._aborted = False
        self._end_fault: str | None = None
        self._stop = threading.Event()
        self._dirty = threading.Event()  # a change to publish now, not at the next second
        self._sparks = _Sparks()
        self._scenarios = 0
        self.drill: Drill | None = None
        self.doc: dict[str, Any] = {}
        self.timeline: list[dict[str, Any]] = []
        self._events_since = 0
        self._thread = threading.Thread(target=self._run, name="gameday", daemon=True)
        self._thread.start()

    # -- the plugin's calls (main thread) ------------------------------------------------

    def begin(self, header: dict[str, Any], plan: dict[str, Any], drill: Drill) -> None:
        """A scenario starts: publish its plan; the drill's faults may be ended early."""
        with self._lock:
            self._scenarios += 1
            self.drill = drill
            drill.max_load_s = GAMEDAY_LOAD_S
            drill.injector.end_early = self._ending
            self._events_since = _last_event(drill)
            self.timeline = []
            self.doc = {
                **header,
                "version": snap.VERSION,
                "started_at": time.time(),
                "state": "plan",
                "prompt": None,
                "step": None,
                "phase": None,
                "fault": None,
                "journeys": [],
                "objectives": [],
                "events": [],
                "alerts": [],
                "notes": [],
                "controls": [],
                "run_dir": str(drill.run_dir),
                "outcome": None,
                "plan": plan,
            }
            self._mark("scenario", header["scenario"])
        self._dirty.set()

    def wait_for_go(self, prompt: str, what: str, tick: Callable[[], None] | None = None) -> bool:
        """Wait for the facilitator's go (True) or no-go (False) on ``what`` (``prompt``
        says it to the room); at once in ``--auto``."""
        if self.auto:
            return True
        with self._lock:
            self._go.clear()
            self._waiting_for = what
            self.doc.update(state="waiting", prompt=prompt)
        self._dirty.set()
        while not self._go.wait(0.2):  # woken by the control thread, or ticks the load
            if tick is not None:
                tick()
        with self._lock:
            self.doc.update(state="running", prompt=None)
            go = not self._nogo
            self._nogo = False
        self._dirty.set()
        return go

    def step(self, index: int, total: int, keyword: str, text: str) -> None:
        """A step begins."""
        with self._lock:
            self.doc["step"] = {"index": index, "total": total, "keyword": keyword, "text": text}
            if keyword == "Then" or (keyword == "And" and self.doc.get("phase") == "checks"):
                self.doc["phase"] = "checks"
            self._mark("step", f"{keyword} {text}")
        self._dirty.set()

    def fault(self, word: str, step: str, reach: str, planned_s: float | None) -> None:
        """A fault step begins (its method starts once the steady state is confirmed)."""
        with self._lock:
            self._end_fault = None
            write_json(self.dir / EXTRA_FILE, {"extra_s": 0.0})
            (self.dir / HOLDING_FILE).unlink(missing_ok=True)
            self.doc["fault"] = {
                "word": word,
                "step": step,
                "reach": reach,
                "started_at": None,
                "planned_s": planned_s,
                "held_s": 0.0,
                "hold_cap_s": self.hold_cap_s,
                "ends_at": None,
            }
            self.doc["phase"] = "fault"
        self._dirty.set()

    def fault_done(self) -> None:
        """The fault step ended (rolled back): recovery."""
        with self._lock:
            fault = self.doc.get("fault")
            if fault is not None:
                self._mark("fault-end", f"{fault['word']} rolled back")
            self.doc["fault"] = None
            self.doc["phase"] = "recovery"
        self._dirty.set()

    def end(self, outcome: str | None) -> Path:
        """The scenario ended (however): keep its final snapshot and timeline."""
        self._dirty.set()
        with self._lock:
            if self._aborted:  # interrupted: no verdict can say otherwise
                outcome = "aborted"
            self.doc.update(state="done", prompt=None, outcome=outcome)
            self._mark("outcome", outcome or "unknown")
            path = self.dir / SCENARIOS_DIR / f"{self._scenarios:02d}.json"
            final = {**self.doc, "timeline": self.timeline}
            path.write_text(json.dumps(final, indent=2, default=str), encoding="utf-8")
            self.drill = None
        self._dirty.set()
        return path

    def close(self) -> None:
        """Stop the publishing thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    # -- controls (the thread) -----------------------------------------------------------

    def _ending(self) -> str | None:
        with self._lock:
            return self._end_fault

    def _mark(self, kind: str, text: str, t: float | None = None) -> None:
        self.timeline.append({"t": time.time() if t is None else t, "kind": kind, "text": text})

    def _apply(self, control: dict[str, Any]) -> None:
        kind, detail, t = str(control["control"]), str(control.get("detail", "")), control["t"]
        if kind == "hold":
            detail = self._hold()
        elif kind == "end-fault":
            fault = self.doc.get("fault")
            if fault is None:
                detail = "no fault is active"
            else:
                self._end_fault = "ended early by the facilitator"
                detail = f"{fault['word']} ended early"
        elif kind == "note":
            self.doc.setdefault("notes", []).append({"t": t, "text": detail})
        elif kind in ("go", "no-go"):
            self._nogo = kind == "no-go"
            detail = detail or self._waiting_for
            self._go.set()
        elif kind in ("abort", "quit"):
            self._aborted = True
        self.doc.setdefault("controls", []).append({"t": t, "control": kind, "detail": detail})
        self._mark("control", f"{kind}: {detail}" if detail else kind, t)

    def _hold(self) -> str:
        fault = self.doc.get("fault")
        if fault is None:
            return "refused: no fault is active"
        held = float(fault["held_s"])
        if held + HOLD_STEP_S > self.hold_cap_s:
            return f"refused: the target allows {self.hold_cap_s:g} s of hold in all"
        fault["held_s"] = held + HOLD_STEP_S
        write_json(self.dir / EXTRA_FILE, {"extra_s": fault["held_s"]})
        return f"+{HOLD_STEP_S:g} s ({fault['held_s']:g} of {self.hold_cap_s:g} s)"

    def _run(self) -> None:
        next_at = 0.0
        while not self._stop.is_set():
            controls = self._tail.read()
            if controls:
                with self._lock:
                    for control in controls:
                        self._apply(control)
            if controls or self._dirty.is_set() or time.monotonic() >= next_at:
                self._dirty.clear()
                with contextlib.suppress(Exception):  # the view must never break a drill
                    self.publish()
                next_at = time.monotonic() + PUBLISH_S
            self._stop.wait(0.1)  # polls controls.jsonl: a control is seen within 0.1 s

    # -- the snapshot ----------------------------------------------------------------------

    def publish(self) -> None:
        """Write the current snapshot (only this module's thread calls it: measuring reads
        a second's histograms once, and the main thread never waits on it)."""
        with self._lock:
            if not self.doc:
                return
            self.doc["now"] = time.time()
            self._update_fault(self.doc)
            drill = self.drill
        if drill is not None:
            measured = self._measure(drill)
            events, alerts = self._events(drill)
            with self._lock:
                if measured is not None:
                    self.doc["journeys"], self.doc["objectives"] = measured
                self.doc["events"] = (self.doc["events"] + events)[-50:]
                for event in events:
                    self._mark("event", event["text"], event["t"])
                if alerts is not None:
                    self.doc["alerts"] = alerts
        with self._lock:
            snap.write(self.dir / snap.LIVE_FILE, self.doc)

    def _update_fault(self, doc: dict[str, Any]) -> None:
        fault = doc.get("fault")
        if fault is None or fault["started_at"] is not None:
            if fault is not None:
                planned = fault["planned_s"] or 0.0
                fault["ends_at"] = fault["started_at"] + planned + fault["held_s"]
            return
        with contextlib.suppress(OSError, ValueError, KeyError):
            holding = json.loads((self.dir / HOLDING_FILE).read_text(encoding="utf-8"))
            fault["started_at"] = float(holding["since"])
            fault["planned_s"] = float(holding["planned_s"])
            self._mark(
                "fault-start",
                f"{fault['word']} in place, planned for {fault['planned_s']:g} s",
                fault["started_at"],
            )

    def _measure(self, drill: Drill) -> tuple[list[Any], list[Any]] | None:
        load = drill.load
        if load is None:
            return None
        recorder = load.recorder
        now = time.time()
        last = int(now) - 1  # the newest complete second
        journeys = []
        recent: dict[str, tuple[int, int]] = {}
        for name in recorder.names():
            seconds = [
                self._sparks.second(recorder, name, s, now) for s in range(last - 59, last + 1)
            ]
            tail = seconds[-RECENT_S:]
            count, errors = sum(s[3] for s in tail), sum(s[4] for s in tail)
            recent[name] = (count, errors)
            window = recorder.stats(name, last - RECENT_S + 1, last + 1)
            journeys.append(
                {
                    "name": name,
                    "rate_rps": count / RECENT_S,
                    "p95_ms": None if math.isnan(window.p95_ms) else round(window.p95_ms, 1),
                    "p99_ms": None if math.isnan(window.p99_ms) else round(window.p99_ms, 1),
                    "error_pct": 100.0 * errors / count if count else 0.0,
                    "spark": {
                        "rate_rps": [s[0] for s in seconds],
                        "error_pct": [s[1] for s in seconds],
                        "p95_ms": [s[2] for s in seconds],
                    },
                }
            )
        return journeys, _objectives(drill, recorder, recent)

    def _events(self, drill: Drill) -> tuple[list[dict[str, Any]], list[Any] | None]:
        """The target's events since the last call, and the alerts firing or resolved since
        the drill began (None when they cannot be read)."""
        found: list[dict[str, Any]] = []
        with contextlib.suppress(PlatformError, OSError):
            for event in drill.platform.events(self._events_since):
                self._events_since = max(self._events_since, int(event["seq"]))
                found.append({"t": float(event["t"]), "text": _event_text(event)})
        alerts = None
        with contextlib.suppress(Exception):  # alerting is best effort in the live view
            alerts = [
                {
                    "name": span.who,
                    "state": "firing" if span.end is None else "resolved",
                    "since": span.start,
                }
                for span in drill.alerts.live()
            ]
        return found, alerts


def _last_event(drill: Drill) -> int:
    with contextlib.suppress(PlatformError, OSError):
        events = drill.platform.events()
        return int(events[-1]["seq"]) if events else 0
    return 0


def _event_text(event: dict[str, Any]) -> str:
    kind = str(event.get("kind", "event"))
    who = [str(event[k]) for k in ("replica", "zone", "service") if event.get(k)]
    text = describe(kind) if kind in EVENT_WORDS else kind.replace("_", " ")
    return text + (f" ({', '.join(who)})" if who else "")


def _objectives(
    drill: Drill, recorder: Recorder, recent: dict[str, tuple[int, int]]
) -> list[dict[str, Any]]:
    """The SLO file's latency and error-rate objectives over the drill so far, as lights."""
    slo = drill.slo
    if slo is None:
        return []
    budget = 1.0 - slo.error_budget.availability_pct / 100.0
    lights: list[dict[str, Any]] = []
    for error in slo.error_rate:
        stats = recorder.stats(error.journey)
        observed = stats.error_rate * 100.0 if stats.count else None
        count, errors = recent.get(error.journey, (0, 0))
        burn = (errors / count) / budget if count and budget > 0 else None
        lights.append(
            {
                "text": f"{error.journey} error rate < {error.below_pct:g}%",
                "journey": error.journey,
                "observed": None if observed is None else round(observed, 2),
                "threshold": error.below_pct,
                "unit": "%",
                "light": snap.light(observed, error.below_pct),
                "burn_rate": None if burn is None else round(burn, 1),
            }
        )
    for latency in slo.latency:
        stats = recorder.stats(latency.journey)
        value = stats.latency_ms(latency.percentile)
        observed = None if math.isnan(value) else round(value, 1)
        lights.append(
            {
                "text": f"{latency.journey} p{latency.percentile} < {latency.below_ms:g} ms",
                "journey": latency.journey,
                "observed": observed,
                "threshold": latency.below_ms,
                "unit": "ms",
                "light": snap.light(observed, latency.below_ms),
                "burn_rate": None,
            }
        )
    return lights
