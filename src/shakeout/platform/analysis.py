"""Canary analysis: promote a healthy canary automatically, roll a regressing one back.

Like Argo Rollouts' or Flagger's analysis, compressed to seconds. While a version is rolled out
beside the stable one with a share of the traffic (0 < weight < 1), every ``interval_s`` the
canary's error rate and p95 latency, measured by the router on every attempt it sent to each
version, are compared with thresholds and with the stable version's figures:

* an interval with fewer than ``min_samples`` attempts of either version is *inconclusive*:
  it neither counts toward promotion nor resets the count;
* a *regression* (error rate above ``max_error_pct`` and above the stable version's; or p95
  above ``max_p95_ms``; or above ``max_p95_ratio`` times the stable p95 and at least
  ``min_p95_delta_ms`` more) rolls the canary back at once. It is checked every ``TICK_S`` on
  a sliding window of the last ``interval_s`` (as a Prometheus ``[interval]`` range evaluated
  by a controller), as soon as that window holds ``min_samples`` canary attempts: a bad canary
  neither waits for an interval's end nor loses the attempts an inconclusive interval held;
* ``healthy_intervals`` healthy intervals in a row promote the canary.

The figures and the decision are recorded in the rollout (``analysis``) and as events
(``canary_interval``, ``canary_promoted``, ``canary_rolled_back``). A version deployed with all
the traffic (how the dependency faults replace a service) has no baseline and is left alone.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from shakeout.platform.traffic import Outcome

if TYPE_CHECKING:
    from shakeout.platform.replicas import Rollout
    from shakeout.platform.view import ClusterView
    from shakeout.topology import AnalysisSpec

TICK_S = 0.25
"""How often the current interval is checked for a regression."""


@dataclass(frozen=True)
class Figures:
    """One version's figures over an interval."""

    samples: int
    errors: int
    p95_ms: float | None

    @property
    def error_pct(self) -> float:
        """Failed attempts in percent (0 with no samples)."""
        return 100.0 * self.errors / self.samples if self.samples else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON view (rounded)."""
        return {
            "samples": self.samples,
            "errors": self.errors,
            "error_pct": round(self.error_pct, 2),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
        }


def figures(outcomes: list[Outcome]) -> Figures:
    """Sample count, error count and p95 latency (ms) of a list of attempts."""
    if not outcomes:
        return Figures(0, 0, None)
    latencies = [o.latency_s * 1000.0 for o in outcomes]
    # quantiles() needs two points; with "inclusive" the 19th of 20 cut points is the p95
    # interpolated within the sample (exact percentiles over a few dozen points).
    p95 = (
        statistics.quantiles(latencies, n=20, method="inclusive")[18]
        if len(latencies) > 1
        else latencies[0]
    )
    return Figures(len(outcomes), sum(1 for o in outcomes if not o.ok), p95)


class PromQLFigures:
    """Each version's figures from the replicas' own metrics in Prometheus: the queries a
    cluster's analysis runs (Flagger's request-success-rate and request-duration templates)."""

    def __init__(self, prometheus_url: str, session: Callable[[], aiohttp.ClientSession | None]):
        """``session`` gives the platform's HTTP session (None before it started)."""
        self.url = prometheus_url
        self.session = session

    @staticmethod
    def queries(service: str, window_s: float) -> dict[str, str]:
        """Requests, 5xx answers and p95 (seconds) per version over the last ``window_s``."""
        selector = f'service="{service}"'
        window = f"[{max(1, round(window_s * 1000))}ms]"
        requests = "shakeout_http_requests_total"
        buckets = "shakeout_http_request_duration_seconds_bucket"
        return {
            "requests": f"sum by (version) (increase({requests}{{{selector}}}{window}))",
            "errors": (
                f'sum by (version) (increase({requests}{{{selector},status=~"5.."}}{window}))'
            ),
            "p95": (
                "histogram_quantile(0.95, sum by (version, le) "
                f"(increase({buckets}{{{selector}}}{window})))"
            ),
        }

    async def figures(self, service: str, window_s: float) -> dict[str, Figures]:
        """Figures by version; none (inconclusive) when Prometheus cannot be read."""
        session = self.session()
        if session is None:
            return {}
        values: dict[str, dict[str, float]] = {}
        try:
            for name, query in self.queries(service, window_s).items():
                async with session.get(
                    f"{self.url}/api/v1/query",
                    params={"query": query},
                    timeout=aiohttp.ClientTimeout(total=2),
                ) as response:
                    result = (await response.json())["data"]["result"]
                for item in result:
                    version = item["metric"].get("version", "")
                    values.setdefault(version, {})[name] = float(item["value"][1])
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
            return {}
        found = {}
        for version, v in values.items():
            p95 = v.get("p95")
            finite = p95 is not None and math.isfinite(p95)
            found[version] = Figures(
                round(v.get("requests", 0.0)),
                round(v.get("errors", 0.0)),
                p95 * 1000.0 if finite and p95 is not None else None,
            )
        return found


