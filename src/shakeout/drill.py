"""The drill engine: what steps call. One ``Drill`` per scenario.

A drill owns a run folder under ``reports/runs/``, the load it started, and the faults it ran.
It is the façade over the parts that do the work: the load (:mod:`shakeout.load`), the fault
injector (:mod:`shakeout.injector`), pure judging (:mod:`shakeout.judge`), the verdict ledger
(:mod:`shakeout.ledger`) and the target's own data check (:mod:`shakeout.datacheck`). Steps
stay thin: they parse words, call one method here, and assert on the verdict it returns.

The load ends explicitly (:meth:`Drill.end_load`; the step plugin calls it before a scenario's
first ``Then``): a check judges the records of an ended load and never stops it itself.
``close()`` always stops the load; faults are never left behind because ``run_experiment``
plays their rollbacks on every path (see :mod:`shakeout.chaos.runner`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from shakeout import profiles
from shakeout._process import wait_for
from shakeout.chaos.runner import FaultRun
from shakeout.errors import ConfigError, LoadError, PlatformError
from shakeout.events import describe
from shakeout.faults import Variables
from shakeout.injector import FaultInjector, StopCondition, stop_condition
from shakeout.judge import (
    Phases,
    RolloutOutcome,
    judge_hypothesis,
    judge_phase,
    judge_recovery_of,
    judge_rollout,
    judge_slo_file,
    phases_of,
)
from shakeout.ledger import Ledger, Outcome
from shakeout.load import Arrivals, LoadRun, LoadSpec, Model, Progress
from shakeout.observability.checks import AlertChecks
from shakeout.records import Impact
from shakeout.session import TargetSession
from shakeout.slo import (
    Objective,
    Verdict,
    budget_burned_pct,
    judge_budget,
    judge_fact,
    judge_orders,
)
from shakeout.slofile import SLOFile, load_slo

__all__ = ["Drill", "Outcome", "RolloutOutcome", "StopCondition"]

SLO_APPLIED = "slo-applied.txt"
"""The SLO file's objectives as "every objective of the SLO file holds" applied them."""


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
        profile_dirs: Sequence[Path] = (profiles.PROFILE_DIR,),
    ):
        self.platform = platform
        self.profile_dirs = profile_dirs
        self.slo: SLOFile | None = None
        if platform.slo_file is not None:
            self.slo = load_slo(platform.slo_file)
        self.findings: list[str] = []
        self.progress = progress
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = reports_dir / "runs" / f"{stamp}-{_slug(name)}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.load: LoadRun | None = None
        self.max_load_s = 240.0  # every load is bounded (a game day allows longer)
        self.ledger = Ledger()
        self.injector = FaultInjector(platform, self.run_dir, lambda: self.load, progress)
        self.started_at = time.time()
        self._events_since = self._last_event()
        self.skipped: str | None = None  # why a step skipped (the rest was still judged)
        self.alerts = AlertChecks(platform, self.ledger, self.phases, self.started_at)

    # -- load --------------------------------------------------------------------------------

    def start_load(
        self,
        profile: str,
        rate_rps: float,
        model: Model = "open",
        arrivals: Arrivals = "constant",
        max_duration_s: float | None = None,
        workers: int = 1,
        shape: dict[str, float] | None = None,
    ) -> LoadRun:
        """Start load from a profile (by name, in ``profile_dirs``, or by path) at a rate,
        bounded by ``max_duration_s`` (``max_load_s``); ``shape``: its shape options."""
        if self.load is not None:
            raise LoadError("load is already running in this drill")
        spec = LoadSpec(
            profiles.resolve(profile, self.profile_dirs),
            rate_rps,
            duration_s=self.max_load_s if max_duration_s is None else max_duration_s,
            model=model,
            arrivals=arrivals,
            workers=workers,
            shape_options=tuple(sorted((shape or {}).items())),
        )
        # A target whose workers run elsewhere (Kubernetes ``load.workers``): the local master
        # binds every interface and waits for them; ``close()`` removes them on every path.
        remote = self.platform.remote_workers
        if remote > 0:
            spec = replace(spec, expect_remote_workers=remote, master_bind_host="0.0.0.0")
            if self.progress:
                self.progress(f"starting {remote} load worker(s) on the target")
            self.platform.start_workers(spec)
        self.load = LoadRun(spec, self.platform.gateway_url, self.run_dir, self.progress)
        if self.progress:
            self.progress(f"starting load: {spec.label}")
        self.load.start()
        return self.load

    def hold(self, seconds: float) -> None:
        """Let the load run for a while (baseline or recovery), watching that it stays up."""
        load = self._require_load()
        if load.ended:
            raise LoadError("the load has ended: a hold must come before the checks")
        if wait_for(lambda: not load.running, seconds, period_s=0.2, on_tick=load.report):
            raise LoadError(f"the load generator stopped early; see {load.log_path}")

    def end_load(self) -> LoadRun:
        """End the load (idempotent) and return the run with every record accounted."""
        load = self._require_load()
        if not load.ended:
            load.stop()
            if self.progress:
                stats = load.records().stats(None)
                self.progress(f"load ended: {stats.count} requests, {stats.errors} errors")
        return load

    def _require_load(self) -> LoadRun:
        if self.load is None:
            raise LoadError("no load is running: a load step must come first")
        return self.load

    def _ended_load(self) -> LoadRun:
        """The load a check judges: it must have ended (checks never end it themselves)."""
        load = self._require_load()
        if not load.ended:
            raise LoadError(
                "the load is still running: end it before judging it (Drill.end_load; the "
                "steps end it before a scenario's first Then)"
            )
        return load

    # -- faults ------------------------------------------------------------------------------

    @property
    def faults(self) -> list[FaultRun]:
        """The faults run so far."""
        return self.injector.faults

    @property
    def stop_condition(self) -> StopCondition | None:
        """The stop condition armed for the faults that follow."""
        return self.injector.stop_condition

    @property
    def steady_state_timeout_s(self) -> float:
        """How long the target may take to reach its steady state (before and after faults)."""
        return self.injector.steady_state_timeout_s

    @steady_state_timeout_s.setter
    def steady_state_timeout_s(self, value: float) -> None:
        self.injector.steady_state_timeout_s = value

    def wait_until_steady(self, timeout_s: float | None = None) -> float:
        """Wait for the target's steady state and, where it has alerting, for no alert to be
        firing (see :class:`AlertChecks`); return the seconds waited (PlatformError)."""
        started = time.monotonic()
        self.injector.wait_until_steady(timeout_s)
        self.alerts.wait_until_quiet(
            self.steady_state_timeout_s if timeout_s is None else timeout_s
        )
        return time.monotonic() - started

    def inject(self, fault: str, **variables: str | float | int) -> FaultRun:
        """Run the experiment behind a fault word to its end, rollbacks included (see
        :meth:`FaultInjector.inject`); the steady state after it is kept as a verdict."""
        values: Variables = dict(variables)
        result, steady = self.injector.inject(fault, values)
        self.ledger.keep(steady)
        self.injector.raise_for(fault, result)
        return result

    def stop_when(self, max_error_rate: float, window_s: int) -> StopCondition:
        """Abort any fault (rollbacks played) once errors exceed a rate over a window."""
        self.injector.stop_condition = stop_condition(max_error_rate, window_s)
        return self.injector.stop_condition

    def stop_when_burning(self, factor: float, window_s: int) -> StopCondition:
        """Abort any fault once the error budget (from the SLO file) burns faster than
        ``factor`` times over a window: the fast-burn stop condition."""
        budget = self._budget()
        self.injector.stop_condition = stop_condition(factor * budget, window_s, budget)
        return self.injector.stop_condition

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
        self.injector.stop_condition = min(conditions, key=lambda c: c.max_error_rate)
        return self.injector.stop_condition

    def _budget(self) -> float:
        return 1.0 - self._require_slo().error_budget.availability_pct / 100.0

    def _require_slo(self) -> SLOFile:
        if self.slo is None:
            raise ConfigError(
                f"{self.platform.target_file}: field slo: the target names no SLO file"
            )
        return self.slo

    # -- verdicts ----------------------------------------------------------------------------

    def phases(self) -> Phases:
        """Windows of the drill, from the chaos journal's timestamps (see
        :func:`shakeout.judge.phases_of`)."""
        return phases_of(self.faults)

    @property
    def verdicts(self) -> list[Verdict]:
        """Every verdict of the drill so far, the latest per objective and phase."""
        return self.ledger.verdicts

    @property
    def recovery(self) -> Impact | None:
        """The slowest journey's recovery measured so far."""
        return self.ledger.recovery

    def check(self, objective: Objective, phase: str = "drill") -> Verdict:
        """Judge an objective over a phase of the drill (default: load start to load end)."""
        records = self._ended_load().records()
        verdict = judge_phase(objective, records, self.phases(), phase, bool(self.faults))
        return self.ledger.keep(verdict)

    def check_recovery(
        self, journey: str, within_s: float, max_error_rate: float = 0.01, sustain_s: float = 3.0
    ) -> Verdict:
        """Recovery objective (RTO): every objective of the journey (its error rate at or
        below ``max_error_rate``, and the SLO file's latency objectives for it) holds again
        for ``sustain_s`` seconds within ``within_s`` of the fault's start, read request by
        request; first impact, impact window and the time from the fault's end are kept."""
        records = self._ended_load().records()
        verdict, recovery = judge_recovery_of(
            records, self.phases(), journey, within_s, max_error_rate, self.slo, sustain_s
        )
        self.ledger.note_recovery(recovery)
        return self.ledger.keep(verdict)

    def check_slo_file(self) -> list[Verdict]:
        """Judge every objective of the target's SLO file; return the verdicts that did not
        pass (an inconclusive verdict is not a pass).

        Each latency, error-rate and availability objective in each phase the file lists;
        every burn-rate window over the drill; the recovery objective when a fault ran; the
        data objectives; the steady state after each fault.
        """
        slo = self._require_slo()
        load = self._ended_load()
        applied = slo.thresholds()
        (self.run_dir / SLO_APPLIED).write_text(
            f"{self.platform.slo_file}\n" + "".join(f"  {line}\n" for line in applied),
            encoding="utf-8",
        )
        if self.progress:
            self.progress(f"SLO file {self.platform.slo_file}: " + "; ".join(applied))
        judged, recoveries = judge_slo_file(
            slo, load.records(), load.recorder, self.phases(), bool(self.faults)
        )
        self.ledger.keep_all(judged)
        for recovery in recoveries:
            self.ledger.note_recovery(recovery)
        if slo.lost_orders is not None or slo.rpo_s is not None:
            judged.extend(self.check_orders(slo.lost_orders or 0, slo.rpo_s))
        judged.extend(self.ledger.of_kind("steady_state"))
        failed = [v for v in judged if not v.passed]
        self.findings.extend(v.message for v in failed)
        return failed

    def check_budget(self, max_pct: float) -> Verdict:
        """The share of the SLO file's error budget the drill consumed stays below ``max_pct``."""
        load = self._ended_load()
        return self.ledger.keep(judge_budget(load.recorder, self._budget(), max_pct))

    def check_steady_state(self) -> list[Verdict]:
        """The steady-state verdicts taken after each fault's rollbacks (at least one)."""
        found = self.ledger.of_kind("steady_state")
        if not found:
            raise ConfigError("the steady state after a fault needs a fault step before it")
        return found

    def check_orders(self, max_lost: int = 0, rpo_s: float | None = None) -> list[Verdict]:
        """Reconcile every acknowledged order with the target's order store: lost and
        duplicated orders (and the data-loss window when ``rpo_s`` is given)."""
        acknowledged = self._ended_load().recorder.acknowledged_orders
        store = self.platform.orders()
        if store is None:
            raise ConfigError(
                f"{self.platform.target_file}: target {self.platform.target!r} has no order "
                "store to reconcile with (the data check needs an orders service)"
            )
        found = store.reconcile(sorted(acknowledged))
        verdicts = judge_orders(acknowledged, found.missing, found.duplicates, max_lost, rpo_s)
        return self.ledger.keep_all(verdicts)

    def check_hypotheses(self) -> list[Verdict]:
        """Each fault's own steady-state hypothesis (its Chaos Toolkit experiment's probes,
        checked again after the method) held: the experiment did not deviate."""
        if not self.faults:
            raise ConfigError("the faults' own checks need a fault step before them")
        return self.ledger.keep_all([judge_hypothesis(fault) for fault in self.faults])

    def check_event(self, kind: str) -> Verdict:
        """The target reported at least one event of ``kind`` during the drill (for example
        ``breaker_opened`` or ``autoscaled`` on the embedded platform)."""
        events = [e for e in self.platform.events(self._events_since) if e.get("kind") == kind]
        return self.ledger.keep(
            judge_fact(
                "event",
                f"the target reports that {describe(kind)}",
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
        return self.ledger.keep(judge_rollout(outcome, expected, within_s))

    def rollout_outcome(self, service: str) -> RolloutOutcome:
        """How the latest rollout of a service ended."""
        return RolloutOutcome.read(service, self.platform.rollout(service))

    # -- end ---------------------------------------------------------------------------------

    def _last_event(self) -> int:
        try:
            events = self.platform.events()
        except PlatformError:
            return 0
        return int(events[-1]["seq"]) if events else 0

    def summary(self) -> dict[str, Any]:
        """What the drill measured and decided, kept as ``summary.json`` in the run folder."""
        load = self.load.summary() if self.load is not None else {}
        generator = self.load.generator_health() if self.load is not None else {}
        return {
            "drill": self.name,
            "target": self.platform.target,
            "started_at": self.started_at,
            "load_spec": self.load.spec.label if self.load else None,
            "load_warnings": self.load.warnings if self.load else [],
            "load": load,
            "generator": generator,
            "faults": [f.as_summary() for f in self.faults],
            "phases": self.phases(),
            "findings": self.findings,
        }

    def outcome(self, error: BaseException | None = None) -> Outcome:
        """The drill's outcome (see :meth:`Ledger.outcome`)."""
        return self.ledger.outcome(error, any(f.abort_reason for f in self.faults))

    def verdict_document(self, error: BaseException | None = None) -> dict[str, Any]:
        """``verdicts.json``: the outcome and every verdict, for the steps' callers and the
        report (see docs/architecture.md for its fields)."""
        budget = None
        if self.slo is not None and self.load is not None:
            budget = budget_burned_pct(self.load.recorder, self._budget())
        aborted = any(f.abort_reason for f in self.faults)
        document = self.ledger.document(
            self.name, self.platform.target, self.phases(), budget, error, aborted
        )
        document["alerts"] = self.alerts.document()
        document["server_side"] = [s.as_dict() for s in self.alerts.compared]
        if self.skipped is not None:  # what was asked was not all judged: never a plain pass
            document["skipped"] = self.skipped
            if document["outcome"] == "pass":
                document["outcome"] = "inconclusive"
        return document

    def close(self, error: BaseException | None = None) -> Path:
        """Stop the load, save the summary, the verdicts and the platform's events; return
        the run folder. ``error`` is what ended the scenario, if anything."""
        try:
            if self.load is not None:
                self.load.stop()
                self.load.save_series(self.run_dir / "timeseries.json")
                self.alerts.compare(self.slo, self.load.records(), self.progress)
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
            self.platform.stop_workers()
        return self.run_dir
