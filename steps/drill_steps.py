"""The step vocabulary. Each step parses its words, makes one engine call, asserts on a verdict."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from shakeout.drill import Drill
from shakeout.errors import SLOBreach
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


@given(parsers.parse("a baseline of {seconds:d} seconds"))
@when(parsers.parse("the target has {seconds:d} seconds to recover"))
def hold(drill: Drill, seconds: int) -> None:
    """Keep the load running for a while."""
    drill.hold(float(seconds))


@when(parsers.parse('a release of "{service}" that crashes on start takes {weight:d}% of traffic'))
def crash_loop_release(drill: Drill, service: str, weight: int) -> None:
    """Roll out a crash-looping version of a service (rollbacks always played)."""
    drill.inject("crash-loop", service=service, weight=weight / 100.0)


@when(
    parsers.re(r'(?P<count>\d+) replicas? of "(?P<service>[\w-]+)" (?:is|are) killed'),
    converters={"count": int},
)
def replicas_killed(drill: Drill, count: int, service: str) -> None:
    """SIGKILL replicas; the platform must replace them."""
    drill.inject("replica-kill", service=service, count=count)


@when(parsers.parse('zone "{zone}" goes down for {seconds:d} seconds'))
def zone_down(drill: Drill, zone: str, seconds: int) -> None:
    """A whole zone stops."""
    drill.inject("zone-outage", zone=zone, duration_s=float(seconds))


@when(parsers.parse('zone "{zone}" freezes for {seconds:d} seconds'))
def zone_freezes(drill: Drill, zone: str, seconds: int) -> None:
    """A whole zone stops answering (SIGSTOP)."""
    drill.inject("zone-freeze", zone=zone, duration_s=float(seconds))


@when(parsers.parse('"{service}" answers {percent:d}% errors for {seconds:d} seconds'))
def dependency_errors(drill: Drill, service: str, percent: int, seconds: int) -> None:
    """A dependency browns out."""
    drill.inject(
        "dependency-errors",
        service=service,
        error_rate=str(percent / 100.0),
        duration_s=float(seconds),
    )


@when(parsers.parse('"{service}" answers {ms:d} ms slower for {seconds:d} seconds'))
def dependency_latency(drill: Drill, service: str, ms: int, seconds: int) -> None:
    """A dependency becomes slow."""
    drill.inject(
        "dependency-latency", service=service, latency_ms=str(ms), duration_s=float(seconds)
    )


@when(
    parsers.parse(
        'a canary of "{service}" failing {percent:d}% of requests takes {weight:d}% of traffic '
        "for {seconds:d} seconds"
    )
)
def bad_canary(drill: Drill, service: str, percent: int, weight: int, seconds: int) -> None:
    """A canary that answers errors."""
    drill.inject(
        "bad-canary",
        service=service,
        error_rate=str(percent / 100.0),
        weight=weight / 100.0,
        duration_s=float(seconds),
    )


@when("the shared key is rotated")
def key_rotated(drill: Drill) -> None:
    """Rotate the internal shared key."""
    drill.inject("key-rotation")


@when(parsers.parse("the secret store is unreachable for {seconds:d} seconds"))
def secret_store_outage(drill: Drill, seconds: int) -> None:
    """The secret store goes away for a while."""
    drill.inject("secret-store-outage", duration_s=float(seconds))


@when(parsers.parse('"{service}" is scaled to {replicas:d} replicas for {seconds:d} seconds'))
def scaled(drill: Drill, service: str, replicas: int, seconds: int) -> None:
    """Capacity removed (or added) for a while."""
    drill.inject("scale", service=service, replicas=replicas, duration_s=float(seconds))


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
