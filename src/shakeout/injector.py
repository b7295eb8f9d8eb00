"""Fault injection for a drill: steady-state gating, stop conditions, rollbacks on every path.

The injector resolves a fault word to its experiment (the fault unit's for the target's kind,
or the target file's own), waits for the target's steady state, runs the experiment with
``chaos run`` (whose rollbacks are played on every path, see :mod:`shakeout.chaos.runner`),
aborts it when a stop condition is crossed, and judges the steady state after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from shakeout import faults
from shakeout._process import wait_for
from shakeout.chaos import undo
from shakeout.chaos.runner import FaultRun, run_experiment, validate
from shakeout.errors import ConfigError, FaultError, PlatformError, StopConditionAbort
from shakeout.load import LoadRun, Progress
from shakeout.session import TargetSession
from shakeout.slo import Verdict, judge_fact

STEADY_STATE_TIMEOUT_S = 30.0


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


def stop_condition(
    max_error_rate: float, window_s: int, budget: float | None = None
) -> StopCondition:
    """A stop condition, refused when its window is too short or its rate unreachable."""
    if window_s < 1:
        raise ConfigError(f"a stop condition's window must be at least 1 s, got {window_s}")
    if budget is not None and max_error_rate >= 1.0:
        raise ConfigError(
            f"a burn rate of {max_error_rate / budget:g}x with a budget of {budget:.2%} can "
            "never be reached"
        )
    return StopCondition(max_error_rate, window_s, budget)


class FaultInjector:
    """Runs a drill's faults against a target session and keeps what they did."""

    def __init__(
        self,
        session: TargetSession,
        run_dir: Path,
        load: Callable[[], LoadRun | None],
        progress: Progress | None = None,
    ) -> None:
        self.session = session
        self.run_dir = run_dir
        self._load = load
        self.progress = progress
        self.faults: list[FaultRun] = []
        self.stop_condition: StopCondition | None = None
        self.steady_state_timeout_s = STEADY_STATE_TIMEOUT_S
        # Polled while a fault runs: a reason to end it now (its rollbacks played) and go on
        # with the drill, as a game day's facilitator may ask (shakeout.gameday).
        self.end_early: Callable[[], str | None] | None = None
        self._ended_early: str | None = None

    def experiment_for(self, word: str) -> Path:
        """The experiment a fault word runs on this target; errors name the target file."""
        where = self.session.target_file
        overrides = self.session.fault_experiments
        found = faults.experiment_for(word, self.session.kind, overrides)
        if found is None:
            known = sorted(
                {w for w, f in faults.REGISTRY.items() if self.session.kind in f.experiments}
                | set(overrides)
            )
            raise ConfigError(
                f"{where}: no experiment for fault {word!r} on a {self.session.kind} target "
                f"(known: {', '.join(known) or 'none'}; field faults can name one)"
            )
        experiment = Path(found)
        if not experiment.is_file():
            raise ConfigError(f"{where}: fault {word!r}: no experiment file {experiment}")
        return experiment

    def wait_until_steady(self, timeout_s: float | None = None) -> float:
        """Wait until the target is in its steady state (for example replicas an autoscaler
        just added are ready); return the seconds waited. PlatformError when it never is."""
        timeout = self.steady_state_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        problem = ""

        def steady() -> bool:
            nonlocal problem
            met, problem = self.session.steady_state()
            return met

        load = self._load()
        if not wait_for(steady, timeout, period_s=0.2, on_tick=load.report if load else None):
            raise PlatformError(
                f"target {self.session.target!r} is not in its steady state after {timeout:g} s "
                f"({problem})"
            )
        return time.monotonic() - started

    def inject(self, word: str, variables: faults.Variables) -> tuple[FaultRun, Verdict]:
        """Run the experiment behind a fault word to its end, rollbacks included; return it
        with the verdict on the steady state after it.

        The target must be in its steady state first (the experiment's own hypothesis checks
        it again); an experiment whose method never ran is a fault that was not applied, an
        error, never a pass. A fault aborted by a stop condition raises StopConditionAbort
        once its rollbacks are played.
        """
        experiment = self.experiment_for(word)
        validate(experiment, self.run_dir)
        try:
            self.wait_until_steady()
        except PlatformError as exc:
            raise PlatformError(f"{exc}; fault {word!r} was not injected") from exc
        if self.progress:
            self.progress(f"fault {word!r}: {experiment} {variables}")
        config = {**self.session.chaos_configuration(), **variables}
        record = undo.write_record(self.session.target, experiment, config)
        load = self._load()
        self._ended_early = None
        result = run_experiment(
            experiment,
            self.run_dir,
            config,
            on_tick=load.report if load else None,
            should_abort=self._should_abort,
        )
        if self._ended_early is not None and result.abort_reason == self._ended_early:
            # Ended on purpose, not by a breach: the drill goes on to recovery and its checks.
            result = replace(result, abort_reason=None, ended_early=self._ended_early)
        if result.rollbacks_ok:
            record.remove()
        if self.progress:
            self.progress(f"fault {word!r} ended: {result.summary()}")
        self.faults.append(result)
        return result, self.steady_state_after(word)

    @staticmethod
    def raise_for(word: str, result: FaultRun) -> None:
        """Raise for a fault that was aborted, not rolled back, or never applied."""
        if result.abort_reason:
            raise StopConditionAbort(
                f"aborted by stop condition: {result.abort_reason}; the fault was rolled back "
                f"({'ok' if result.rollbacks_ok else 'ROLLBACK FAILED'}); "
                f"journal {result.journal_path}"
            )
        if (result.status == "aborted" and not result.ended_early) or not result.rollbacks_ok:
            raise FaultError(f"{result.summary()}; journal {result.journal_path}")
        if result.fault_start is None:
            raise FaultError(
                f"fault {word!r} was not applied: {result.experiment}'s method never ran (its "
                f"steady-state hypothesis did not hold before it); journal {result.journal_path}"
            )

    def _should_abort(self) -> str | None:
        reason = self.end_early() if self.end_early is not None else None
        if reason is not None:
            self._ended_early = reason
            return reason
        return self._breached()

    def _breached(self) -> str | None:
        condition, load = self.stop_condition, self._load()
        if condition is None or load is None:
            return None
        load.read()
        now = time.time()
        # The current second counts too: a breach must not wait for the second to complete.
        stats = load.recorder.stats(None, now - condition.window_s, now + 1)
        if stats.count >= 10 and stats.error_rate > condition.max_error_rate:
            return f"{condition.describe(stats.error_rate)} ({stats.count} requests)"
        return None

    def steady_state_after(self, word: str) -> Verdict:
        """After a fault's rollbacks: the target back in its steady state within
        ``steady_state_timeout_s``. Reported as a verdict, not assumed."""
        try:
            took: float | None = self.wait_until_steady()
            met, problem = True, ""
        except PlatformError as exc:
            took, met, problem = None, False, str(exc)
        if self.progress and not met:
            self.progress(f"warning: steady state not back after {word!r}: {problem}")
        return judge_fact(
            "steady_state",
            f"the target is back in its steady state within {self.steady_state_timeout_s:g} s "
            f"of {word} being rolled back",
            "recovery",
            took,
            self.steady_state_timeout_s,
            "s",
            met,
            "" if met else problem,
        )
