"""Service-level objectives and verdicts computed from per-request records.

A verdict is data: the kind of objective, the phase it was judged over, the observed value and
the objective's value in one unit, the number of samples, and one of ``pass``, ``fail`` or
``inconclusive`` (too few samples is never a silent pass). Its message names the objective,
the window, the observed value and the objective value. Every kind (latency, error rate,
availability, burn rate, recovery, data, steady state, rollout) is the same record, so the
steps, ``verdicts.json`` and the report read one shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from shakeout.measure import Recorder, WindowStats
from shakeout.records import GENERATOR_SATURATED_MS, Impact, LatencyLimit, RecordSet

MIN_SAMPLES = 20

Status = Literal["pass", "fail", "inconclusive"]
Kind = Literal[
    "latency",
    "error_rate",
    "availability",
    "burn",
    "recovery",
    "data",
    "steady_state",
    "rollout",
    "event",
    "alert",
]
Metric = Literal["latency", "error_rate", "availability"]


@dataclass(frozen=True)
class Objective:
    """One request objective of a journey: a latency percentile or error rate kept below a
    threshold (ms, or a fraction), or an availability kept at or above one (a fraction)."""

    journey: str
    metric: Metric
    threshold: float
    percentile: float = 95.0

    def describe(self) -> str:
        """Human wording, e.g. ``checkout p95 latency < 300 ms``."""
        if self.metric == "latency":
            return f"{self.journey} p{self.percentile:g} latency < {self.threshold:g} ms"
        if self.metric == "availability":
            return f"{self.journey} availability >= {self.threshold * 100:g}%"
        return f"{self.journey} error rate < {self.threshold * 100:g}%"


def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "no data"
    if unit == "%":
        return f"{value:.2f}%"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "x":
        return f"{value:.1f}x"
    if unit in ("orders", "events", "alerts", "notifications", "without one"):
        return f"{value:g} {unit}"
    return f"{value:g}"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one objective over one phase of a drill.

    ``observed`` and ``threshold`` are in ``unit`` (``ms``, ``%``, ``s``, ``x``, ``orders``);
    ``observed`` is None when nothing could be measured. ``samples`` counts the requests (or
    orders) the verdict rests on; ``note`` adds what a reader needs, such as why it is
    inconclusive.
    """

    kind: Kind
    objective: str
    phase: str
    observed: float | None
    threshold: float | None
    unit: str
    samples: int
    status: Status
    journey: str | None = None
    note: str = ""

    @property
    def passed(self) -> bool:
        """True only for ``pass``."""
        return self.status == "pass"

    def observed_text(self) -> str:
        """The observed value with its unit."""
        return _number(self.observed, self.unit)

    @property
    def window(self) -> str:
        """The phase in words."""
        return "the drill" if self.phase == "drill" else f"the {self.phase} phase"

    @property
    def message(self) -> str:
        """One line naming objective, window, observed value and objective value."""
        head = {
            "pass": "SLO met",
            "fail": "SLO breached",
            "inconclusive": "SLO inconclusive",
        }[self.status]
        text = f"{head}: {self.objective} over {self.window}: observed {self.observed_text()}"
        if self.kind == "data":
            text += f" ({self.samples} acknowledged orders)"
        elif self.kind not in ("steady_state", "rollout", "event", "alert"):
            text += f" ({self.samples} requests)"
        if self.note:
            text += f"; {self.note}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, kept with the run in ``verdicts.json``."""
        data = asdict(self)
        for key in ("observed", "threshold"):
            if isinstance(data[key], float) and math.isnan(data[key]):
                data[key] = None
        return {**data, "message": self.message}


def _too_few(samples: int) -> str:
    return f"at least {MIN_SAMPLES} requests are needed for a verdict"


class WindowSource(Protocol):
    """What answers statistics over a window: a :class:`~shakeout.records.RecordSet` (exact,
    what verdicts use) or a :class:`~shakeout.measure.Recorder` (per second, live)."""

    def stats(
        self, name: str | None = None, start: float | None = None, end: float | None = None
    ) -> WindowStats: ...


