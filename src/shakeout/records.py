"""A run's request records, exactly: windows at sub-second resolution, generator health, impact.

The :class:`~shakeout.measure.Recorder` keeps per-second histograms for what must be live (the
progress line, stop conditions, burn rates, the chart). Verdicts are judged here instead, on
every request of the run as the load wrote it (``requests.tsv``): a window is ``[start, end)``
of *due* times to the microsecond, so a phase that starts at 10.4 s counts exactly the requests
due after 10.4 s; percentiles are nearest-rank over the window's own latencies (no histogram
bucket); throughput is over the real window, not rounded out to whole seconds.

Two more things only per-request data can tell:

* **the generator's own lateness** (``started - due``): how late the load generator sent each
  request. In the open model it is inside every measured latency, so a generator that fell
  behind (``GENERATOR_SATURATED_MS`` at p99) makes a latency verdict near its threshold
  inconclusive (see :func:`shakeout.slo.evaluate`);
* **impact and recovery** (:meth:`RecordSet.impact`): when a fault first hurt a journey, and
  when every objective set for the journey (error rate, latency percentiles) held again over a
  sustained window, to the request, so a stall that only slows answers shows as an impact.

numpy holds the columns (a one-hour run at 300 rps is about 1.1 M rows, ~30 MB); it arrives
with matplotlib anyway and does sorting, searching and cumulative counts in C.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shakeout.measure import RequestRecord, WindowStats

GENERATOR_SATURATED_MS = 5.0
"""The load generator counts as saturated when its p99 lateness (sent after due) exceeds this."""

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class LatencyLimit:
    """One latency objective a journey must meet: its ``percentile`` below ``below_ms``."""

    percentile: float
    below_ms: float


@dataclass(frozen=True)
class Impact:
    """How a fault hit one journey, read from its requests (times in seconds, None: never).

    ``first_impact_s``: from the fault's start to the first request that failed or broke a
    latency limit. ``recovered_at``: the due time of the first request of the first window of
    ``sustain_s`` seconds, after the first impact, over which every objective held again.
    ``impact_window_s``: first impact to recovery. ``from_fault_start_s`` and
    ``from_fault_end_s``: recovery measured from the fault's start and from its end (0 when it
    recovered before the fault ended, or was never hit).
    """

    journey: str
    first_impact_s: float | None
    recovered_at: float | None
    impact_window_s: float | None
    from_fault_start_s: float | None
    from_fault_end_s: float | None
    samples: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class RecordSet:
    """Every request of a run, in due order, as columns."""

    def __init__(self, records: Iterable[RequestRecord]) -> None:
        rows = sorted(records, key=lambda r: r.due)
        self._names = sorted({r.name for r in rows})
        index = {name: i for i, name in enumerate(self._names)}
        self.due: Floats = np.array([r.due for r in rows], dtype=np.float64)
        self.latency_ms: Floats = np.array([r.latency_ms for r in rows], dtype=np.float64)
        self.lateness_ms: Floats = np.array(
            [(r.started_at - r.due) * 1000.0 for r in rows], dtype=np.float64
        )
        self.failed: Bools = np.array([not r.ok for r in rows], dtype=np.bool_)
        self.dropped: Bools = np.array([r.dropped for r in rows], dtype=np.bool_)
        self._journey = np.array([index[r.name] for r in rows], dtype=np.int32)

    @classmethod
    def read(cls, path: Path) -> RecordSet:
        """The records of a run folder's ``requests.tsv`` (empty if there is none)."""
        try:
            with path.open(encoding="utf-8") as fh:
                return cls(RequestRecord.from_line(line) for line in fh if line.strip())
        except FileNotFoundError:
            return cls([])

    def __len__(self) -> int:
        return int(self.due.size)

    def names(self) -> list[str]:
        """Journey names in the run."""
        return list(self._names)

    def _select(self, name: str | None, start: float | None, end: float | None) -> slice | Any:
        lo = 0 if start is None else int(np.searchsorted(self.due, start, side="left"))
        hi = len(self) if end is None else int(np.searchsorted(self.due, end, side="left"))
        if name is None:
            return slice(lo, hi)
        if name not in self._names:
            return np.zeros(0, dtype=np.int64)
        k = self._names.index(name)
        return lo + np.flatnonzero(self._journey[lo:hi] == k)

    def stats(
        self, name: str | None = None, start: float | None = None, end: float | None = None
    ) -> WindowStats:
        """Exact statistics of a journey (None: all) over the requests due in ``[start, end)``.

        An open bound is the run's first or last request; throughput is the count over the
        real window (for the whole run: first to last due time, plus one mean interval).
        """
        pick = self._select(name, start, end)
        due = self.due[pick]
        count = int(due.size)
        lo = start if start is not None else (float(due[0]) if count else 0.0)
        hi = end if end is not None else (float(due[-1]) if count else lo)
        if end is None and count > 1:
            hi += (float(due[-1]) - float(due[0])) / (count - 1)
        served = ~self.dropped[pick]
        latencies = np.sort(self.latency_ms[pick][served])
        lateness = np.sort(self.lateness_ms[pick][served])
        return WindowStats(
            name=name or "all",
            start=lo,
            end=hi,
            count=count,
            errors=int(np.count_nonzero(self.failed[pick])),
            dropped=int(count - latencies.size),
            p50_ms=_rank(latencies, 50),
            p95_ms=_rank(latencies, 95),
            p99_ms=_rank(latencies, 99),
            max_ms=float(latencies[-1]) if latencies.size else math.nan,
            lateness_p99_ms=_rank(lateness, 99),
        )

    def impact(
        self,
        journey: str,
        fault_start: float,
        fault_end: float | None,
        max_error_rate: float,
        latency: Iterable[LatencyLimit] = (),
        sustain_s: float = 3.0,
    ) -> Impact:
        """When the fault first hurt ``journey`` and when all its objectives held again.

        A request *hurts* when it failed or its latency reached the lowest ``below_ms`` of the
        journey's latency limits; the first impact is the first such request due before the
        fault's end (when that is known). The journey has *recovered* at the first request (due
        after the first hurt one) from which, for ``sustain_s`` seconds of due times, the error rate
        is at most ``max_error_rate`` and every latency limit's percentile is below its bound.
        Only windows the load fully covered count: a run that ends before a clean window
        never recovered.

        Latency here is counted from when the request was *sent*: the generator's own lateness
        is left out. It matters at the one moment recovery is read: when an outage ends, the
        generator (one process) takes hundreds of held responses at once and sends the next
        requests up to ~60 ms late, so counting from the due time reads the recovery ~100 ms
        after the server's (measured against ground truth, docs/benchmarks.md). Users arriving
        then would not have waited for ShakeOut's scheduler. Everything the target did is still
        in: a slow answer, a refused connection, a request that waited for a connection. The
        run's latency percentiles keep counting from the due time, and a generator that fell
        behind all along is reported as saturated (``lateness_p99_ms``).
        """
        limits = list(latency)
        pick = self._select(journey, fault_start, None)
        due = self.due[pick]
        failed = self.failed[pick]
        dropped = self.dropped[pick]
        latency_ms = self.latency_ms[pick] - np.maximum(self.lateness_ms[pick], 0.0)
        samples = int(due.size)
        floor_ms = min((limit.below_ms for limit in limits), default=math.inf)
        hurt = failed | (~dropped & (latency_ms >= floor_ms))
        if fault_end is not None:
            # Recovery is from the fault: an impact that only begins once the fault has been
            # reverted (replicas coming back) is judged by the drill's own objectives, not here.
            hurt &= due < fault_end
        hurt_at = np.flatnonzero(hurt)
        if hurt_at.size == 0:
            clean = 0.0 if samples else None
            return Impact(journey, None, None, 0.0 if samples else None, clean, clean, samples)
        first = int(hurt_at[0])
        first_impact = float(due[first]) - fault_start
        ok = _windows_hold(due, failed, dropped, latency_ms, max_error_rate, limits, sustain_s)
        good = np.flatnonzero(ok[first:])
        if good.size == 0:
            return Impact(journey, first_impact, None, None, None, None, samples)
        recovered_at = float(due[first + int(good[0])])
        from_end = None if fault_end is None else max(0.0, recovered_at - fault_end)
        return Impact(
            journey,
            first_impact,
            recovered_at,
            recovered_at - float(due[first]),
            max(0.0, recovered_at - fault_start),
            from_end,
            samples,
        )


