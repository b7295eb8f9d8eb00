"""What the servers saw beside what the load saw, per journey, and where the two disagree.

The load's figures are exact (every request it sent); the servers' come from Prometheus: the
journey's requests in ``shakeout_http_requests_total`` and its latency histogram (the SLO
file's ``alerting.journeys`` says which service, method and route a journey is), over the
drill. They differ for honest reasons (the router retries, so a server sees some requests
twice; the histogram interpolates within buckets), so only a disagreement beyond a bound is
flagged: errors the load saw that no server logged (a replica that died mid-request, the
router answering for it), or errors the servers logged that the load never saw (absorbed by
retries), or request counts that do not match (a mis-measured drill).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from shakeout.measure import WindowStats
from shakeout.observability.alerts import AlertSource
from shakeout.observability.rules import selector
from shakeout.slofile import JourneySelector

ERROR_BOUND_PCT = 1.0  # percentage points between the two error rates
COUNT_BOUND = 0.25  # relative difference between the two request counts


@dataclass(frozen=True)
class SideBySide:
    """One journey, as the load and as the servers saw it, over the drill."""

    journey: str
    where: str
    load_requests: int
    load_error_pct: float
    load_p95_ms: float | None
    server_requests: float | None
    server_error_pct: float | None
    server_p95_ms: float | None
    flag: str  # empty when they agree within the bounds

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (verdicts.json ``server_side``)."""
        return asdict(self)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def server_figures(
    source: AlertSource, where: JourneySelector, start: float, end: float
) -> tuple[float | None, float | None, float | None]:
    """The servers' request count, error percentage and p95 (ms) of a journey over a window."""
    window = f"[{max(1, math.ceil(end - start))}s]"
    total = source.query(
        f"sum(increase(shakeout_http_requests_total{selector(where)}{window}))", end
    )
    failed = selector(where, 'status=~"5.."')
    errors = source.query(f"sum(increase(shakeout_http_requests_total{failed}{window}))", end)
    p95 = source.query(
        "histogram_quantile(0.95, sum by (le) (increase("
        f"shakeout_http_request_duration_seconds_bucket{selector(where)}{window})))",
        end,
    )
    total = _finite(total)
    error_pct = None if not total else 100.0 * (_finite(errors) or 0.0) / total
    p95 = _finite(p95)
    return total, error_pct, None if p95 is None else p95 * 1000.0


def compare(journey: str, where: JourneySelector, load: WindowStats, server: tuple[
    float | None, float | None, float | None
]) -> SideBySide:  # fmt: skip
    """Put the two views side by side and flag a disagreement beyond the bounds."""
    requests, error_pct, p95_ms = server
    load_pct = 100.0 * load.error_rate
    flags = []
    if requests is None:
        flags.append("the servers logged none of its requests")
    else:
        if error_pct is not None and load_pct - error_pct > ERROR_BOUND_PCT:
            flags.append(f"{load_pct - error_pct:.1f} points of errors no server logged")
        if error_pct is not None and error_pct - load_pct > ERROR_BOUND_PCT:
            flags.append(
                f"servers logged {error_pct - load_pct:.1f} points more errors than the load saw"
            )
        if load.count and abs(requests - load.count) / load.count > COUNT_BOUND:
            flags.append(f"request counts differ: load {load.count}, servers {requests:.0f}")
    return SideBySide(
        journey=journey,
        where=f"{where.service} {where.method} {where.route}",
        load_requests=load.count,
        load_error_pct=round(load_pct, 3),
        load_p95_ms=_finite(load.p95_ms),
        server_requests=None if requests is None else round(requests, 1),
        server_error_pct=None if error_pct is None else round(error_pct, 3),
        server_p95_ms=None if p95_ms is None else round(p95_ms, 1),
        flag="; ".join(flags),
    )