def evaluate(
    objective: Objective,
    source: WindowSource,
    phase: str = "drill",
    start: float | None = None,
    end: float | None = None,
) -> Verdict:
    """Judge one request objective on the requests due within ``[start, end)``.

    A latency verdict is inconclusive when the load generator was saturated over the window
    (its p99 lateness above ``GENERATOR_SATURATED_MS``) and the observed value is within that
    lateness of the threshold: the generator's own delay, not the target, could decide it.
    """
    journey = None if objective.journey == "all" else objective.journey
    stats = source.stats(journey, start, end)
    unit = "ms" if objective.metric == "latency" else "%"
    if objective.metric == "latency":
        observed, threshold = stats.latency_ms(objective.percentile), objective.threshold
        met = observed < threshold
    elif objective.metric == "availability":
        observed = (1.0 - stats.error_rate) * 100 if stats.count else math.nan
        threshold = objective.threshold * 100
        met = observed >= threshold
    else:
        observed, threshold = stats.error_rate * 100, objective.threshold * 100
        met = observed < threshold
    status: Status
    note = ""
    lateness = stats.lateness_p99_ms
    saturated = not math.isnan(lateness) and lateness > GENERATOR_SATURATED_MS
    if stats.count < MIN_SAMPLES:
        status, note = "inconclusive", _too_few(stats.count)
    elif objective.metric == "latency" and saturated and abs(observed - threshold) <= lateness:
        status = "inconclusive"
        note = (
            f"the load generator was saturated (it sent requests up to {lateness:.1f} ms late "
            f"at p99, over {GENERATOR_SATURATED_MS:g} ms), which is enough to decide this verdict"
        )
    else:
        status = "pass" if met else "fail"
        if saturated:
            note = f"the load generator sent requests up to {lateness:.1f} ms late at p99"
    return Verdict(
        objective.metric,
        objective.describe(),
        phase,
        observed,
        threshold,
        unit,
        stats.count,
        status,
        objective.journey,
        note,
    )


def judge_recovery(
    records: RecordSet,
    journey: str,
    fault_start: float,
    fault_end: float | None,
    within_s: float,
    max_error_rate: float = 0.01,
    sustain_s: float = 3.0,
    latency: Iterable[LatencyLimit] = (),
) -> tuple[Verdict, Impact]:
    """The recovery objective (RTO): every objective of the journey (error rate at most
    ``max_error_rate``, each latency limit) holds again over ``sustain_s`` seconds within
    ``within_s`` of the fault's start, read request by request (see
    :meth:`~shakeout.records.RecordSet.impact`), so an outage that only slows answers counts.
    Too few requests after the fault is inconclusive."""
    limits = list(latency)
    impact = records.impact(journey, fault_start, fault_end, max_error_rate, limits, sustain_s)
    criteria = [f"error rate <= {max_error_rate * 100:g}%"]
    criteria += [f"p{limit.percentile:g} < {limit.below_ms:g} ms" for limit in limits]
    objective = (
        f"{journey} recovers ({', '.join(criteria)} for {sustain_s:g} s) "
        f"within {within_s:g} s of the fault's start"
    )
    from_start = impact.from_fault_start_s
    status: Status
    if impact.samples < MIN_SAMPLES:
        status, note = "inconclusive", _too_few(impact.samples)
    elif from_start is None:
        status, note = "fail", "never recovered while the load ran"
    else:
        status = "pass" if from_start <= within_s else "fail"
        parts = []
        if impact.first_impact_s is not None and impact.impact_window_s is not None:
            parts.append(
                f"first impact {impact.first_impact_s:.2f} s after the fault's start, "
                f"impact window {impact.impact_window_s:.2f} s"
            )
        if impact.from_fault_end_s is not None:
            parts.append(f"{impact.from_fault_end_s:.2f} s after the fault's end")
        note = "; ".join(parts)
    verdict = Verdict(
        "recovery",
        objective,
        "fault",
        from_start,
        within_s,
        "s",
        impact.samples,
        status,
        journey,
        note,
    )
    return verdict, impact


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
    for t, long_burn, short_burn in _burns(recorder, budget, long_s, short_s, start, end):
        if long_burn > factor and short_burn > factor:
            return t, long_burn, short_burn
    return None


def _burns(
    recorder: Recorder,
    budget: float,
    long_s: int,
    short_s: int,
    start: float | None,
    end: float | None,
) -> list[tuple[float, float, float]]:
    """Per second: (t, burn over the long window, burn over the short window)."""
    rows = [r for r in recorder.series(None) if (start is None or r["t"] >= int(start))]
    rows = [r for r in rows if end is None or r["t"] < end]

    def burn(upto: int, window: int) -> float:
        chosen = rows[max(0, upto - window + 1) : upto + 1]
        requests = sum(int(r["requests"]) for r in chosen)
        errors = sum(int(r["errors"]) for r in chosen)
        return (errors / requests) / budget if requests else 0.0

    return [(float(row["t"]), burn(i, long_s), burn(i, short_s)) for i, row in enumerate(rows)]


