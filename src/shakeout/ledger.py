"""The verdict ledger: every verdict a drill reached, its outcome, and ``verdicts.json``."""

from __future__ import annotations

from typing import Any, Literal

from shakeout.errors import StopConditionAbort
from shakeout.records import Impact
from shakeout.slo import Verdict

Outcome = Literal["pass", "fail", "inconclusive", "aborted", "error"]


class Ledger:
    """The latest verdict per objective and phase, and the drill's recovery."""

    def __init__(self) -> None:
        self._verdicts: dict[tuple[str, str, str], Verdict] = {}
        self.recovery: Impact | None = None

    def keep(self, verdict: Verdict) -> Verdict:
        """Record a verdict (replacing an earlier one of the same objective and phase)."""
        self._verdicts[(verdict.kind, verdict.objective, verdict.phase)] = verdict
        return verdict

    def keep_all(self, verdicts: list[Verdict]) -> list[Verdict]:
        """Record several verdicts."""
        return [self.keep(v) for v in verdicts]

    @property
    def verdicts(self) -> list[Verdict]:
        """Every verdict so far, the latest per objective and phase."""
        return list(self._verdicts.values())

    def of_kind(self, kind: str) -> list[Verdict]:
        """The verdicts of one kind (``steady_state``, ``event``, ...)."""
        return [v for v in self._verdicts.values() if v.kind == kind]

    def note_recovery(self, recovery: Impact) -> None:
        """Keep the slowest journey's recovery (never recovering is the slowest)."""

        def slowness(r: Impact) -> float:
            return float("inf") if r.from_fault_start_s is None else r.from_fault_start_s

        if self.recovery is None or slowness(recovery) >= slowness(self.recovery):
            self.recovery = recovery

    def outcome(self, error: BaseException | None = None, aborted: bool = False) -> Outcome:
        """The outcome from the verdicts and how the drill ended.

        ``aborted`` when a stop condition aborted a fault; ``error`` when it ended on an
        exception that is not an SLO assertion (harness, fault or target trouble); ``fail``
        when an assertion or a verdict failed; ``inconclusive`` when a verdict could not be
        reached or none was asked for; otherwise ``pass``.
        """
        if isinstance(error, StopConditionAbort) or aborted:
            return "aborted"
        if error is not None and not isinstance(error, AssertionError):
            return "error"
        statuses = {v.status for v in self.verdicts}
        if error is not None or "fail" in statuses:
            return "fail"
        if "inconclusive" in statuses or not statuses:
            return "inconclusive"
        return "pass"

    def document(
        self,
        drill: str,
        target: str,
        phases: dict[str, tuple[float | None, float | None]],
        budget_burned_pct: float | None,
        error: BaseException | None = None,
        aborted: bool = False,
    ) -> dict[str, Any]:
        """``verdicts.json`` (see docs/architecture.md for its fields)."""
        return {
            "schema": 1,
            "drill": drill,
            "target": target,
            "outcome": self.outcome(error, aborted),
            "error": None if error is None else f"{type(error).__name__}: {error}",
            "phases": phases,
            "recovery": self.recovery.as_dict() if self.recovery else None,
            "budget_burned_pct": budget_burned_pct,
            "verdicts": [v.as_dict() for v in self.verdicts],
        }
