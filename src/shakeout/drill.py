"""The drill engine: what steps call. One ``Drill`` per scenario.

A drill owns a run folder under ``reports/runs/``, the load it started, and the faults it ran.
Steps stay thin: they parse words, call one method here, and assert on the verdict it returns.
``close()`` always stops the load; faults are never left behind because ``run_experiment``
plays their rollbacks on every path (see :mod:`shakeout.chaos.runner`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shakeout._process import wait_for
from shakeout.chaos import undo
from shakeout.chaos.runner import FaultRun, run_experiment, validate
from shakeout.errors import (
    ConfigError,
    FaultError,
    LoadError,
    PlatformError,
    StopConditionAbort,
)
from shakeout.load import Arrivals, LoadRun, LoadSpec, Model, Progress, resolve_profile
from shakeout.platform.lifecycle import PlatformClient
from shakeout.platform.state import PlatformState
from shakeout.slo import Objective, Verdict, burn_alert, evaluate, recovery_time
from shakeout.slofile import SLOFile, load_slo
from shakeout.topology import load_target


@dataclass(frozen=True)
class StopCondition:
    """Abort the fault when the error rate over the last ``window_s`` seconds exceeds this."""

    max_error_rate: float
    window_s: int


@dataclass(frozen=True)
class DataCheck:
    """Acknowledged orders reconciled with the store."""

    acknowledged: int
    missing: list[str]

    @property
    def message(self) -> str:
        """One line for assertions and reports."""
        if not self.missing:
            return f"all {self.acknowledged} acknowledged orders are in the store"
        shown = ", ".join(self.missing[:5])
        return (
            f"data objective breached: {len(self.missing)} of {self.acknowledged} acknowledged "
            f"orders are missing from the store (objective: 0 lost), e.g. {shown}"
        )


@dataclass(frozen=True)
class RolloutOutcome:
    """How a rollout of a service ended, read from the platform."""

    service: str
    version: str
    status: str
    reason: str
    duration_s: float | None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "drill"


class Drill:
    """One scenario's run against a target: load, faults, measurements, verdicts."""

    def __init__(
        self,
        platform: PlatformState,
        name: str,
        reports_dir: Path = Path("reports"),
        progress: Progress | None = None,
    ):
        self.platform = platform
        self.target = load_target(platform.target_file)
        self.slo: SLOFile | None = None
        if self.target.slo:
            self.slo = load_slo(Path(platform.target_file).parent / self.target.slo)
        self.findings: list[str] = []
        self.progress = progress
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = reports_dir / "runs" / f"{stamp}-{_slug(name)}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.load: LoadRun | None = None
        self.stop_condition: StopCondition | None = None
        self.faults: list[FaultRun] = []
        self.verdicts: list[Verdict] = []
        self.started_at = time.time()
        self._events_since = self._last_event()

    # -- load --------------------------------------------------------------------------------

    def start_load(
        self,
        profile: str,
        rate_rps: float,
        model: Model = "open",
        arrivals: Arrivals = "constant",
        max_duration_s: float = 240.0,
        workers: int = 1,
    ) -> LoadRun:
        """Start load from a profile at a rate (bounded by ``max_duration_s``)."""
        if self.load is not None:
            raise LoadError("load is already running in this drill")
        spec = LoadSpec(
            resolve_profile(profile),
            rate_rps,
            duration_s=max_duration_s,
            model=model,
            arrivals=arrivals,
            workers=workers,
        )
        self.load = LoadRun(spec, self.platform.gateway_url, self.run_dir, self.progress)
        if self.progress:
            self.progress(f"starting load: {spec.label}")
        self.load.start()
        return self.load

    def hold(self, seconds: float) -> None:
        """Let the load run for a while (baseline or recovery), watching that it stays up."""
        load = self._require_load()
        if wait_for(lambda: not load.running, seconds, period_s=0.2, on_tick=load.report):
            raise LoadError(f"the load generator stopped early; see {load.log_path}")

    def stop_load(self) -> LoadRun:
        """Stop the load (idempotent) and return the run with every record accounted."""
        load = self._require_load()
        load.stop()
        return load

    def _require_load(self) -> LoadRun:
        if self.load is None:
            raise LoadError("no load is running: a load step must come first")
        return self.load

    # -- faults ------------------------------------------------------------------------------

    def experiment_for(self, fault: str) -> Path:
        """The experiment the target maps a fault word to; errors name the target file."""
        faults = self.target.faults
        where = self.platform.target_file
        if fault not in faults:
            known = ", ".join(sorted(faults)) or "none"
            raise ConfigError(f"{where}: field faults: no fault {fault!r} (known: {known})")
        experiment = Path(faults[fault])
        if not experiment.is_file():
            raise ConfigError(f"{where}: field faults.{fault}: no experiment file {experiment}")
        return experiment

    def inject(self, fault: str, **variables: str | float | int) -> FaultRun:
        """Run the experiment behind a fault word to its end, rollbacks included."""
        experiment = self.experiment_for(fault)
        validate(experiment, self.run_dir)
        if self.progress:
            self.progress(f"fault {fault!r}: {experiment} {variables}")
        config = {"shakeout_target": self.platform.target, **variables}
        record = undo.write_record(self.platform.target, experiment, config)
        result = run_experiment(
            experiment,
            self.run_dir,
            config,
            on_tick=self.load.report if self.load else None,
            should_abort=self._stop_condition_breached,
        )
        if result.rollbacks_ok:
            record.remove()
        if self.progress:
            self.progress(f"fault {fault!r} ended: {result.summary()}")
        self.faults.append(result)
        if result.abort_reason:
            raise StopConditionAbort(
                f"aborted by stop condition: {result.abort_reason}; the fault was rolled back "
                f"({'ok' if result.rollbacks_ok else 'ROLLBACK FAILED'}); "
                f"journal {result.journal_path}"
            )
        if result.status == "aborted" or not result.rollbacks_ok:
            raise FaultError(f"{result.summary()}; journal {result.journal_path}")
        return result

    def stop_when(self, max_error_rate: float, window_s: int) -> StopCondition:
        """Abort any fault (rollbacks played) once errors exceed a rate over a window."""
        if window_s < 1:
            raise ConfigError(f"a stop condition's window must be at least 1 s, got {window_s}")
        self.stop_condition = StopCondition(max_error_rate, window_s)
        return self.stop_condition

    def _stop_condition_breached(self) -> str | None:
        condition, load = self.stop_condition, self.load
        if condition is None or load is None:
            return None
        load.read()
        now = time.time()
        # The current second counts too: a breach must not wait for the second to complete.
        stats = load.recorder.stats(None, now - condition.window_s, now + 1)
        if stats.count >= 10 and stats.error_rate > condition.max_error_rate:
            return (
                f"error rate {stats.error_rate:.1%} over the last {condition.window_s} s "
                f"({stats.count} requests) above {condition.max_error_rate:.1%}"
            )
        return None

    # -- verdicts ----------------------------------------------------------------------------

    def phases(self) -> dict[str, tuple[float | None, float | None]]:
        """Windows of the drill, from the chaos journal's timestamps (not step wall-clock).

        ``baseline`` runs from the load's start to the first fault's start, ``fault`` from
        there to the last fault's revert, ``recovery`` from the revert to the load's end.
        """
        starts = [f.fault_start for f in self.faults if f.fault_start is not None]
        ends = [f.fault_end for f in self.faults if f.fault_end is not None]
        start, end = (min(starts) if starts else None), (max(ends) if ends else None)
        return {
            "drill": (None, None),
            "baseline": (None, start),
            "fault": (start, end),
            "recovery": (end, None),
        }

    def check(self, objective: Objective, phase: str = "drill") -> Verdict:
        """Judge an objective over a phase of the drill (default: load start to load stop)."""
        load = self.stop_load()
        phases = self.phases()
        if phase not in phases:
            raise ConfigError(f"unknown phase {phase!r} (phases: {', '.join(phases)})")
        start, end = phases[phase]
        if phase != "drill" and not self.faults:
            raise ConfigError(f"the {phase} phase needs a fault step before this check")
        window = "the drill" if phase == "drill" else f"the {phase} phase"
        verdict = evaluate(objective, load.recorder, window=window, start=start, end=end)
        self.verdicts.append(verdict)
        return verdict

    def recovery_time(
        self, journey: str, max_error_rate: float, sustain_s: int = 3
    ) -> float | None:
        """Seconds from the fault's start until the journey's error rate stayed at or below
        ``max_error_rate`` for ``sustain_s`` whole seconds in a row (None: never)."""
        load = self.stop_load()
        start = self.phases()["fault"][0]
        if start is None:
            raise ConfigError("recovery time needs a fault step before this check")
        return recovery_time(load.recorder, journey, start, max_error_rate, sustain_s)

    def check_slo_file(self) -> list[str]:
        """Judge every objective of the target's SLO file; return the breaches (empty: all met).

        Each latency and error-rate objective in each phase the file lists; every burn-rate
        window over the drill; the recovery objective when a fault ran; lost orders.
        """
        slo = self._require_slo()
        breaches: list[str] = []
        phases = [p for p in slo.phases if p == "drill" or self.faults]
        for phase in phases:
            for lat in slo.latency:
                objective = Objective(lat.journey, "latency", lat.below_ms, float(lat.percentile))
                verdict = self.check(objective, phase)
                if not verdict.passed:
                    breaches.append(verdict.message)
            for err in slo.error_rate:
                verdict = self.check(
                    Objective(err.journey, "error_rate", err.below_pct / 100), phase
                )
                if not verdict.passed:
                    breaches.append(verdict.message)
        load = self.stop_load()
        budget = 1.0 - slo.error_budget.availability_pct / 100.0
        for window in slo.error_budget.windows:
            fired = burn_alert(load.recorder, budget, window.long_s, window.short_s, window.factor)
            text = f"burn-rate alert {window.long_s} s/{window.short_s} s at {window.factor:g}x"
            if fired is None:
                self.findings.append(f"{text}: did not fire")
            else:
                t, long_burn, short_burn = fired
                start = load.recorder.first_due or t
                breaches.append(
                    f"error budget breached: {text} fired {t - start:.0f} s into the drill "
                    f"(burn {long_burn:.1f}x over {window.long_s} s, {short_burn:.1f}x over "
                    f"{window.short_s} s; budget {budget:.2%} of requests)"
                )
        if slo.recovery_s is not None and self.faults:
            for journey in sorted({o.journey for o in slo.error_rate}):
                took = self.recovery_time(journey, 0.01)
                if took is None or took > slo.recovery_s:
                    seen = "never recovered" if took is None else f"recovered after {took:.0f} s"
                    breaches.append(
                        f"recovery objective breached: {journey} {seen} (objective: error rate "
                        f"under 1% for 3 s within {slo.recovery_s:g} s of the fault's start)"
                    )
        data = self.check_orders()
        if len(data.missing) > slo.lost_orders:
            breaches.append(data.message)
        self.findings.extend(breaches)
        return breaches

    def arm_stop_condition(self) -> StopCondition:
        """Arm the SLO file's stop condition for the faults that follow."""
        slo = self._require_slo()
        if slo.stop_condition is None:
            raise ConfigError(f"the SLO file of {self.platform.target_file} has no stop_condition")
        spec = slo.stop_condition
        return self.stop_when(spec.error_rate_pct / 100.0, spec.window_s)

    def _require_slo(self) -> SLOFile:
        if self.slo is None:
            raise ConfigError(
                f"{self.platform.target_file}: field slo: the target names no SLO file"
            )
        return self.slo

    def check_orders(self) -> DataCheck:
        """Reconcile every acknowledged order with the store, through the gateway."""
        acknowledged = sorted(self.stop_load().recorder.acknowledged_orders)
        missing: list[str] = []
        with httpx.Client(base_url=self.platform.gateway_url, timeout=30.0) as client:
            for i in range(0, len(acknowledged), 5000):
                chunk = acknowledged[i : i + 5000]
                try:
                    response = client.post("/api/orders/lookup", json={"ids": chunk})
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    raise PlatformError(
                        f"cannot reconcile orders: {self.platform.gateway_url}"
                        f"/api/orders/lookup failed: {exc}"
                    ) from exc
                missing.extend(response.json()["missing"])
        return DataCheck(len(acknowledged), missing)

    def rollout_outcome(self, service: str) -> RolloutOutcome:
        """How the latest rollout of a service ended."""
        with PlatformClient(self.platform) as client:
            services = client.status()["services"]
        if service not in services:
            raise ConfigError(f"no service {service!r} on target {self.platform.target!r}")
        rollout = services[service]["rollout"]
        if rollout is None:
            return RolloutOutcome(service, "", "none", "", None)
        ended = rollout.get("ended_at")
        return RolloutOutcome(
            service,
            rollout["version"],
            rollout["status"],
            rollout.get("reason", ""),
            ended - rollout["started_at"] if ended else None,
        )

    # -- end ---------------------------------------------------------------------------------

    def _last_event(self) -> int:
        try:
            with PlatformClient(self.platform) as client:
                events = client.events()
        except PlatformError:
            return 0
        return int(events[-1]["seq"]) if events else 0

    def summary(self) -> dict[str, Any]:
        """What the drill measured and decided, kept as ``summary.json`` in the run folder."""
        load: dict[str, Any] = {}
        if self.load is not None:
            recorder = self.load.recorder
            for name in [*recorder.names(), None]:
                s = recorder.stats(name)
                load[name or "all"] = {
                    "requests": s.count,
                    "errors": s.errors,
                    "dropped": s.dropped,
                    "error_rate": s.error_rate,
                    "throughput_rps": s.throughput_rps,
                    "p50_ms": s.p50_ms,
                    "p95_ms": s.p95_ms,
                    "p99_ms": s.p99_ms,
                    "max_ms": s.max_ms,
                }
        return {
            "drill": self.name,
            "target": self.platform.target,
            "started_at": self.started_at,
            "load_spec": self.load.spec.label if self.load else None,
            "load_warnings": self.load.warnings if self.load else [],
            "load": load,
            "faults": [
                {
                    "experiment": str(f.experiment),
                    "status": f.status,
                    "deviated": f.deviated,
                    "fault_start": f.fault_start,
                    "fault_end": f.fault_end,
                    "rollbacks_ok": f.rollbacks_ok,
                    "abort_reason": f.abort_reason,
                    "aborted_at": f.aborted_at,
                    "rolled_back_at": max((a.end or 0.0 for a in f.rollbacks), default=None),
                    "journal": str(f.journal_path),
                }
                for f in self.faults
            ],
            "phases": self.phases(),
            "findings": self.findings,
            "verdicts": [v.as_dict() for v in self.verdicts],
        }

    def close(self) -> Path:
        """Stop the load, save the summary and the platform's events; return the run folder."""
        try:
            if self.load is not None:
                self.load.stop()
                self.load.save_series(self.run_dir / "timeseries.json")
                for warning in self.load.warnings:
                    if self.progress:
                        self.progress(f"warning: {warning}")
        finally:
            (self.run_dir / "summary.json").write_text(
                json.dumps(self.summary(), indent=2, default=str), encoding="utf-8"
            )
            try:
                with PlatformClient(self.platform) as client:
                    events = client.events(self._events_since)
                (self.run_dir / "platform-events.json").write_text(
                    json.dumps(events, indent=2), encoding="utf-8"
                )
            except PlatformError:
                pass
        return self.run_dir