def judge_burn(
    recorder: Recorder, budget: float, long_s: int, short_s: int, factor: float
) -> Verdict:
    """A multi-window burn-rate alert as an objective: it must not fire over the drill.

    Observed is the peak of the slower of the two windows' burn (the alert fires when that
    exceeds ``factor``)."""
    burns = _burns(recorder, budget, long_s, short_s, None, None)
    samples = recorder.stats(None).count
    peak = max((min(lb, sb) for _, lb, sb in burns), default=math.nan)
    objective = f"error-budget burn over {long_s} s and {short_s} s stays <= {factor:g}x"
    status: Status
    note = ""
    if samples < MIN_SAMPLES:
        status, note = "inconclusive", _too_few(samples)
    else:
        fired = burn_alert(recorder, budget, long_s, short_s, factor)
        status = "pass" if fired is None else "fail"
        if fired is not None:
            t, long_burn, short_burn = fired
            into = t - (recorder.first_due or t)
            note = (
                f"the alert fired {into:.0f} s into the drill ({long_burn:.1f}x over "
                f"{long_s} s, {short_burn:.1f}x over {short_s} s; budget {budget:.2%} of requests)"
            )
    return Verdict("burn", objective, "drill", peak, factor, "x", samples, status, None, note)


def budget_burned_pct(recorder: Recorder, budget: float) -> float | None:
    """Share of the drill's error budget its failed requests consumed (percent; None: no data)."""
    stats = recorder.stats(None)
    if not stats.count:
        return None
    return stats.error_rate / budget * 100.0


def judge_orders(
    acknowledged: dict[str, float],
    missing: list[str],
    duplicates: dict[str, int],
    max_lost: int = 0,
    rpo_s: float | None = None,
) -> list[Verdict]:
    """Data objectives: lost and duplicated acknowledged orders, and the data-loss window (RPO).

    ``acknowledged`` maps each order the shop acknowledged to when it was acknowledged;
    ``missing`` are those the store does not have; ``duplicates`` maps an idempotency key to
    its number of orders where that is more than one. No acknowledged order at all is
    inconclusive: nothing could have been lost. The data-loss window runs from the first to
    the last acknowledgement of a lost order (at least 1 s once any is lost).
    """
    count = len(acknowledged)
    empty: Status | None = "inconclusive" if count == 0 else None
    none_note = "no order was acknowledged, so the data objective cannot be judged"
    shown = ", ".join(missing[:5])
    lost = Verdict(
        "data",
        f"acknowledged orders lost <= {max_lost}",
        "drill",
        float(len(missing)),
        float(max_lost),
        "orders",
        count,
        empty or ("pass" if len(missing) <= max_lost else "fail"),
        None,
        none_note if empty else (f"missing from the store: {shown}" if missing else ""),
    )
    extra = sum(n - 1 for n in duplicates.values())
    keys = ", ".join(list(duplicates)[:5])
    duplicated = Verdict(
        "data",
        "duplicated orders = 0",
        "drill",
        float(extra),
        0.0,
        "orders",
        count,
        empty or ("pass" if extra == 0 else "fail"),
        None,
        none_note if empty else (f"idempotency keys with several orders: {keys}" if extra else ""),
    )
    verdicts = [lost, duplicated]
    if rpo_s is not None:
        times = sorted(acknowledged[o] for o in missing if o in acknowledged)
        window = max(1.0, times[-1] - times[0]) if times else 0.0
        verdicts.append(
            Verdict(
                "data",
                f"data-loss window (RPO) <= {rpo_s:g} s",
                "drill",
                window,
                rpo_s,
                "s",
                count,
                empty or ("pass" if window <= rpo_s else "fail"),
                None,
                none_note if empty else "",
            )
        )
    return verdicts


def judge_fact(
    kind: Kind,
    objective: str,
    phase: str,
    observed: float | None,
    threshold: float | None,
    unit: str,
    met: bool,
    note: str = "",
) -> Verdict:
    """A verdict on a platform fact (steady state, rollout) rather than on requests."""
    return Verdict(
        kind,
        objective,
        phase,
        observed,
        threshold,
        unit,
        1,
        "pass" if met else "fail",
        None,
        note,
    )


def judge_budget(recorder: Recorder, budget: float, max_pct: float) -> Verdict:
    """Share of the error budget the whole drill consumed, kept below ``max_pct`` percent."""
    samples = recorder.stats(None).count
    burned = budget_burned_pct(recorder, budget)
    objective = f"error budget burned < {max_pct:g}% (budget {budget:.2%} of requests)"
    status: Status
    note = ""
    if samples < MIN_SAMPLES or burned is None:
        status, note = "inconclusive", _too_few(samples)
    else:
        status = "pass" if burned < max_pct else "fail"
    return Verdict("burn", objective, "drill", burned, max_pct, "%", samples, status, None, note)
