"""The step vocabulary. Each step parses its words, makes one engine call, asserts on a verdict."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from shakeout.drill import Drill
from shakeout.errors import AlertingUnavailable, SLOBreach
from shakeout.events import EVENT_WORDS
from shakeout.faults import REGISTRY
from shakeout.slo import Objective, Verdict
from shakeout.vocabulary import LOAD_STEP, shape_settings


def _require(verdict: Verdict) -> None:
    if not verdict.passed:
        raise SLOBreach(verdict.message)


@given("the target is up and every replica is ready")
def target_ready(drill: Drill) -> None:
    """The target answers and is in its steady state (waited for; the drill fixture started
    the embedded platform if it was not running)."""
    drill.wait_until_steady()


@given(parsers.re(LOAD_STEP.pattern), converters={"rate": int})
def load(
    drill: Drill, model: str, rate: int, poisson: str, profile: str, shape: str | None
) -> None:
    """Start load from a profile (by name, in loadprofiles/ or `--profiles`), open model unless
    it says closed-model. A shape's settings may follow: `..., with at 10 s, window 5 s,
    factor 3` (spike and surge: `at`, `window`, `factor`; diurnal: `period`; ramp: `ramp`;
    defaults in docs/load.md)."""
    drill.start_load(
        profile,
        float(rate),
        model="closed" if model.startswith("closed") else "open",
        arrivals="poisson" if poisson else "constant",
        shape=shape_settings(shape),
    )


@given(
    parsers.parse(
        "any fault is aborted if the error rate exceeds {percent:g}% over {seconds:d} seconds"
    )
)
def stop_condition(drill: Drill, percent: float, seconds: int) -> None:
    """A stop condition: the fault is aborted (and rolled back) as soon as it is crossed."""
    drill.stop_when(percent / 100.0, seconds)


@given(
    parsers.parse(
        "any fault is aborted if the error budget burns faster than {factor:g}x over "
        "{seconds:d} seconds"
    )
)
def fast_burn_stop_condition(drill: Drill, factor: float, seconds: int) -> None:
    """A fast-burn stop condition, against the SLO file's error budget."""
    drill.stop_when_burning(factor, seconds)


@given("the SLO file's stop condition is armed")
def slo_stop_condition(drill: Drill) -> None:
    """Arm the stop condition the target's SLO file declares."""
    drill.arm_stop_condition()


@given(parsers.parse("a baseline of {seconds:d} seconds"))
@when(parsers.parse("the target has {seconds:d} seconds to recover"))
@when(parsers.parse("the load runs for {seconds:d} seconds"))
def hold(drill: Drill, seconds: int) -> None:
    """Keep the load running for a while."""
    drill.hold(float(seconds))


def _fault_step(word: str) -> None:
    """Register the ``When`` step of a fault unit from ``shakeout.faults.REGISTRY``.

    The phrases live in the engine so that ``shakeout plan`` reads exactly the words the
    steps accept. pytest-bdd passes parsed arguments by parameter name, so the step gets a
    signature naming them.
    """
    fault = REGISTRY[word]
    names = [n.split(":")[0] for n in re.findall(r"{([^}]+)}", fault.phrase)]

    def step(drill: Drill, **args: Any) -> None:
        drill.inject(word, **fault.configure(args).variables())

    params = [inspect.Parameter("drill", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    step.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    step.__doc__ = f"Fault word `{word}`: {type(fault).__doc__}"
    step.fault_word = word  # type: ignore[attr-defined]  (read by steps/docs.py)
    step.__name__ = f"fault_{word.replace('-', '_')}"
    # stacklevel=2: register the step in this module, not in this helper's frame.
    when(parsers.parse(fault.phrase), stacklevel=2)(step)


for _word in REGISTRY:
    _fault_step(_word)


@then(
    parsers.parse(
        'the "{journey}" journey\'s p{percentile:d} latency stays below {threshold_ms:d} ms'
    )
)
def latency_below(drill: Drill, journey: str, percentile: int, threshold_ms: int) -> None:
    """Latency objective over the whole drill, from per-request data."""
    _require(drill.check(Objective(journey, "latency", float(threshold_ms), float(percentile))))


@then(parsers.parse('the "{journey}" journey\'s error rate stays below {percent:g}%'))
def error_rate_below(drill: Drill, journey: str, percent: float) -> None:
    """Error-rate objective over the whole drill."""
    _require(drill.check(Objective(journey, "error_rate", percent / 100.0)))


@then(
    parsers.parse(
        'during the {phase} the "{journey}" journey\'s error rate stays below {percent:g}%'
    )
)
def phase_error_rate_below(drill: Drill, phase: str, journey: str, percent: float) -> None:
    """Error-rate objective over one phase: baseline, fault or recovery (from the journal)."""
    _require(drill.check(Objective(journey, "error_rate", percent / 100.0), phase=phase))


@then(parsers.parse('the "{journey}" journey\'s availability stays at or above {percent:g}%'))
def availability_above(drill: Drill, journey: str, percent: float) -> None:
    """Availability objective over the whole drill (``"all"``: every journey together)."""
    _require(drill.check(Objective(journey, "availability", percent / 100.0)))


@then(
    parsers.parse(
        'the "{journey}" journey recovers within {seconds:d} seconds of the fault\'s start'
    )
)
def recovers_within(drill: Drill, journey: str, seconds: int) -> None:
    """Recovery time (RTO), from the fault's start: until the error rate stays at or under 1%
    and the SLO file's latency objectives for the journey hold, over 3 s, read request by
    request (an outage that only slows answers counts)."""
    _require(drill.check_recovery(journey, float(seconds)))


@then(parsers.parse("less than {percent:g}% of the error budget is burned"))
def budget_burned(drill: Drill, percent: float) -> None:
    """The drill's failed requests consume less than this share of the SLO file's budget."""
    _require(drill.check_budget(percent))


@then("every objective of the SLO file holds")
def slo_file_holds(drill: Drill) -> None:
    """Every objective, burn-rate window, recovery and data objective of the target's SLO
    file, and the steady state after each fault (an inconclusive one does not hold)."""
    failed = drill.check_slo_file()
    if failed:
        lines = "\n  ".join(v.message for v in failed)
        raise SLOBreach(f"{len(failed)} objective(s) of the SLO file not met:\n  {lines}")


@then("no acknowledged order is lost or duplicated")
def no_lost_orders(drill: Drill) -> None:
    """Every order the shop acknowledged is in its store, exactly once."""
    for verdict in drill.check_orders():
        _require(verdict)


@then(parsers.parse("the data-loss window (RPO) is at most {seconds:g} seconds"))
def rpo_within(drill: Drill, seconds: float) -> None:
    """RPO: the acknowledged orders lost span at most this long, from the first lost one's
    acknowledgement to the last's (with the SLO file's lost-orders objective judged too)."""
    slo = drill.slo
    for verdict in drill.check_orders((slo and slo.lost_orders) or 0, rpo_s=seconds):
        _require(verdict)


@then("the fault's own steady-state checks held")
def hypotheses_held(drill: Drill) -> None:
    """Each fault's Chaos Toolkit experiment found its steady-state hypothesis met again
    after its method (for example every service on the new key after a rotation)."""
    for verdict in drill.check_hypotheses():
        _require(verdict)


@then(parsers.parse('the target reported a "{kind}" event'))
@then(parsers.parse('the target reported an "{kind}" event'))
def event_reported(drill: Drill, kind: str) -> None:
    """The target's own event log shows an event of this kind during the drill (for a kind
    the plain-words steps below do not name)."""
    _require(drill.check_event(kind))


def _event_step(kind: str, words: str) -> None:
    """Register ``Then the target reports that <words>`` for one event kind."""

    def step(drill: Drill) -> None:
        _require(drill.check_event(kind))

    step.__doc__ = f"The target's own event log shows `{kind}` during the drill."
    step.__name__ = f"event_{kind}"
    # stacklevel=2: register the step in this module, not in this helper's frame.
    then(f"the target reports that {words}", stacklevel=2)(step)


for _kind, _words in EVENT_WORDS.items():
    _event_step(_kind, _words)


@then("the target is back in its steady state after the fault")
def steady_state_back(drill: Drill) -> None:
    """After each fault's rollbacks every replica was ready again and no rollout progressing."""
    for verdict in drill.check_steady_state():
        _require(verdict)


@then(
    parsers.re(
        r'the release of "(?P<service>[\w-]+)" was (?P<ending>rolled back|promoted) '
        r"within (?P<seconds>\d+) seconds"
    ),
    converters={"seconds": int},
)
def release_ended(drill: Drill, service: str, ending: str, seconds: int) -> None:
    """The platform rolled the release back, or promoted it, by itself and in time."""
    _require(drill.check_rollout(service, ending.replace(" ", "_"), float(seconds)))


# -- alerts (docs/observability.md) ----------------------------------------------------------


def _alert_check(check: Callable[[], Verdict | list[Verdict]]) -> None:
    """Run an alert check; a target without alerting skips the step, saying why."""
    try:
        verdicts = check()
    except AlertingUnavailable as exc:
        pytest.skip(f"alert step skipped: {exc}")
    for verdict in verdicts if isinstance(verdicts, list) else [verdicts]:
        _require(verdict)


@then(
    parsers.re(
        r'the "(?P<alert>[\w:-]+)" alert fires within (?P<seconds>\d+) seconds of the '
        r"fault's start"
    ),
    converters={"seconds": int},
)
def alert_fires(drill: Drill, alert: str, seconds: int) -> None:
    """The target's Prometheus fired the alert within this time of the fault's start."""
    _alert_check(lambda: drill.alerts.fires(alert, float(seconds)))


@then(
    parsers.re(
        r'the "(?P<alert>[\w:-]+)" alert fires within (?P<seconds>\d+) seconds of the '
        r"fault's start and resolves within (?P<resolve>\d+) seconds of recovery"
    ),
    converters={"seconds": int, "resolve": int},
)
def alert_fires_and_resolves(drill: Drill, alert: str, seconds: int, resolve: int) -> None:
    """The alert fired in time and every firing of it ended within this time of recovery
    (the fault's end, its rollbacks done)."""
    _alert_check(
        lambda: [
            drill.alerts.fires(alert, float(seconds)),
            drill.alerts.resolves(alert, float(resolve)),
        ]
    )


@then(
    parsers.re(
        r'the "(?P<alert>[\w:-]+)" alert resolves within (?P<seconds>\d+) seconds of recovery'
    ),
    converters={"seconds": int},
)
def alert_resolves(drill: Drill, alert: str, seconds: int) -> None:
    """Every firing of the alert ended within this time of recovery (the fault's end)."""
    _alert_check(lambda: drill.alerts.resolves(alert, float(seconds)))


@then("no alert fires")
def no_alert(drill: Drill) -> None:
    """Alerts stay quiet: no rule of the target fired from the drill's steady start on."""
    _alert_check(drill.alerts.quiet)


@then("every alert that fired names a runbook")
def alerts_have_runbooks(drill: Drill) -> None:
    """Each alert that fired carries a `runbook_url` annotation (and at least one fired)."""
    _alert_check(drill.alerts.runbooks)


@then(parsers.re(r'the "(?P<alert>[\w:-]+)" alert is routed to "(?P<receiver>[\w-]+)"'))
def alert_routed(drill: Drill, alert: str, receiver: str) -> None:
    """Alertmanager delivered the alert to this receiver (its notification arrived)."""
    _alert_check(lambda: drill.alerts.routed(alert, receiver))


@then(parsers.re(r'the alert is routed to "(?P<receiver>[\w-]+)"'))
def alerts_routed(drill: Drill, receiver: str) -> None:
    """Every alert that fired in the drill reached this receiver."""
    _alert_check(lambda: drill.alerts.all_routed(receiver))
