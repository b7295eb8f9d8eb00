"""What the router saw, kept for the platform's controllers (autoscaler, canary analysis).

The router records every client request's arrival per service and every upstream attempt's
outcome (latency and success) per service and version. The controllers read sliding windows
of it. Everything runs on the daemon's one asyncio loop, so no locking is needed.
"""

from __future__ import annotations

import time
from collections import deque
from typing import NamedTuple

HORIZON_S = 120.0
"""How far back records are kept (longer than any controller window)."""
MAX_RECORDS = 50_000
"""Per series; at the drills' rates (tens to hundreds per second) the horizon binds first."""


class Outcome(NamedTuple):
    """One upstream attempt as the router saw it."""

    at: float
    latency_s: float
    ok: bool


class TrafficStats:
    """Arrivals per service and attempt outcomes per (service, version), on the monotonic clock."""

    def __init__(self) -> None:
        """Start with no records."""
        self._arrivals: dict[str, deque[float]] = {}
        self._outcomes: dict[tuple[str, str], deque[Outcome]] = {}

    @staticmethod
    def now() -> float:
        """The clock every record uses."""
        return time.monotonic()

    def arrival(self, service: str) -> None:
        """A client request for ``service`` reached the router."""
        series = self._arrivals.setdefault(service, deque(maxlen=MAX_RECORDS))
        now = self.now()
        series.append(now)
        while series and series[0] < now - HORIZON_S:
            series.popleft()

    def outcome(self, service: str, version: str, latency_s: float, ok: bool) -> None:
        """An attempt on a replica of ``version`` ended: ``ok`` unless 5xx or no answer."""
        series = self._outcomes.setdefault((service, version), deque(maxlen=MAX_RECORDS))
        now = self.now()
        series.append(Outcome(now, latency_s, ok))
        while series and series[0].at < now - HORIZON_S:
            series.popleft()

    def rate(self, service: str, window_s: float) -> float:
        """Client requests per second for ``service`` over the last ``window_s``."""
        series = self._arrivals.get(service)
        if not series:
            return 0.0
        since = self.now() - window_s
        count = 0
        # Newest last: walk back from the end, so the cost is the window's size.
        for at in reversed(series):
            if at < since:
                break
            count += 1
        return count / window_s

    def outcomes(self, service: str, version: str, since: float) -> list[Outcome]:
        """Attempts on ``version`` of ``service`` that ended at or after ``since``."""
        series = self._outcomes.get((service, version))
        if not series:
            return []
        found: list[Outcome] = []
        for item in reversed(series):
            if item.at < since:
                break
            found.append(item)
        found.reverse()
        return found
