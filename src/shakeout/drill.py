"""The drill engine: what steps call. One ``Drill`` per scenario.

A drill owns a run folder under ``reports/runs/``, the load it started, and the faults it ran.
Steps stay thin: they parse words, call one method here, and assert on the verdict it returns.
``close()`` always stops the load; faults are never left behind because ``run_experiment``
plays their rollbacks on every path (see :mod:`shakeout.chaos.runner`).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

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
from shakeout.records import Impact, LatencyLimit
from shakeout.session import TargetSession
from shakeout.slo import (
    Objective,
    Verdict,
    budget_burned_pct,
    evaluate,
    judge_budget,
    judge_burn,
    judge_fact,
    judge_orders,
    judge_recovery,
)
from shakeout.slofile import SLOFile, load_slo
from shakeout.topology import load_any_target

STEADY_STATE_TIMEOUT_S = 30.0

Outcome = Literal["pass", "fail", "inconclusive", "aborted", "error"]


@dataclass(frozen=True)
class StopCondition:
    """Abort the fault when the error rate over the last ``window_s`` seconds exceeds
    ``max_error_rate``. A burn-rate condition is the same test, read against the error budget
    (``budget``): burning faster than F times means an error rate above F x budget."""

    max_error_rate: float
    window_s: int
    budget: float | None = None

    def describe(self, error_rate: float) -> str:
        """What was crossed, in the words the condition was given in."""
        if self.budget:
            return (
                f"error budget burning at {error_rate / self.budget:.1f}x over the last "
                f"{self.window_s} s, above {self.max_error_rate / self.budget:g}x"
            )
        return (
            f"error rate {error_rate:.1%} over the last {self.window_s} s above "
            f"{self.max_error_rate:.1%}"
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
        platform: TargetSession,
        name: str,
        reports_dir: Path = Path("reports"),
        progress: Progress | None = None,
    ):
        self.platform = platform
        self.target = load_any_target(platform.target_file)
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
        self._verdicts: dict[tuple[str, str, str], Verdict] = {}
        self.recovery: Impact | None = None
        self.steady_state_timeout_s = STEADY_STATE_TIMEOUT_S
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
        # A target whose workers run elsewhere (Kubernetes ``load.workers``): the local master
        # binds every interface and waits for them; ``close()`` removes them on every path.
        remote: int = getattr(self.platform, "remote_workers", 0)
        if remote > 0:
            spec = replace(spec, expect_remote_workers=remote, master_bind_host="0.0.0.0")
            if self.progress:
                self.progress(f"starting {remote} load worker(s) on the target")
            self.platform.start_workers(spec)  # type: ignore[attr-defined]
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

    def wait_until_steady(self, timeout_s: float | None = None) -> float:
        """Wait until the target is in its steady state (for example replicas an autoscaler
        just added are ready); return the seconds waited. PlatformError when it never is."""
        timeout = self.steady_state_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        problem = ""

        def steady() -> bool:
            nonlocal problem
            met, problem = self.platform.steady_state()
            return met

        tick = self.load.report if self.load else None
        if not wait_for(steady, timeout, period_s=0.2, on_tick=tick):
            raise PlatformError(
                f"target {self.platform.target!r} is not in its steady state after {timeout:g} s "
                f"({problem})"
            )
        return time.monotonic() - started

    def inject(self, fault: str, **variables: str | float | int) -> FaultRun:
        """Run the experiment behind a fault word to its end, rollbacks included.

        The target must be in its steady state first (the experiment's own hypothesis checks
        it again); an experiment whose method never ran is a fault that was not applied, an
        error, never a pass."""
        experiment = self.experiment_for(fault)
        validate(experiment, self.run_dir)
        try:
            self.wait_until_steady()
        except PlatformError as exc:
            raise PlatformError(f"{exc}; fault {fault!r} was not injected") from exc
        if self.progress:
            self.progress(f"fault {fault!r}: {experiment} {variables}")
        config = {**self.platform.chaos_configuration(), **variables}
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
        self._keep(self._steady_state_after(fault))
        if result.abort_reason:
            raise StopConditionAbort(
                f"aborted by stop condition: {result.abort_reason}; the fault was rolled back "
                f"({'ok' if result.rollbacks_ok else 'ROLLBACK FAILED'}); "
                f"journal {result.journal_path}"
            )
        if result.status == "aborted" or not result.rollbacks_ok:
            raise FaultError(f"{result.summary()}; journal {result.journal_path}")
        if result.fault_start is None:
            raise FaultError(
                f"fault {fault!r} was not applied: {experiment}'s method never ran (its "
                f"steady-state hypothesis did not hold before it); journal {result.journal_path}"
            )
        return result

    def stop_when(self, max_error_rate: float, window_s: int) -> StopCondition:
        """Abort any fault (rollbacks played) once errors exceed a rate over a window."""
        if window_s < 1:
            raise ConfigError(f"a stop condition's window must be at least 1 s, got {window_s}")
        self.stop_condition = StopCondition(max_error_rate, window_s)
        return self.stop_condition

    def stop_when_burning(self, factor: float, window_s: int) -> StopCondition:
        """Abort any fault once the error budget (from the SLO file) burns faster than
        ``factor`` times over a window: the fast-burn stop condition."""
        if window_s < 1:
            raise ConfigError(f"a stop condition's window must be at least 1 s, got {window_s}")
        budget = self._budget()
        if factor * budget >= 1.0:
            raise ConfigError(
                f"a burn rate of {factor:g}x with a budget of {budget:.2%} can never be reached"
            )
        self.stop_condition = StopCondition(factor * budget, window_s, budget)
        return self.stop_condition

    def _budget(self) -> float:
        return 1.0 - self._require_slo().error_budget.availability_pct / 100.0

    def _stop_condition_breached(self) -> str | None:
        condition, load = self.stop_condition, self.load
        if condition is None or load is None:
            return None
        load.read()
        now = time.time()
        # The current second counts too: a breach must not wait for the second to complete.
        stats = load.recorder.stats(None, now - condition.window_s, now + 1)
        if stats.count >= 10 and stats.error_rate > condition.max_error_rate:
            return f"{condition.describe(stats.error_rate)} ({stats.count} requests)"
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

    @property
    def verdicts(self) -> list[Verdict]:
        """Every verdict of the drill so far, the latest per objective and phase."""
        return list(self._verdicts.values())

    def _keep(self, verdict: Verdict) -> Verdict:
        self._verdicts[(verdict.kind, verdict.objective, verdict.phase)] = verdict
        return verdict

    def check(self, objective: Objective, phase: str = "drill") -> Verdict:
        """Judge an objective over a phase of the drill (default: load start to load stop)."""
        load = self.stop_load()
        phases = self.phases()
        if phase not in phases:
            raise ConfigError(f"unknown phase {phase!r} (phases: {', '.join(phases)})")
        start, end = phases[phase]
        if phase != "drill" and not self.faults:
            raise ConfigError(f"the {phase} phase needs a fault step before this check")
        return self._keep(evaluate(objective, load.records(), phase, start, end))

    def _latency_limits(self, journey: str) -> list[LatencyLimit]:
        """The SLO file's latency objectives for a journey (none without an SLO file)."""
        if self.slo is None:
            return []
        return [
            LatencyLimit(float(lat.percentile), lat.below_ms)
            for lat in self.slo.latency
            if lat.journey in (journey, "all")
        ]

    def check_recovery(
        self, journey: str, within_s: float, max_error_rate: float = 0.01, sustain_s: float = 3.0
    ) -> Verdict:
        """Recovery objective (RTO): every objective of the journey (its error rate at or
        below ``max_error_rate``, and the SLO file's latency objectives for it) holds again
        for ``sustain_s`` seconds within ``within_s`` of the fault's start, read request by
        request; first impact, impact window and the time from the fault's end are kept."""
        load = self.stop_load()
        start, end = self.phases()["fault"]
        if start is None:
            raise ConfigError("recovery time needs a fault step before this check")
        verdict, recovery = judge_recovery(
            load.records(),
            journey,
            start,
            end,
            within_s,
            max_error_rate,
            sustain_s,
            self._latency_limits(journey),
        )

        # The drill's recovery is its slowest journey's (never recovering is the slowest).
        def slowness(r: Impact) -> float:
            return math.inf if r.from_fault_start_s is None else r.from_fault_start_s

        if self.recovery is None or slowness(recovery) >= slowness(self.recovery):
            self.recovery = recovery
        return self._keep(verdict)

    def check_slo_file(self) -> list[Verdict]:
        """Judge every objective of the target's SLO file; return the verdicts that did not
        pass (an inconclusive verdict is not a pass).

        Each latency, error-rate and availability objective in each phase the file lists;
        every burn-rate window over the drill; the recovery objective when a fault ran; the
        data objectives; the steady state after each fault.
        """
        slo = self._require_slo()
        judged: list[Verdict] = []
        phases = [p for p in slo.phases if p == "drill" or self.faults]
        for phase in phases:
            for lat in slo.latency:
                objective = Objective(lat.journey, "latency", lat.below_ms, float(lat.percentile))
                judged.append(self.check(objective, phase))
            for err in slo.error_rate:
                objective = Objective(err.journey, "error_rate", err.below_pct / 100)
                judged.append(self.check(objective, phase))
            for avail in slo.availability:
                journey = avail.journey
                objective = Objective(journey, "availability", avail.above_pct / 100)
                judged.append(self.check(objective, phase))
        load = self.stop_load()
        budget = self._budget()
        for window in slo.error_budget.windows:
            verdict = judge_burn(
                load.recorder, budget, window.long_s, window.short_s, window.factor
            )
            judged.append(self._keep(verdict))
        if slo.recovery_s is not None and self.faults:
            for err in sorted(slo.error_rate, key=lambda o: o.journey):
                judged.append(self.check_recovery(err.journey, slo.recovery_s, err.below_pct / 100))
        judged.extend(self.check_orders(slo.lost_orders, slo.rpo_s))
        judged.extend(v for v in self.verdicts if v.kind == "steady_state")
        failed = [v for v in judged if not v.passed]
        self.findings.extend(v.message for v in failed)
        return failed

    def check_budget(self, max_pct: float) -> Verdict:
        """The share of the SLO file's error budget the drill consumed stays below ``max_pct``."""
        load = self.stop_load()
        return self._keep(judge_budget(load.recorder, self._budget(), max_pct))

    def check_steady_state(self) -> list[Verdict]:
        """The steady-state verdicts taken after each fault's rollbacks (at least one)."""
        found = [v for v in self.verdicts if v.kind == "steady_state"]
        if not found:
            raise ConfigError("the steady state after a fault needs a fault step before it")
        return found

    def arm_stop_condition(self) -> StopCondition:
        """Arm the SLO file's stop condition for the faults that follow (its fast-burn form
        when it gives a burn rate, which is checked as the stricter of the two)."""
        slo = self._require_slo()
        if slo.stop_condition is None:
            raise ConfigError(f"the SLO file of {self.platform.target_file} has no stop_condition")
        spec = slo.stop_condition
        conditions: list[StopCondition] = []
        if spec.burn_rate is not None:
            conditions.append(self.stop_when_burning(spec.burn_rate, spec.window_s))
        if spec.error_rate_pct is not None:
            conditions.append(self.stop_when(spec.error_rate_pct / 100.0, spec.window_s))
        self.stop_condition = min(conditions, key=lambda c: c.max_error_rate)
        return self.stop_condition

    def _require_slo(self) -> SLOFile:
        if self.slo is None:
            raise ConfigError(
                f"{self.platform.target_file}: field slo: the target names no SLO file"
            )
        return self.slo

    def check_orders(self, max_lost: int = 0, rpo_s: float | None = None) -> list[Verdict]:
        """Reconcile every acknowledged order with the store, through the gateway: lost and
        duplicated orders (and the data-loss window when ``rpo_s`` is given)."""
        acknowledged = self.stop_load().recorder.acknowledged_orders
        ids = sorted(acknowledged)
        missing: list[str] = []
        duplicates: dict[str, int] = {}
        with httpx.Client(base_url=self.platform.gateway_url, timeout=30.0) as client:
            for i in range(0, len(ids), 5000):
                chunk = ids[i : i + 5000]
                try:
                    response = client.post("/api/orders/lookup", json={"ids": chunk})
                    response.raise_for_status()
                    answer = response.json()
                    missing.extend(answer["missing"])
                    # The store names the orders sharing each idempotency key.
                    for key, orders in answer["duplicates"].items():
                        duplicates[key] = len(orders)
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    raise PlatformError(
                        f"cannot reconcile orders: {self.platform.gateway_url}"
                        f"/api/orders/lookup failed: {exc!r}"
                    ) from exc
        return [
            self._keep(v) for v in judge_orders(acknowledged, missing, duplicates, max_lost, rpo_s)
        ]

    def _steady_state_after(self, fault: str) -> Verdict:
        """After a fault's rollbacks: the target back in its steady state within
        ``steady_state_timeout_s``. Reported as a verdict, not assumed."""
        try:
            took: float | None = self.wait_until_steady()
            met, problem = True, ""
        except PlatformError as exc:
            took, met, problem = None, False, str(exc)
        if self.progress and not met:
            self.progress(f"warning: steady state not back after {fault!r}: {problem}")
        return judge_fact(
            "steady_state",
            f"the target is back in its steady state within {self.steady_state_timeout_s:g} s "
            f"of {fault} being rolled back",
            "recovery",
            took,
            self.steady_state_timeout_s,
            "s",
            met,
            "" if met else problem,
        )

    def check_hypotheses(self) -> list[Verdict]:
        """Each fault's own steady-state hypothesis (its Chaos Toolkit experiment's probes,
        checked again after the method) held: the experiment did not deviate."""
        if not self.faults:
            raise ConfigError("the faults' own checks need a fault step before them")
        verdicts = []
        for fault in self.faults:
            name = fault.experiment.stem
            verdicts.append(
                self._keep(
                    judge_fact(
                        "steady_state",
                        f"the steady-state hypothesis of {name} holds after its method",
                        "fault",
                        None,
                        None,
                        "",
                        not fault.deviated and fault.status == "completed",
                        f"experiment {fault.status}"
                        + (", deviated" if fault.deviated else "")
                        + f"; journal {fault.journal_path}",
                    )
                )
            )
        return verdicts

    def check_event(self, kind: str) -> Verdict:
        """The target reported at least one event of ``kind`` during the drill (for example
        ``breaker_opened`` or ``autoscaled`` on the embedded platform)."""
        events = [e for e in self.platform.events(self._events_since) if e.get("kind") == kind]
        return self._keep(
            judge_fact(
                "event",
                f"the target reports a {kind} event",
                "drill",
                float(len(events)),
                1.0,
                "events",
                bool(events),
                "" if events else "no such event between the drill's start and now",
            )
        )

    def check_rollout(self, service: str, expected: str, within_s: float) -> Verdict:
        """The platform ended the latest rollout of a service as ``expected`` (``rolled_back``
        or ``promoted``) by itself, within ``within_s`` of its start."""
        outcome = self.rollout_outcome(service)
        verb = expected.replace("_", " ")
        objective = f"the release of {service} is {verb} within {within_s:g} s"
        if outcome.status != expected or outcome.duration_s is None:
            note = f"the release {outcome.version!r} ended {outcome.status!r}"
            met = False
        else:
            met = outcome.duration_s <= within_s
            note = outcome.reason
        return self._keep(
            judge_fact("rollout", objective, "fault", outcome.duration_s, within_s, "s", met, note)
        )

    def rollout_outcome(self, service: str) -> RolloutOutcome:
        """How the latest rollout of a service ended."""
        rollout = self.platform.rollout(service)
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
            events = self.platform.events()
        except PlatformError:
            return 0
        return int(events[-1]["seq"]) if events else 0

    def summary(self) -> dict[str, Any]:
        """What the drill measured and decided, kept as ``summary.json`` in the run folder."""
        load: dict[str, Any] = {}
        generator: dict[str, Any] = {}
        if self.load is not None:
            records = self.load.records()
            for name in [*records.names(), None]:
                s = records.stats(name)
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
                    "window_s": s.end - s.start,
                }
            generator = self.load.generator_health()
        return {
            "drill": self.name,
            "target": self.platform.target,
            "started_at": self.started_at,
            "load_spec": self.load.spec.label if self.load else None,
            "load_warnings": self.load.warnings if self.load else [],
            "load": load,
            "generator": generator,
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
        }

    def outcome(self, error: BaseException | None = None) -> Outcome:
        """The drill's outcome from its verdicts and how it ended.

        ``aborted`` when a stop condition aborted a fault; ``error`` when it ended on an
        exception that is not an SLO assertion (harness, fault or target trouble); ``fail``
        when an assertion or a verdict failed; ``inconclusive`` when a verdict could not be
        reached or none was asked for; otherwise ``pass``.
        """
        if isinstance(error, StopConditionAbort) or any(f.abort_reason for f in self.faults):
            return "aborted"
        if error is not None and not isinstance(error, AssertionError):
            return "error"
        statuses = {v.status for v in self.verdicts}
        if error is not None or "fail" in statuses:
            return "fail"
        if "inconclusive" in statuses or not statuses:
            return "inconclusive"
        return "pass"

    def verdict_document(self, error: BaseException | None = None) -> dict[str, Any]:
        """``verdicts.json``: the outcome and every verdict, for the steps' callers and the
        report (see docs/architecture.md for its fields)."""
        budget = None
        if self.slo is not None and self.load is not None:
            budget = budget_burned_pct(self.load.recorder, self._budget())
        return {
            "schema": 1,
            "drill": self.name,
            "target": self.platform.target,
            "outcome": self.outcome(error),
            "error": None if error is None else f"{type(error).__name__}: {error}",
            "phases": self.phases(),
            "recovery": self.recovery.as_dict() if self.recovery else None,
            "budget_burned_pct": budget,
            "verdicts": [v.as_dict() for v in self.verdicts],
        }

    def close(self, error: BaseException | None = None) -> Path:
        """Stop the load, save the summary, the verdicts and the platform's events; return
        the run folder. ``error`` is what ended the scenario, if anything."""
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
            (self.run_dir / "verdicts.json").write_text(
                json.dumps(self.verdict_document(error), indent=2), encoding="utf-8"
            )
            try:
                events = self.platform.events(self._events_since)
                (self.run_dir / "platform-events.json").write_text(
                    json.dumps(events, indent=2), encoding="utf-8"
                )
            except PlatformError:
                pass
            if hasattr(self.platform, "stop_workers"):
                self.platform.stop_workers()
        return self.run_dir
