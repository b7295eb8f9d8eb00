"""Per-request records and exact statistics over any window of them.

Percentiles are computed from every recorded latency (nearest-rank), never from rounded
buckets: Locust's own statistics round response times to about two significant digits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the load generator made."""

    started_at: float
    ended_at: float
    name: str
    method: str
    status: int
    error: str | None
    service: str | None = None
    version: str | None = None
    zone: str | None = None
    replica: str | None = None
    order_id: str | None = None

    @property
    def latency_ms(self) -> float:
        """Time from sending the request to the end of the response, in milliseconds."""
        return (self.ended_at - self.started_at) * 1000.0

    @property
    def ok(self) -> bool:
        """True when the request got a non-error response."""
        return self.error is None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RequestRecord:
        """Build from one line written by ``shakeout.loadworker.capture``."""
        return cls(*row)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100] of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class WindowStats:
    """Latency, errors and throughput of one journey (or all) over a time window."""

    name: str
    start: float
    end: float
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        """Fraction of requests that failed (0 when there were none)."""
        return self.errors / self.count if self.count else 0.0

    @property
    def throughput_rps(self) -> float:
        """Requests per second over the window."""
        span = self.end - self.start
        return self.count / span if span > 0 else 0.0

    def latency_ms(self, pct: float) -> float:
        """The named percentile (50, 95 or 99) of this window."""
        return {50.0: self.p50_ms, 95.0: self.p95_ms, 99.0: self.p99_ms}[float(pct)]


def select(
    records: Iterable[RequestRecord],
    name: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> list[RequestRecord]:
    """Records of one journey (``None`` for all) that started within ``[start, end)``."""
    return [
        r
        for r in records
        if (name is None or r.name == name)
        and (start is None or r.started_at >= start)
        and (end is None or r.started_at < end)
    ]


def summarize(
    records: Sequence[RequestRecord],
    name: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> WindowStats:
    """Exact statistics of one journey over ``[start, end)`` (defaults: all records)."""
    chosen = select(records, name, start, end)
    latencies = sorted(r.latency_ms for r in chosen)
    t0 = start if start is not None else min((r.started_at for r in chosen), default=0.0)
    t1 = end if end is not None else max((r.ended_at for r in chosen), default=0.0)
    return WindowStats(
        name=name or "all",
        start=t0,
        end=t1,
        count=len(chosen),
        errors=sum(1 for r in chosen if not r.ok),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else math.nan,
    )
