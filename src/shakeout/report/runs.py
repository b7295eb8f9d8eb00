"""Reading one drill's run folder (``reports/runs/<stamp>-<slug>/``) for the report.

The engine writes the folder; the report only reads it. ``verdicts.json`` (schema 1) is the
report's main input; ``summary.json``, ``timeseries.json`` and ``platform-events.json`` add the
load statistics, the per-second series and the platform's events. Every file is optional except
the summary: a drill that crashed early still gets a report with what it left behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shakeout.errors import ConfigError

Outcome = Literal["pass", "fail", "inconclusive", "aborted", "error"]
VerdictStatus = Literal["pass", "fail", "inconclusive"]
Window = tuple[float | None, float | None]


class VerdictRow(BaseModel):
    """One judged objective, as the engine writes it in ``verdicts.json``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str
    objective: str
    journey: str | None = None
    phase: str = "drill"
    observed: float | None = None
    threshold: float | None = None
    unit: str | None = None
    samples: int | None = None
    status: VerdictStatus
    message: str = ""


class Recovery(BaseModel):
    """When the recovery journey was healthy again, counted from the fault's start and end."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    journey: str | None = None
    from_fault_start_s: float | None = None
    from_fault_end_s: float | None = None
    first_impact_s: float | None = None  # fault start to the first request it hurt
    impact_window_s: float | None = None  # first hurt request to recovery


class AlertFiring(BaseModel):
    """One firing of an alert during the drill (``verdicts.json`` ``alerts``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    alert: str
    labels: dict[str, str] = {}
    start: float
    end: float | None = None
    after_fault_s: float | None = None


class ServerSide(BaseModel):
    """A journey as the load and as the servers saw it (``verdicts.json`` ``server_side``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    journey: str
    where: str
    load_requests: int
    load_error_pct: float
    load_p95_ms: float | None = None
    server_requests: float | None = None
    server_error_pct: float | None = None
    server_p95_ms: float | None = None
    flag: str = ""


class Verdicts(BaseModel):
    """The whole of ``verdicts.json`` (schema 1)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # "schema" would shadow a BaseModel attribute, hence the alias.
    schema_: Literal[1] = Field(1, alias="schema")
    drill: str
    target: str
    outcome: Outcome
    error: str | None = None  # the exception that ended the drill, when one did
    phases: dict[str, Window] = {}
    recovery: Recovery | None = None
    budget_burned_pct: float | None = None
    verdicts: list[VerdictRow] = []
    alerts: list[AlertFiring] = []  # the target's alerts that fired (docs/observability.md)
    server_side: list[ServerSide] = []  # the servers' view of each journey beside the load's
    skipped: str | None = None  # why a step was skipped (then the outcome is not a pass)


@dataclass(frozen=True)
class Point:
    """One second of one journey's load."""

    t: float
    requests: int
    errors: int
    dropped: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class RunFolder:
    """Everything the report uses from one run folder."""

    path: Path
    drill: str
    target: str
    verdicts: Verdicts | None
    summary: dict[str, Any]
    series: dict[str, list[Point]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def journals(self) -> list[Path]:
        """The Chaos Toolkit journals of the drill's faults, in name order."""
        return sorted(self.path.glob("journal-*.json"))

    @property
    def outcome(self) -> Outcome | None:
        """The drill's outcome as the engine judged it, or None before ``verdicts.json``."""
        return self.verdicts.outcome if self.verdicts else None

    @property
    def fault_window(self) -> Window:
        """First fault start and last fault end (epoch seconds); from the journal's phases."""
        if self.verdicts and "fault" in self.verdicts.phases:
            start, end = self.verdicts.phases["fault"]
            if start is not None:
                return start, end
        faults = self.summary.get("faults") or []
        starts = [f["fault_start"] for f in faults if f.get("fault_start") is not None]
        ends = [f["fault_end"] for f in faults if f.get("fault_end") is not None]
        return (min(starts) if starts else None, max(ends) if ends else None)

    @property
    def rows(self) -> list[VerdictRow]:
        """The verdict rows; empty when the drill ended before judging anything."""
        return list(self.verdicts.verdicts) if self.verdicts else []


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from exc


def read_verdicts(path: Path) -> Verdicts:
    """Read and validate a ``verdicts.json``; errors name the file and the field."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, found {type(data).__name__}")
    try:
        return Verdicts.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: field {where}: {first['msg']}") from exc


def _read_series(path: Path) -> dict[str, list[Point]]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected {{journey: [points]}}, found {type(data).__name__}")
    series: dict[str, list[Point]] = {}
    for journey, points in data.items():
        try:
            series[journey] = [
                Point(
                    t=float(p["t"]),
                    requests=int(p["requests"]),
                    errors=int(p.get("errors", 0)),
                    dropped=int(p.get("dropped", 0)),
                    p50_ms=p.get("p50_ms"),
                    p95_ms=p.get("p95_ms"),
                    p99_ms=p.get("p99_ms"),
                )
                for p in points
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: journey {journey!r}: malformed point ({exc})") from exc
    return series


def read_run(path: Path) -> RunFolder:
    """Read a run folder; raise ConfigError naming the file when one is unreadable."""
    summary_path = path / "summary.json"
    verdicts_path = path / "verdicts.json"
    if not summary_path.exists() and not verdicts_path.exists():
        raise ConfigError(f"{path}: not a run folder (no summary.json or verdicts.json)")
    summary: dict[str, Any] = _read_json(summary_path) if summary_path.exists() else {}
    verdicts = read_verdicts(verdicts_path) if verdicts_path.exists() else None
    drill = verdicts.drill if verdicts else str(summary.get("drill", path.name))
    target = verdicts.target if verdicts else str(summary.get("target", "?"))
    series_path = path / "timeseries.json"
    events_path = path / "platform-events.json"
    events = _read_json(events_path) if events_path.exists() else []
    return RunFolder(
        path=path,
        drill=drill,
        target=target,
        verdicts=verdicts,
        summary=summary,
        series=_read_series(series_path) if series_path.exists() else {},
        events=events if isinstance(events, list) else [],
    )
