"""Per-request records and the statistics the harness keeps of them.

Every request the load makes arrives here as a :class:`RequestRecord`. The :class:`Recorder`
keeps, per second and per journey, an HdrHistogram of latencies in microseconds (3 significant
digits: no rounding to two digits as Locust's own statistics do) with counts of requests,
errors and dropped requests; and it answers p50/p95/p99, error rate and throughput of any
journey over any window ``[t0, t1)`` of whole seconds. A request counts in the second it was
*due*, however late it ends. Seconds that are complete are kept
encoded (HdrHistogram's compressed form, a few KiB each), so memory stays bounded by the run's
length in seconds rather than its request count, and small even for an hour. The raw records
stay on disk in the run folder for exact re-analysis.

Latency counts from when a request was *due*: in the open model that is its scheduled time
(coordinated omission corrected), in the closed model its start.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from shakeout.recordformat import parse_line

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
DIGITS = 3
SETTLE_S = 3  # seconds after which a second is complete and gets encoded
ALL = "*"


def _histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the load generator made (or dropped)."""

    due: float
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
        """From when the request was due to the end of its response, in milliseconds."""
        return (self.ended_at - self.due) * 1000.0

    @property
    def service_time_ms(self) -> float:
        """From sending the request to the end of its response (what a closed model shows)."""
        return (self.ended_at - self.started_at) * 1000.0

    @property
    def ok(self) -> bool:
        """True when the request got a non-error response."""
        return self.error is None

    @property
    def dropped(self) -> bool:
        """True when the open model could not launch it."""
        return self.error == "dropped"

    @classmethod
    def from_line(cls, line: str) -> RequestRecord:
        """Parse one line written by ``shakeout.loadworker.capture`` (columns by name, see
        :mod:`shakeout.recordformat`)."""
        f = parse_line(line)
        return cls(
            due=float(f["due"]),
            started_at=float(f["started_at"]),
            ended_at=float(f["ended_at"]),
            name=f["name"],
            method=f["method"],
            status=int(f["status"]),
            error=f["error"] or None,
            service=f["service"] or None,
            version=f["version"] or None,
            zone=f["zone"] or None,
            replica=f["replica"] or None,
            order_id=f["order_id"] or None,
        )


@dataclass
class _Second:
    """Counts and a latency histogram of one journey in one second."""

    requests: int = 0
    errors: int = 0
    dropped: int = 0
    histogram: HdrHistogram | None = field(default_factory=_histogram)
    encoded: bytes | None = None

    def latencies(self) -> HdrHistogram:
        if self.histogram is not None:
            return self.histogram
        assert self.encoded is not None
        return HdrHistogram.decode(self.encoded)

    def live(self) -> HdrHistogram:
        """The histogram to record into, decoded again if this second was already sealed."""
        if self.histogram is None:
            self.histogram = HdrHistogram.decode(self.encoded) if self.encoded else _histogram()
            self.encoded = None
        return self.histogram

    def seal(self) -> None:
        if self.histogram is not None:
            self.encoded = self.histogram.encode() if self.histogram.total_count else b""
            self.histogram = None


@dataclass(frozen=True)
class WindowStats:
    """Latency, errors and throughput of one journey (or all) over a window."""

    name: str
    start: float
    end: float
    count: int
    errors: int
    dropped: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    lateness_p99_ms: float = math.nan  # the generator's own: sent after due (exact data only)

    @property
    def error_rate(self) -> float:
        """Fraction of requests that failed, dropped ones included (0 when there were none)."""
        return self.errors / self.count if self.count else 0.0

    @property
    def throughput_rps(self) -> float:
        """Requests per second over the window."""
        span = self.end - self.start
        return self.count / span if span > 0 else 0.0

    def latency_ms(self, pct: float) -> float:
        """The named percentile (50, 95 or 99) of this window."""
        return {50.0: self.p50_ms, 95.0: self.p95_ms, 99.0: self.p99_ms}[float(pct)]