def _rank(values: Floats, pct: float) -> float:
    """Nearest-rank percentile of sorted values (NaN when there are none)."""
    if values.size == 0:
        return math.nan
    return float(values[max(0, math.ceil(pct / 100.0 * values.size) - 1)])


def _windows_hold(
    due: Floats,
    failed: Bools,
    dropped: Bools,
    latency_ms: Floats,
    max_error_rate: float,
    limits: list[LatencyLimit],
    sustain_s: float,
) -> Bools:
    """For each request i: do the objectives hold over the requests due in
    ``[due[i], due[i] + sustain_s)``, a window the records fully cover?"""
    n = due.size
    ends = np.searchsorted(due, due + sustain_s, side="left")
    covered = due + sustain_s <= due[-1]
    starts = np.arange(n)
    count = ends - starts

    def window_sum(flags: Bools) -> npt.NDArray[np.int64]:
        cumulative = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
        return cumulative[ends] - cumulative[starts]

    ok = covered & (count > 0) & (window_sum(failed) <= max_error_rate * count)
    served = count - window_sum(dropped)
    for limit in limits:
        # Nearest rank: the percentile is below the bound when at least ceil(q * served)
        # of the served requests were faster than it.
        fast = window_sum(~dropped & (latency_ms < limit.below_ms))
        needed = np.ceil(limit.percentile / 100.0 * served - 1e-9)
        ok &= fast >= needed
    return np.asarray(ok, dtype=np.bool_)