def regression(spec: AnalysisSpec, canary: Figures, stable: Figures) -> str | None:
    """Why the canary regresses against the thresholds and the stable version, or None."""
    if canary.samples < spec.min_samples:
        return None
    if canary.error_pct > spec.max_error_pct and canary.error_pct > stable.error_pct:
        return (
            f"canary error rate {canary.error_pct:.1f}% > {spec.max_error_pct:g}% "
            f"(stable {stable.error_pct:.1f}%, {canary.errors}/{canary.samples} failed)"
        )
    if canary.p95_ms is not None and canary.p95_ms > spec.max_p95_ms:
        return f"canary p95 {canary.p95_ms:.0f} ms > {spec.max_p95_ms:g} ms"
    if (
        canary.p95_ms is not None
        and stable.p95_ms is not None
        and stable.samples >= spec.min_samples
        and canary.p95_ms > spec.max_p95_ratio * stable.p95_ms
        and canary.p95_ms - stable.p95_ms >= spec.min_p95_delta_ms
    ):
        return (
            f"canary p95 {canary.p95_ms:.0f} ms > {spec.max_p95_ratio:g} x stable p95 "
            f"{stable.p95_ms:.0f} ms"
        )
    return None


@dataclass
class _Run:
    """Analysis state of one rollout."""

    rollout: Rollout
    started: float
    window_start: float
    interval: int = 0
    healthy: int = 0
    inconclusive: int = 0


class CanaryAnalysis:
    """Judges every canary of a supervisor and promotes or rolls it back."""

    def __init__(self, supervisor: ClusterView) -> None:
        """Analyse ``supervisor``'s rollouts by ``platform.rollout.analysis``."""
        self.supervisor = supervisor
        self.spec = supervisor.spec.rollout.analysis
        self._runs: dict[str, _Run] = {}
        self.prometheus: PromQLFigures | None = None  # set by the daemon (metrics: prometheus)

    async def _figures(
        self, service: str, canary: str, stable: str, since: float, now: float
    ) -> tuple[Figures, Figures]:
        """Both versions' figures since ``since`` (monotonic), from the configured source."""
        if self.spec.metrics == "prometheus" and self.prometheus is not None:
            found = await self.prometheus.figures(service, now - since)
            return found.get(canary, Figures(0, 0, None)), found.get(stable, Figures(0, 0, None))
        traffic = self.supervisor.traffic
        return (
            figures(traffic.outcomes(service, canary, since)),
            figures(traffic.outcomes(service, stable, since)),
        )

    @property
    def enabled(self) -> bool:
        """Whether the target file turns canary analysis on."""
        return self.spec.enabled

    async def run(self) -> None:
        """Check every ``TICK_S`` until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(TICK_S)  # the controller's resync period

    async def tick(self) -> None:
        """One check of every service's rollout."""
        sup = self.supervisor
        now = sup.traffic.now()
        for svc in list(sup.services.values()):
            rollout = svc.rollout
            if (
                rollout is None
                or rollout.status not in ("progressing", "available")
                or not 0.0 < rollout.weight < 1.0
            ):
                self._runs.pop(svc.name, None)
                continue
            run = self._runs.get(svc.name)
            if run is None or run.rollout is not rollout:
                run = self._runs[svc.name] = _Run(rollout, started=now, window_start=now)
            sliding = max(run.started, now - self.spec.interval_s)
            versions = (svc.name, rollout.version, svc.stable_version)
            canary, stable = await self._figures(*versions, sliding, now)
            why = regression(self.spec, canary, stable)
            if why is not None:
                record = {
                    "interval": run.interval + 1,
                    "canary": canary.as_dict(),
                    "stable": stable.as_dict(),
                    "source": self.spec.metrics,
                }
                self._runs.pop(svc.name, None)
                rollout.analysis = self._summary(run, record, "rolled_back")
                sup.event(
                    "canary_rolled_back", service=svc.name, version=rollout.version, reason=why,
                    **record,
                )  # fmt: skip
                await sup.rollback(svc.name, f"canary analysis: {why}")
                continue
            if now - run.window_start < self.spec.interval_s:
                continue
            # The interval that ends now, for promotion: tumbling, as Flagger counts them.
            canary, stable = await self._figures(*versions, run.window_start, now)
            record = {
                "interval": run.interval + 1,
                "canary": canary.as_dict(),
                "stable": stable.as_dict(),
                "source": self.spec.metrics,
            }
            run.interval += 1
            run.window_start = now
            conclusive = min(canary.samples, stable.samples) >= self.spec.min_samples
            if conclusive:
                run.healthy += 1
            else:
                run.inconclusive += 1
            verdict = "healthy" if conclusive else "inconclusive"
            rollout.analysis = self._summary(run, record, verdict)
            sup.event(
                "canary_interval", service=svc.name, version=rollout.version, verdict=verdict,
                healthy=run.healthy, **record,
            )  # fmt: skip
            if run.healthy >= self.spec.healthy_intervals:
                self._runs.pop(svc.name, None)
                rollout.analysis = self._summary(run, record, "promoted")
                sup.event(
                    "canary_promoted", service=svc.name, version=rollout.version,
                    healthy_intervals=run.healthy, inconclusive_intervals=run.inconclusive,
                    **record,
                )  # fmt: skip
                await sup.promote(svc.name)
                rollout.reason = (
                    f"canary analysis: {run.healthy} healthy intervals of "
                    f"{self.spec.interval_s:g} s (last: canary {canary.error_pct:.1f}% errors, "
                    f"p95 {canary.p95_ms or 0:.0f} ms; stable {stable.error_pct:.1f}%, "
                    f"p95 {stable.p95_ms or 0:.0f} ms)"
                )

    def _summary(self, run: _Run, record: dict[str, Any], decision: str) -> dict[str, Any]:
        return {
            "decision": decision,
            "intervals": run.interval,
            "healthy_intervals": run.healthy,
            "inconclusive_intervals": run.inconclusive,
            "last": record,
        }
