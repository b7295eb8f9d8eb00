"""What the target's alerting did during a drill, read from Prometheus and Alertmanager.

The timeline comes from Prometheus' own ``ALERTS`` series: one sample per rule evaluation
while an alert is firing, so an alert's span starts at the first evaluation that found it
firing and ends at the first evaluation after the last one (Prometheus writes a stale marker
then). Rules (with their annotations: runbook, summary) come from ``/api/v1/rules``; what
reached a receiver from the platform's recording receiver (the embedded platform) or
Alertmanager's ``/api/v2/alerts`` (a cluster's Alertmanager, while the alert is active).

The judges are pure functions of those facts, so the drills' alert steps and their unit tests
share them.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx

from shakeout.errors import PlatformError
from shakeout.slo import Verdict, judge_fact

IDENTITY_DROP = frozenset({"__name__", "alertname", "alertstate", "severity"})


@dataclass(frozen=True)
class AlertSpan:
    """One alert (name and identifying labels) firing from ``start`` to ``end`` (epoch s;
    ``end`` None: still firing when read)."""

    alert: str
    labels: dict[str, str]
    start: float
    end: float | None

    @property
    def who(self) -> str:
        """``ZoneDown{zone="b"}``."""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.alert}{{{inner}}}" if inner else self.alert

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (verdicts.json ``alerts``)."""
        return asdict(self)


@dataclass(frozen=True)
class AlertRule:
    """An alerting rule as Prometheus loaded it."""

    name: str
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def spans_from_samples(
    series: Sequence[dict[str, Any]], interval_s: float, read_at: float
) -> list[AlertSpan]:
    """Spans from a range query's raw samples of ``ALERTS{alertstate="firing"}``.

    Samples further apart than 1.5 evaluation intervals are separate spans (the alert resolved
    and fired again). A span whose last sample is within 1.5 intervals of ``read_at`` is still
    firing (``end`` None)."""
    spans = []
    gap = 1.5 * interval_s
    for item in series:
        metric = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        name = metric.get("alertname", "")
        labels = {k: v for k, v in metric.items() if k not in IDENTITY_DROP}
        times = sorted(float(t) for t, _ in item.get("values", []))
        if not times:
            continue
        start = previous = times[0]
        for t in times[1:]:
            if t - previous > gap:
                spans.append(AlertSpan(name, labels, start, previous + interval_s))
                start = t
            previous = t
        still = read_at - previous <= gap
        spans.append(AlertSpan(name, labels, start, None if still else previous + interval_s))
    return sorted(spans, key=lambda s: (s.start, s.alert))


