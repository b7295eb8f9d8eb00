"""The step vocabulary. Each step parses its words, makes one engine call, asserts on a verdict."""

from __future__ import annotations

import inspect
import re
from typing import Any

from pytest_bdd import given, parsers, then, when

from shakeout.drill import Drill
from shakeout.errors import SLOBreach
from shakeout.faults import PHRASES
from shakeout.slo import Objective, Verdict


def _require(verdict: Verdict) -> None:
    if not verdict.passed:
        raise SLOBreach(verdict.message)


@given("the target is up and every replica is ready")
def target_ready(drill: Drill) -> None:
    """The platform answers and is in steady state (the drill fixture started it if needed)."""
    assert drill.platform.gateway_url


@given(
    parsers.re(
        r"(?P<model>open-model |closed-model |)load of (?P<rate>\d+) requests per second"
        r'(?P<poisson> with Poisson arrivals|) from the "(?P<profile>[\w-]+)" profile'
    ),
    converters={"rate": int},
)
def load(drill: Drill, model: str, rate: int, poisson: str, profile: str) -> None:
    """Start load from a profile in loadprofiles/ (open model unless it says closed-model)."""
    drill.start_load(
        profile,
        float(rate),
        model="closed" if model.startswith("closed") else "open",
        arrivals="poisson" if poisson else "constant",
    )


@given(
    parsers.parse(
        "any fault is aborted if the error rate exceeds {percent:g}% over {seconds:d} seconds"
    )
)
def stop_condition(drill: Drill, percent: float, seconds: int) -> None:
    """A stop condition: the fault is aborted (and rolled back) as soon as it is crossed."""
    drill.stop_when(percent / 100.0, seconds)


@given("the SLO file's stop condition is armed")
def slo_stop_condition(drill: Drill) -> None:
    """Arm the stop condition the target's SLO file declares."""
    drill.arm_stop_condition()


@given(parsers.parse("a baseline of {seconds:d} seconds"))
@when(parsers.parse("the target has {seconds:d} seconds to recover"))
def hold(drill: Drill, seconds: int) -> None:
    """Keep the load running for a while."""
    drill.hold(float(seconds))


def _fault_step(word: str) -> None:
    """Register the ``When`` step of a fault phrase from ``shakeout.faults.PHRASES``.

    The phrases live in the engine so that ``shakeout plan`` reads exactly the words the
    steps accept. pytest-bdd passes parsed arguments by parameter name, so the step gets a
    signature naming them.
    """
    phrase = PHRASES[word]
    names = [n.split(":")[0] for n in re.findall(r"{([^}]+)}", phrase.text)]

    def step(drill: Drill, **args: Any) -> None:
        drill.inject(word, **phrase.variables(args))

    params = [inspect.Parameter("drill", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    step.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    step.__doc__ = f"Fault {word!r} (see the target file's faults)."
    step.__name__ = f"fault_{word.replace('-', '_')}"
    # stacklevel=2: register the step in this module, not in this helper's frame.
    when(parsers.parse(phrase.text), stacklevel=2)(step)


for _word in PHRASES:
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


@then(
    parsers.parse(
        'the "{journey}" journey recovers within {seconds:d} seconds of the fault\'s start'
    )
)
def recovers_within(drill: Drill, journey: str, seconds: int) -> None:
    """Recovery time: until the error rate stays under 1% for 3 s, from the fault's start."""
    took = drill.recovery_time(journey, 0.01)
    if took is None or took > seconds:
        observed = "never recovered" if took is None else f"recovered after {took:.0f} s"
        raise SLOBreach(
            f"recovery objective breached: {journey} {observed} "
            f"(objective: error rate under 1% for 3 s within {seconds} s of the fault's start)"
        )


@then("every objective of the SLO file holds")
def slo_file_holds(drill: Drill) -> None:
    """Every objective, burn-rate window, recovery and data objective of the target's SLO file."""
    breaches = drill.check_slo_file()
    if breaches:
        raise SLOBreach(f"{len(breaches)} objective(s) breached:\n  " + "\n  ".join(breaches))


@then("no acknowledged order is lost")
def no_lost_orders(drill: Drill) -> None:
    """Every order the shop acknowledged is in its store."""
    result = drill.check_orders()
    if result.missing:
        raise SLOBreach(result.message)


@then(parsers.parse('the release of "{service}" was rolled back within {seconds:d} seconds'))
def rolled_back(drill: Drill, service: str, seconds: int) -> None:
    """The platform rolled the bad release back by itself, in time."""
    outcome = drill.rollout_outcome(service)
    if outcome.status != "rolled_back" or outcome.duration_s is None:
        raise SLOBreach(
            f"rollback objective breached: the release {outcome.version!r} of {service} ended "
            f"{outcome.status!r} (objective: rolled back within {seconds} s)"
        )
    if outcome.duration_s > seconds:
        raise SLOBreach(
            f"rollback objective breached: {service} was rolled back after "
            f"{outcome.duration_s:.1f} s (objective: within {seconds} s; {outcome.reason})"
        )
