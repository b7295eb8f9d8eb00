"""Pure judging: from an SLO, the drill's records and its phases to verdicts.

Nothing here reads a clock, a file or the network, so every rule is tested on records alone;
the drill (:mod:`shakeout.drill`) feeds it what it measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shakeout.chaos.runner import FaultRun
from shakeout.errors import ConfigError
from shakeout.measure import Recorder
from shakeout.records import Impact, LatencyLimit, RecordSet
from shakeout.slo import Objective, Verdict, evaluate, judge_burn, judge_fact, judge_recovery
from shakeout.slofile import SLOFile

Phases = dict[str, tuple[float | None, float | None]]


def phases_of(faults: Sequence[FaultRun]) -> Phases:
    """Windows of a drill, from the chaos journals' timestamps (not step wall-clock).

    ``baseline`` runs from the load's start to the first fault's start, ``fault`` from there
    to the last fault's revert, ``recovery`` from the revert to the load's end.
    """
    starts = [f.fault_start for f in faults if f.fault_start is not None]
    ends = [f.fault_end for f in faults if f.fault_end is not None]
    start, end = (min(starts) if starts else None), (max(ends) if ends else None)
    return {
        "drill": (None, None),
        "baseline": (None, start),
        "fault": (start, end),
        "recovery": (end, None),
    }


def judge_phase(
    objective: Objective, records: RecordSet, phases: Phases, phase: str, fault_ran: bool
) -> Verdict:
    """An objective over one phase; ConfigError for an unknown phase or a fault phase
    without a fault."""
    if phase not in phases:
        raise ConfigError(f"unknown phase {phase!r} (phases: {', '.join(phases)})")
    if phase != "drill" and not fault_ran:
        raise ConfigError(f"the {phase} phase needs a fault step before this check")
    start, end = phases[phase]
    return evaluate(objective, records, phase, start, end)


def latency_limits(slo: SLOFile | None, journey: str) -> list[LatencyLimit]:
    """The SLO file's latency objectives for a journey (none without an SLO file)."""
    if slo is None:
        return []
    return [
        LatencyLimit(float(lat.percentile), lat.below_ms)
        for lat in slo.latency
        if lat.journey in (journey, "all")
    ]


def judge_recovery_of(
    records: RecordSet,
    phases: Phases,
    journey: str,
    within_s: float,
    max_error_rate: float,
    slo: SLOFile | None,
    sustain_s: float = 3.0,
) -> tuple[Verdict, Impact]:
    """The recovery objective of a journey against the fault phase (see
    :func:`shakeout.slo.judge_recovery`), held to the SLO file's latency objectives too."""
    start, end = phases["fault"]
    if start is None:
        raise ConfigError("recovery time needs a fault step before this check")
    return judge_recovery(
        records,
        journey,
        start,
        end,
        within_s,
        max_error_rate,
        sustain_s,
        latency_limits(slo, journey),
    )


def judge_slo_file(
    slo: SLOFile, records: RecordSet, recorder: Recorder, phases: Phases, fault_ran: bool
) -> tuple[list[Verdict], list[Impact]]:
    """Every load objective of an SLO file: latency, error rate and availability in each
    phase it lists (fault phases only when a fault ran), every burn-rate window, and the
    recovery objective of each error-rate journey when a fault ran. Returns the verdicts and
    the recoveries measured. Data and steady-state objectives are the drill's to add."""
    budget = 1.0 - slo.error_budget.availability_pct / 100.0
    verdicts: list[Verdict] = []
    for phase in [p for p in slo.phases if p == "drill" or fault_ran]:
        objectives = [
            Objective(lat.journey, "latency", lat.below_ms, float(lat.percentile))
            for lat in slo.latency
        ]
        objectives += [
            Objective(err.journey, "error_rate", err.below_pct / 100) for err in slo.error_rate
        ]
        objectives += [
            Objective(av.journey, "availability", av.above_pct / 100) for av in slo.availability
        ]
        verdicts += [judge_phase(o, records, phases, phase, fault_ran) for o in objectives]
    for window in slo.error_budget.windows:
        verdicts.append(judge_burn(recorder, budget, window.long_s, window.short_s, window.factor))
    recoveries: list[Impact] = []
    if slo.recovery_s is not None and fault_ran:
        for err in sorted(slo.error_rate, key=lambda o: o.journey):
            verdict, recovery = judge_recovery_of(
                records, phases, err.journey, slo.recovery_s, err.below_pct / 100, slo
            )
            verdicts.append(verdict)
            recoveries.append(recovery)
    return verdicts, recoveries


def judge_hypothesis(fault: FaultRun) -> Verdict:
    """A fault's own steady-state hypothesis (its experiment's probes, checked again after
    the method) held: the experiment completed and did not deviate."""
    return judge_fact(
        "steady_state",
        f"the steady-state hypothesis of {fault.experiment.stem} holds after its method",
        "fault",
        None,
        None,
        "",
        not fault.deviated and fault.status == "completed",
        f"experiment {fault.status}"
        + (", deviated" if fault.deviated else "")
        + f"; journal {fault.journal_path}",
    )


@dataclass(frozen=True)
class RolloutOutcome:
    """How a rollout of a service ended, read from the target."""

    service: str
    version: str
    status: str
    reason: str
    duration_s: float | None

    @classmethod
    def read(cls, service: str, rollout: dict[str, Any] | None) -> RolloutOutcome:
        """From a session's rollout record (None: there was no rollout)."""
        if rollout is None:
            return cls(service, "", "none", "", None)
        ended = rollout.get("ended_at")
        return cls(
            service,
            rollout["version"],
            rollout["status"],
            rollout.get("reason", ""),
            ended - rollout["started_at"] if ended else None,
        )


def judge_rollout(outcome: RolloutOutcome, expected: str, within_s: float) -> Verdict:
    """The rollout ended as ``expected`` (``rolled_back``, ``promoted``) within ``within_s``."""
    verb = expected.replace("_", " ")
    objective = f"the release of {outcome.service} is {verb} within {within_s:g} s"
    if outcome.status != expected or outcome.duration_s is None:
        note = f"the release {outcome.version!r} ended {outcome.status!r}"
        met = False
    else:
        met = outcome.duration_s <= within_s
        note = outcome.reason
    return judge_fact("rollout", objective, "fault", outcome.duration_s, within_s, "s", met, note)