class Recorder:
    """Per-second, per-journey histograms and counts; thread-safe."""

    def __init__(self) -> None:
        self._seconds: dict[int, dict[str, _Second]] = {}
        self._lock = threading.Lock()
        self._newest = 0
        self._sealed_before = 0
        self._reopened: set[int] = set()
        self.late = 0  # records that arrived after their second was sealed (still counted)
        self.acknowledged_orders: dict[str, float] = {}  # order id -> acknowledged at
        self.first_due: float | None = None
        self.last_due: float | None = None
        self.last_end: float | None = None
        self.total = 0

    def add(self, record: RequestRecord) -> None:
        """Account one request."""
        with self._lock:
            self._add(record)

    def add_all(self, records: Iterable[RequestRecord]) -> None:
        """Account many requests at once."""
        with self._lock:
            for record in records:
                self._add(record)
            self._seal()

    def _add(self, record: RequestRecord) -> None:
        # Every request counts in the second it was due, however late it ends: a request
        # that waited out a 5 s stall belongs to the second the stall hit, not the one it
        # ended in. A sealed second is decoded again for it and sealed at the next batch.
        second = int(record.due)
        if second < self._sealed_before:
            self.late += 1
            self._reopened.add(second)
        slots = self._seconds.setdefault(second, {})
        latency_us = max(LOWEST_US, min(HIGHEST_US, round(record.latency_ms * 1000)))
        for key in (record.name, ALL):
            slot = slots.get(key)
            if slot is None:
                slot = slots[key] = _Second()
            slot.requests += 1
            if not record.ok:
                slot.errors += 1
            if record.dropped:
                slot.dropped += 1
            else:
                slot.live().record_value(latency_us)
        self._newest = max(self._newest, second)
        self.total += 1
        if self.first_due is None or record.due < self.first_due:
            self.first_due = record.due
        if self.last_due is None or record.due > self.last_due:
            self.last_due = record.due
        if self.last_end is None or record.ended_at > self.last_end:
            self.last_end = record.ended_at
        if record.order_id and record.ok and record.status in (200, 201):
            self.acknowledged_orders[record.order_id] = record.ended_at

    def _seal(self) -> None:
        limit = max(self._newest - SETTLE_S, self._sealed_before)
        seconds = {s for s in self._seconds if self._sealed_before <= s < limit}
        for second in seconds | self._reopened:
            for slot in self._seconds[second].values():
                slot.seal()
        self._reopened.clear()
        self._sealed_before = limit

    def names(self) -> list[str]:
        """Journey names seen so far."""
        with self._lock:
            return sorted({n for slots in self._seconds.values() for n in slots} - {ALL})

    def stats(
        self, name: str | None = None, start: float | None = None, end: float | None = None
    ) -> WindowStats:
        """Statistics of a journey (None: all) over the whole seconds in ``[start, end)``."""
        key = name or ALL
        merged = _histogram()
        count = errors = dropped = 0
        with self._lock:
            seconds = sorted(self._seconds)
            lo = int(start) if start is not None else (seconds[0] if seconds else 0)
            hi = math.ceil(end) if end is not None else (seconds[-1] + 1 if seconds else 0)
            for second in seconds:
                if not lo <= second < hi:
                    continue
                slot = self._seconds[second].get(key)
                if slot is None:
                    continue
                count += slot.requests
                errors += slot.errors
                dropped += slot.dropped
                if slot.histogram is not None or slot.encoded:
                    merged.add(slot.latencies())

        def pct(q: float) -> float:
            return merged.get_value_at_percentile(q) / 1000.0 if merged.total_count else math.nan

        window = (float(lo), float(hi))
        if start is None and end is None and self.first_due is not None and self.total > 1:
            # The whole run: its real window (first to last due time plus one mean interval),
            # not whole seconds, which would dilute the rate by the partial first and last.
            assert self.last_due is not None
            span = self.last_due - self.first_due
            window = (self.first_due, self.last_due + span / (self.total - 1))
        return WindowStats(
            name=name or "all",
            start=window[0],
            end=window[1],
            count=count,
            errors=errors,
            dropped=dropped,
            p50_ms=pct(50),
            p95_ms=pct(95),
            p99_ms=pct(99),
            max_ms=merged.get_max_value() / 1000.0 if merged.total_count else math.nan,
        )

    def series(self, name: str | None = None) -> list[dict[str, float | int]]:
        """One row per second: requests, errors, dropped, p50/p95/p99 (ms) of a journey."""
        with self._lock:
            seconds = sorted(self._seconds)
        if not seconds:
            return []
        rows: list[dict[str, float | int]] = []
        for second in range(seconds[0], seconds[-1] + 1):
            s = self.stats(name, second, second + 1)
            rows.append(
                {
                    "t": second,
                    "requests": s.count,
                    "errors": s.errors,
                    "dropped": s.dropped,
                    "p50_ms": s.p50_ms,
                    "p95_ms": s.p95_ms,
                    "p99_ms": s.p99_ms,
                }
            )
        return rows
