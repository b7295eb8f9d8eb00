"""Service-level objectives and verdicts computed from per-request records.

A verdict is data: the objective, the observed value, the number of samples, and one of
``pass``, ``fail`` or ``inconclusive`` (too few samples is never a silent pass). Its message
names the objective, the window, the observed value and the objective value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from shakeout.measure import Recorder

MIN_SAMPLES = 20

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Objective:
    """One objective: a metric of a journey kept below a threshold."""

    journey: str
    metric: Literal["latency", "error_rate"]
    threshold: float
    percentile: float = 95.0

    def describe(self) -> str:
        """Human wording, e.g. ``checkout p95 latency < 300 ms``."""
        if self.metric == "latency":
            return f"{self.journey} p{self.percentile:g} latency < {self.threshold:g} ms"
        return f"{self.journey} error rate < {self.threshold * 100:g}%"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one objective over one window."""

    objective: Objective
    window: str
    observed: float
    samples: int
    status: Status

    @property
    def passed(self) -> bool:
        """True only for ``pass``."""
        return self.status == "pass"

    def observed_text(self) -> str:
        """The observed value with its unit."""
        if math.isnan(self.observed):
            return "no data"
        if self.objective.metric == "latency":
            return f"{self.observed:.1f} ms"
        return f"{self.observed * 100:.2f}%"

    @property
    def message(self) -> str:
        """One line naming objective, window, observed value and objective value."""
        head = {
            "pass": "SLO met",
            "fail": "SLO breached",
            "inconclusive": "SLO inconclusive",
        }[self.status]
        text = (
            f"{head}: {self.objective.describe()} over {self.window}: "
            f"observed {self.observed_text()} ({self.samples} requests)"
        )
        if self.status == "inconclusive":
            text += f"; at least {MIN_SAMPLES} requests are needed for a verdict"
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, kept with the run."""
        return {**asdict(self), "message": self.message}


def evaluate(
    objective: Objective,
    recorder: Recorder,
    window: str = "the drill",
    start: float | None = None,
    end: float | None = None,
) -> Verdict:
    """Judge one objective on the requests due within ``[start, end)``."""
    stats = recorder.stats(objective.journey, start, end)
    if objective.metric == "latency":
        observed = stats.latency_ms(objective.percentile)
    else:
        observed = stats.error_rate
    status: Status
    if stats.count < MIN_SAMPLES:
        status = "inconclusive"
    else:
        status = "pass" if observed < objective.threshold else "fail"
    return Verdict(objective, window, observed, stats.count, status)


def recovery_time(
    recorder: Recorder, journey: str, fault_start: float, max_error_rate: float, sustain_s: int = 3
) -> float | None:
    """Seconds from ``fault_start`` until the journey's error rate stayed at or below
    ``max_error_rate`` for ``sustain_s`` whole seconds in a row; None if it never did."""
    series = [row for row in recorder.series(journey) if row["t"] >= int(fault_start)]
    good = 0
    for i, row in enumerate(series):
        requests = int(row["requests"])
        ok = requests > 0 and int(row["errors"]) / requests <= max_error_rate
        good = good + 1 if ok else 0
        if good >= sustain_s:
            return max(0.0, float(series[i - sustain_s + 1]["t"]) - fault_start)
    return None


def burn_alert(
    recorder: Recorder,
    budget: float,
    long_s: int,
    short_s: int,
    factor: float,
    start: float | None = None,
    end: float | None = None,
) -> tuple[float, float, float] | None:
    """First second at which both windows burned the error budget faster than ``factor``.

    Returns ``(t, long_burn, short_burn)``, or None when the alert never fired. Burn rate is
    the error rate over a window divided by the budget (1 - availability).
    """
    rows = [r for r in recorder.series(None) if (start is None or r["t"] >= int(start))]
    rows = [r for r in rows if end is None or r["t"] < end]

    def burn(upto: int, window: int) -> float:
        chosen = rows[max(0, upto - window + 1) : upto + 1]
        requests = sum(int(r["requests"]) for r in chosen)
        errors = sum(int(r["errors"]) for r in chosen)
        return (errors / requests) / budget if requests else 0.0

    for i, row in enumerate(rows):
        long_burn, short_burn = burn(i, long_s), burn(i, short_s)
        if long_burn > factor and short_burn > factor:
            return float(row["t"]), long_burn, short_burn
    return None
