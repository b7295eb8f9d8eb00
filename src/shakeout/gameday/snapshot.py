"""The live snapshot: what the drill process publishes and the console and the page show.

The drill process (pytest, with ``--gameday DIR``) writes ``DIR/live.json`` about twice a
second; the console's terminal view (:mod:`shakeout.gameday.view`) and the room's read-only
page (:mod:`shakeout.gameday.page`) render the same document, so they never disagree. Times
are Unix epoch seconds; every list is newest last.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, TypedDict

VERSION = 1
LIVE_FILE = "live.json"
AMBER_WITHIN = 0.2  # an objective within 20% of its threshold shows amber
SPARK_S = 60  # the sparklines cover the last minute

Light = Literal["green", "amber", "red", "none"]


class Step(TypedDict):
    index: int  # 1-based
    total: int
    keyword: str  # Given / When / Then / And
    text: str


class Fault(TypedDict):
    word: str  # the fault word (zone-outage, dependency-latency, ...)
    step: str  # the step that injects it
    reach: str  # what it reaches: its blast radius
    started_at: float | None  # None until the method starts
    planned_s: float | None  # its planned duration (None: a fault without one)
    held_s: float  # added by the facilitator's holds
    hold_cap_s: float  # what the target allows in all (game_day.max_hold_s)
    ends_at: float | None  # when it is due to end: start + planned + held


class Spark(TypedDict):
    rate_rps: list[float]  # one value per second, at most SPARK_S
    error_pct: list[float]
    p95_ms: list[float | None]  # None: no request that second


class Journey(TypedDict):
    name: str
    rate_rps: float  # over the last 5 s
    p95_ms: float | None  # over the last 5 s
    p99_ms: float | None
    error_pct: float  # over the last 5 s
    spark: Spark


class ObjectiveLight(TypedDict):
    text: str  # "checkout error rate < 0.5%"
    journey: str
    observed: float | None  # over the drill so far, in ``unit``
    threshold: float
    unit: str  # "%" or "ms"
    light: Light
    burn_rate: float | None  # error-budget burn over the last 5 s (error objectives only)


class Line(TypedDict):
    t: float
    text: str


class Alert(TypedDict):
    name: str
    state: str  # firing / resolved
    since: float


class Control(TypedDict):
    t: float
    control: str  # go, no-go, hold, end-fault, abort, note, quit
    detail: str


class Snapshot(TypedDict):
    version: int
    feature: str
    feature_file: str
    scenario: str
    target: str
    now: float
    started_at: float
    state: str  # plan, waiting, running, checks, checklist, done, aborted
    prompt: str | None  # what the console waits for, in words ("go: the next step injects ...")
    step: Step | None
    phase: str | None  # baseline, fault, recovery, checks
    fault: Fault | None
    journeys: list[Journey]
    objectives: list[ObjectiveLight]
    events: list[Line]  # the platform's events, at most 50
    alerts: list[Alert]
    notes: list[Line]
    controls: list[Control]
    run_dir: str | None
    outcome: str | None  # the drill's outcome once it is known


def light(observed: float | None, threshold: float) -> Light:
    """Green below 80% of an upper bound, amber from there to it, red beyond it."""
    if observed is None:
        return "none"
    if observed > threshold:
        return "red"
    if observed >= (1.0 - AMBER_WITHIN) * threshold:
        return "amber"
    return "green"


def write(path: Path, snapshot: Snapshot | dict[str, Any]) -> None:
    """Replace ``path`` atomically (a reader never sees half a document)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".live-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(snapshot, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> Snapshot | None:
    """The latest snapshot, or None before the first one."""
    try:
        data: Snapshot = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data


def sample(now: float = 1_800_000_000.0) -> Snapshot:
    """A snapshot in the middle of a zone outage: for the view's and the page's tests."""
    spark: Spark = {
        "rate_rps": [8.0] * 50 + [7.0, 9.0] * 5,
        "error_pct": [0.0] * 54 + [0.0, 12.5, 25.0, 0.0, 0.0, 0.0],
        "p95_ms": [*([35.0] * 54), None, 180.0, 240.0, 60.0, 40.0, 38.0],
    }
    return {
        "version": VERSION,
        "feature": "Zone failure",
        "feature_file": "features/zone_failure.feature",
        "scenario": "Zone b failure and traffic fails over",
        "target": "local",
        "now": now,
        "started_at": now - 70.0,
        "state": "running",
        "prompt": None,
        "step": {
            "index": 4,
            "total": 10,
            "keyword": "When",
            "text": "zone b goes down for 6 seconds",
        },
        "phase": "fault",
        "fault": {
            "word": "zone-outage",
            "step": "When zone b goes down for 6 seconds",
            "reach": "zone b: 5 of 12 replicas (gateway-1, catalog-1, orders-1, payments-1, "
            "inventory-1)",
            "started_at": now - 4.0,
            "planned_s": 6.0,
            "held_s": 10.0,
            "hold_cap_s": 60.0,
            "ends_at": now + 12.0,
        },
        "journeys": [
            {
                "name": "browse",
                "rate_rps": 24.0,
                "p95_ms": 41.0,
                "p99_ms": 95.0,
                "error_pct": 0.0,
                "spark": spark,
            },
            {
                "name": "checkout",
                "rate_rps": 8.0,
                "p95_ms": 240.0,
                "p99_ms": 310.0,
                "error_pct": 0.4,
                "spark": spark,
            },
        ],
        "objectives": [
            {
                "text": "checkout error rate < 0.5%",
                "journey": "checkout",
                "observed": 0.42,
                "threshold": 0.5,
                "unit": "%",
                "light": "amber",
                "burn_rate": 4.2,
            },
            {
                "text": "checkout p95 < 300 ms",
                "journey": "checkout",
                "observed": 120.0,
                "threshold": 300.0,
                "unit": "ms",
                "light": "green",
                "burn_rate": None,
            },
            {
                "text": "browse error rate < 1%",
                "journey": "browse",
                "observed": 1.3,
                "threshold": 1.0,
                "unit": "%",
                "light": "red",
                "burn_rate": 13.0,
            },
        ],
        "events": [
            {"t": now - 4.0, "text": "zone b went down (fault)"},
            {"t": now - 3.1, "text": "zone b was found not ready"},
            {"t": now - 2.0, "text": "gateway-1 was ejected by the router"},
        ],
        "alerts": [{"name": "ZoneDown", "state": "firing", "since": now - 1.5}],
        "notes": [{"t": now - 2.5, "text": "on-call paged by the ZoneDown alert"}],
        "controls": [
            {"t": now - 30.0, "control": "go", "detail": "start"},
            {"t": now - 4.5, "control": "go", "detail": "When zone b goes down for 6 seconds"},
            {"t": now - 2.5, "control": "note", "detail": "on-call paged by the ZoneDown alert"},
            {"t": now - 1.0, "control": "hold", "detail": "+10 s (10 of 60 s)"},
        ],
        "run_dir": None,
        "outcome": None,
    }
