"""A drill's alert checks: what the target's alerting did, judged against the fault journal.

Alerts count from the moment the drill found its target steady and quiet (no alert firing:
an earlier drill's alert must not count in this one). Each check reads the timeline only once
Prometheus has evaluated its rules up to the moment of the check, so an alert that fired just
before is never missed; a target without alerting raises :class:`AlertingUnavailable`, which
the steps turn into a skip with the reason.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from shakeout._process import wait_for
from shakeout.errors import AlertingUnavailable, ConfigError, PlatformError
from shakeout.judge import Phases
from shakeout.ledger import Ledger
from shakeout.observability.alerts import (
    AlertSource,
    AlertSpan,
    judge_fires,
    judge_quiet,
    judge_resolves,
    judge_routed,
    judge_runbooks,
)
from shakeout.observability.serverside import SideBySide, compare, server_figures
from shakeout.records import RecordSet
from shakeout.session import TargetSession
from shakeout.slo import Verdict
from shakeout.slofile import SLOFile


class AlertChecks:
    """The alert checks of one drill (``Drill.alerts``)."""

    def __init__(
        self, session: TargetSession, ledger: Ledger, phases: Callable[[], Phases], since: float
    ) -> None:
        """Alerts count from ``since`` until :meth:`wait_until_quiet` moves it on."""
        self.session = session
        self.ledger = ledger
        self.phases = phases
        self.since = since
        self.timeline: list[AlertSpan] = []
        self.compared: list[SideBySide] = []  # the servers' view beside the load's (compare)

    def _source(self) -> AlertSource:
        source = self.session.alerting()
        if isinstance(source, str):
            raise AlertingUnavailable(source)
        return source

    def wait_until_quiet(self, timeout_s: float) -> None:
        """Where the target has alerting, wait until no alert is firing (PlatformError after
        ``timeout_s``); alerts count from then on."""
        source = self.session.alerting()
        if isinstance(source, AlertSource):
            firing: list[AlertSpan] = []

            def quiet() -> bool:
                nonlocal firing
                now = time.time()
                firing = [s for s in source.timeline(now - 5.0, now) if s.end is None]
                return not firing

            if not wait_for(quiet, timeout_s, period_s=0.5):
                raise PlatformError(
                    f"target {self.session.target!r}: alerts still firing after "
                    f"{timeout_s:g} s: " + ", ".join(s.who for s in firing)
                )
        self.since = time.time()

    def _read(self, source: AlertSource) -> list[AlertSpan]:
        now = time.time()
        wait_for(lambda: source.evaluated_since(now), 10.0, period_s=0.1)
        self.timeline = source.timeline(self.since)
        return self.timeline

    def _fault(self) -> tuple[float, float | None]:
        start, end = self.phases()["fault"]
        if start is None:
            raise ConfigError("an alert check needs a fault step before it")
        return start, end

    def fires(self, alert: str, within_s: float) -> Verdict:
        """The alert fired within ``within_s`` of the fault's start (from the journal)."""
        source = self._source()
        start, _ = self._fault()
        spans = self._read(source)
        return self.ledger.keep(judge_fires(alert, spans, source.rules(), start, within_s))

    def resolves(self, alert: str, within_s: float) -> Verdict:
        """Every firing of the alert ended within ``within_s`` of recovery (the fault's end,
        rollbacks done); waits for that moment if it is still ahead."""
        source = self._source()
        _, end = self._fault()
        recovered = end if end is not None else time.time()
        deadline = recovered + within_s + 2 * source.interval_s

        def resolved() -> bool:
            return all(s.end is not None for s in self._read(source) if s.alert == alert)

        wait_for(resolved, max(0.0, deadline - time.time()), period_s=0.5)
        spans = self._read(source)
        return self.ledger.keep(judge_resolves(alert, spans, recovered, within_s))

    def quiet(self) -> Verdict:
        """No alert fired from the drill's quiet start to now."""
        return self.ledger.keep(judge_quiet(self._read(self._source())))

    def runbooks(self) -> Verdict:
        """Every alert that fired in the drill carries a runbook link."""
        source = self._source()
        spans = self._read(source)
        return self.ledger.keep(judge_runbooks(spans, source.rules()))

    def routed(self, alert: str, receiver: str, timeout_s: float = 10.0) -> Verdict:
        """A notification of the alert reached ``receiver`` (waited for up to ``timeout_s``:
        Alertmanager sends it a moment after Prometheus fires)."""
        source = self._source()
        spans = self._read(source)
        received: list[tuple[str, str]] = []

        def arrived() -> bool:
            nonlocal received
            received = source.received(self.since)
            return (receiver, alert) in received

        if any(s.alert == alert for s in spans):
            wait_for(arrived, timeout_s, period_s=0.25)
        return self.ledger.keep(judge_routed(alert, spans, received, receiver))

    def all_routed(self, receiver: str) -> list[Verdict]:
        """Every alert that fired in the drill reached ``receiver``; none fired is a failure
        (a routing check needs an alert to route)."""
        names = sorted({s.alert for s in self._read(self._source())})
        if not names:
            return [self.ledger.keep(judge_routed("any", [], [], receiver))]
        return [self.routed(name, receiver) for name in names]

    def compare(
        self, slo: SLOFile | None, records: RecordSet, progress: Callable[[str], None] | None
    ) -> list[SideBySide]:
        """Per journey of the SLO file's ``alerting.journeys``: what the servers saw (from
        Prometheus) beside what the load saw, over the load's run (kept in ``compared``; a
        disagreement beyond the bounds is a warning). Best effort: it never fails a drill."""
        source = self.session.alerting()
        whole = records.stats(None)
        if slo is None or slo.alerting is None or not isinstance(source, AlertSource):
            return []
        if not whole.count:
            return []
        start, end = whole.start, whole.end
        try:
            wait_for(lambda: source.scraped_since(end), 5.0, period_s=0.2)
            self.compared = [
                compare(name, where, records.stats(name), server_figures(source, where, start, end))
                for name, where in slo.alerting.journeys.items()
                if name in records.names()
            ]
        except PlatformError:
            return []
        for row in self.compared:
            if row.flag and progress is not None:
                progress(f"warning: {row.journey}: the load and the servers disagree: {row.flag}")
        return self.compared

    def live(self) -> list[AlertSpan]:
        """The alerts that fired since the drill began, as they stand now (a game day's live
        view; empty without alerting)."""
        source = self.session.alerting()
        return source.timeline(self.since) if isinstance(source, AlertSource) else []

    def document(self) -> list[dict[str, Any]]:
        """The drill's alert timeline for verdicts.json, each alert with its delay after the
        fault's start (best effort: no alerting, no timeline)."""
        source = self.session.alerting()
        if isinstance(source, AlertSource):
            with contextlib.suppress(PlatformError):
                self.timeline = source.timeline(self.since)
        start = self.phases()["fault"][0]
        return [
            {**s.as_dict(), "after_fault_s": None if start is None else round(s.start - start, 3)}
            for s in self.timeline
        ]