class AlertSource:
    """A Prometheus (and its Alertmanager) over HTTP; ``notifications`` reads what the
    target's recording receiver got (None where the target has none)."""

    def __init__(
        self,
        prometheus_url: str,
        alertmanager_url: str | None,
        evaluation_interval_s: float,
        notifications: Callable[[float], list[dict[str, Any]]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Nothing is read until asked."""
        self.prometheus_url = prometheus_url.rstrip("/")
        self.alertmanager_url = alertmanager_url.rstrip("/") if alertmanager_url else None
        self.interval_s = evaluation_interval_s
        self._notifications = notifications
        self._headers = headers or {}

    def _get(self, url: str, params: dict[str, str] | None = None) -> Any:
        try:
            response = httpx.get(url, params=params, headers=self._headers, timeout=10.0)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PlatformError(f"alerting unreachable: GET {url}: {exc}") from exc

    def timeline(self, start: float, end: float | None = None) -> list[AlertSpan]:
        """Every alert that fired between ``start`` and ``end`` (default: now)."""
        read_at = time.time() if end is None else end
        window = max(1, math.ceil(read_at - start))
        data = self._get(
            f"{self.prometheus_url}/api/v1/query",
            {"query": f'ALERTS{{alertstate="firing"}}[{window}s]', "time": f"{read_at:.3f}"},
        )
        series = data.get("data", {}).get("result", [])
        return spans_from_samples(series, self.interval_s, read_at)

    def rules(self) -> dict[str, AlertRule]:
        """Alerting rules by name (the first of a name wins)."""
        data = self._get(f"{self.prometheus_url}/api/v1/rules", {"type": "alert"})
        found: dict[str, AlertRule] = {}
        for group in data.get("data", {}).get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("type") == "alerting":
                    found.setdefault(
                        rule["name"],
                        AlertRule(
                            rule["name"], rule.get("annotations", {}), rule.get("labels", {})
                        ),
                    )
        return found

    def query(self, expression: str, at: float) -> float | None:
        """An instant query's single value at ``at`` (epoch s); None when it has no result."""
        data = self._get(
            f"{self.prometheus_url}/api/v1/query", {"query": expression, "time": f"{at:.3f}"}
        )
        result = data.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None

    def scraped_since(self, moment: float) -> bool:
        """Whether every target was scraped at or after ``moment`` (its last counts are in)."""
        oldest = self.query("min(timestamp(up))", time.time())
        return oldest is not None and oldest >= moment

    def evaluated_since(self, moment: float) -> bool:
        """Whether every rule group was evaluated at or after ``moment`` (epoch s): what
        fired up to then is in ``ALERTS``."""
        data = self._get(f"{self.prometheus_url}/api/v1/rules")
        groups = data.get("data", {}).get("groups", [])
        return all(_epoch(g.get("lastEvaluation", "")) >= moment for g in groups)

    def received(self, since: float) -> list[tuple[str, str]]:
        """(receiver, alert name) of every notification that reached a receiver since then:
        from the recording receiver, else Alertmanager's view of its active alerts."""
        if self._notifications is not None:
            return [
                (n["receiver"], a["alertname"])
                for n in self._notifications(since)
                for a in n.get("alerts", [])
            ]
        if self.alertmanager_url is None:
            return []
        alerts = self._get(f"{self.alertmanager_url}/api/v2/alerts")
        return [
            (r["name"], a.get("labels", {}).get("alertname", ""))
            for a in alerts
            for r in a.get("receivers", [])
        ]


def _epoch(stamp: str) -> float:
    """An RFC 3339 time from Prometheus (nanoseconds cut to microseconds); 0 if unparsable."""
    match = re.match(r"^(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
    if match is None:
        return 0.0
    head, fraction, zone = match.groups()
    text = head + (fraction or "")[:7] + ("+00:00" if zone == "Z" else zone)
    return datetime.fromisoformat(text).timestamp()


# -- judges (pure) ---------------------------------------------------------------------------


def _verdict(
    objective: str, observed: float | None, threshold: float, unit: str, met: bool, note: str
) -> Verdict:
    """An alert check's verdict: a fact about the whole drill."""
    return judge_fact("alert", objective, "drill", observed, threshold, unit, met, note)


def _named(spans: Sequence[AlertSpan], alert: str) -> list[AlertSpan]:
    return [s for s in spans if s.alert == alert]


def _known(alert: str, rules: dict[str, AlertRule]) -> str:
    if alert in rules:
        return ""
    known = ", ".join(sorted(rules)) or "none"
    return f"; the target's rules have no alert {alert!r} (its alerts: {known})"


def judge_fires(
    alert: str,
    spans: Sequence[AlertSpan],
    rules: dict[str, AlertRule],
    fault_start: float,
    within_s: float,
) -> Verdict:
    """The alert fired within ``within_s`` of the fault's start (observed: its delay)."""
    fired = [s for s in _named(spans, alert) if s.start >= fault_start - 1.0]
    delay = min((s.start - fault_start for s in fired), default=None)
    met = delay is not None and delay <= within_s
    if delay is None:
        note = "it never fired" + _known(alert, rules)
    elif not met:
        note = f"it fired {delay:.1f} s after the fault's start"
    else:
        note = ", ".join(s.who for s in fired)
    return _verdict(
        f'the "{alert}" alert fires within {within_s:g} s of the fault\'s start',
        max(delay, 0.0) if delay is not None else None,
        within_s,
        "s",
        met,
        note,
    )


def judge_resolves(
    alert: str, spans: Sequence[AlertSpan], recovered_at: float, within_s: float
) -> Verdict:
    """Every span of the alert ended within ``within_s`` of the recovery (the fault's end)."""
    mine = _named(spans, alert)
    late = [s for s in mine if s.end is None or s.end - recovered_at > within_s]
    ends = [s.end for s in mine if s.end is not None]
    observed = max(ends) - recovered_at if ends and not late else None
    if not mine:
        note = "it never fired, so it never resolved"
    elif late:
        still = [s.who for s in late if s.end is None]
        note = (
            f"still firing: {', '.join(still)}"
            if still
            else f"resolved {max(s.end or 0.0 for s in late) - recovered_at:.1f} s after recovery"
        )
    else:
        note = ""
    return _verdict(
        f'the "{alert}" alert resolves within {within_s:g} s of recovery',
        max(observed, 0.0) if observed is not None else None,
        within_s,
        "s",
        bool(mine) and not late,
        note,
    )


def judge_quiet(spans: Sequence[AlertSpan]) -> Verdict:
    """No alert fired at all."""
    return _verdict(
        "no alert fires",
        float(len(spans)),
        0.0,
        "alerts",
        not spans,
        "fired: " + ", ".join(s.who for s in spans) if spans else "",
    )


def judge_runbooks(spans: Sequence[AlertSpan], rules: dict[str, AlertRule]) -> Verdict:
    """Every alert that fired carries a ``runbook_url`` annotation."""
    fired = sorted({s.alert for s in spans})
    missing = [a for a in fired if not rules.get(a, AlertRule(a)).annotations.get("runbook_url")]
    if not fired:
        note = "no alert fired: nothing to check (a drill that expects an alert says so)"
    elif missing:
        note = "no runbook_url on: " + ", ".join(missing)
    else:
        note = ", ".join(f"{a}: {rules[a].annotations['runbook_url']}" for a in fired)
    return _verdict(
        "every alert that fired names a runbook",
        float(len(missing)),
        0.0,
        "without one",
        bool(fired) and not missing,
        note,
    )


def judge_routed(
    alert: str, spans: Sequence[AlertSpan], received: Sequence[tuple[str, str]], receiver: str
) -> Verdict:
    """The alert reached ``receiver`` (a notification for it was received)."""
    got = [r for r, a in received if a == alert]
    met = receiver in got
    if not _named(spans, alert):
        note = "it never fired"
    elif met:
        note = ""
    elif got:
        note = f"it went to {', '.join(sorted(set(got)))} instead"
    else:
        note = "it fired but no receiver got it (the route dropped it)"
    return _verdict(
        f'the "{alert}" alert is routed to "{receiver}"',
        float(got.count(receiver)),
        1.0,
        "notifications",
        met,
        note,
    )
