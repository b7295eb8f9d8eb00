"""The alert judges and the timeline read from Prometheus' ``ALERTS`` samples (no platform)."""

from __future__ import annotations

from typing import Any

from shakeout.observability.alerts import (
    AlertRule,
    AlertSpan,
    judge_fires,
    judge_quiet,
    judge_resolves,
    judge_routed,
    judge_runbooks,
    spans_from_samples,
)

T0 = 1_800_000_000.0
RUNBOOK = {"runbook_url": "docs/runbooks.md#zonedown", "summary": "zone b down"}


def _series(name: str, times: list[float], **labels: str) -> dict[str, Any]:
    metric = {"__name__": "ALERTS", "alertname": name, "alertstate": "firing", **labels}
    return {"metric": metric, "values": [[t, "1"] for t in times]}


def test_samples_make_spans_split_at_gaps_and_open_at_the_end() -> None:
    every = [T0 + 0.5 * i for i in range(6)]  # 0 .. 2.5 s
    again = [T0 + 10.0 + 0.5 * i for i in range(3)]  # fired again at 10 s, still at read time
    spans = spans_from_samples(
        [_series("ZoneDown", every + again, zone="b", severity="page")], 0.5, T0 + 11.0
    )
    assert spans == [
        AlertSpan("ZoneDown", {"zone": "b"}, T0, T0 + 3.0),
        AlertSpan("ZoneDown", {"zone": "b"}, T0 + 10.0, None),
    ]
    assert spans[0].who == 'ZoneDown{zone="b"}'


def test_fires_measures_the_delay_from_the_fault_start() -> None:
    spans = [AlertSpan("ZoneDown", {"zone": "b"}, T0 + 1.5, T0 + 8.0)]
    rules = {"ZoneDown": AlertRule("ZoneDown", RUNBOOK)}
    met = judge_fires("ZoneDown", spans, rules, T0, 5.0)
    assert met.passed
    assert met.observed == 1.5
    late = judge_fires("ZoneDown", spans, rules, T0, 1.0)
    assert not late.passed
    assert "fired 1.5 s after the fault's start" in late.message


def test_an_alert_the_rules_do_not_have_is_named_with_the_ones_they_do() -> None:
    verdict = judge_fires("ZoneDown", [], {"Other": AlertRule("Other")}, T0, 5.0)
    assert not verdict.passed
    assert "never fired" in verdict.message
    assert "no alert 'ZoneDown' (its alerts: Other)" in verdict.message


def test_an_alert_that_fired_before_the_fault_does_not_count_as_detection() -> None:
    before = [AlertSpan("ZoneDown", {}, T0 - 30.0, T0 - 20.0)]
    assert not judge_fires("ZoneDown", before, {}, T0, 5.0).passed


def test_resolves_within_the_bound_of_recovery_or_fails_naming_what_still_fires() -> None:
    recovered = T0 + 10.0
    ended = [AlertSpan("ZoneDown", {"zone": "b"}, T0 + 1.0, recovered + 2.0)]
    assert judge_resolves("ZoneDown", ended, recovered, 5.0).passed
    assert judge_resolves("ZoneDown", ended, recovered, 5.0).observed == 2.0
    assert not judge_resolves("ZoneDown", ended, recovered, 1.0).passed
    firing = [AlertSpan("ZoneDown", {"zone": "b"}, T0 + 1.0, None)]
    verdict = judge_resolves("ZoneDown", firing, recovered, 5.0)
    assert not verdict.passed
    assert 'still firing: ZoneDown{zone="b"}' in verdict.message
    assert not judge_resolves("ZoneDown", [], recovered, 5.0).passed


def test_quiet_fails_on_any_alert_and_names_it() -> None:
    assert judge_quiet([]).passed
    verdict = judge_quiet([AlertSpan("ServiceErrorRateHigh", {"service": "catalog"}, T0, None)])
    assert not verdict.passed
    assert 'ServiceErrorRateHigh{service="catalog"}' in verdict.message


def test_runbooks_fail_on_an_alert_without_one_and_on_no_alert_at_all() -> None:
    spans = [AlertSpan("ZoneDown", {}, T0, None), AlertSpan("Bare", {}, T0, None)]
    rules = {"ZoneDown": AlertRule("ZoneDown", RUNBOOK), "Bare": AlertRule("Bare", {})}
    verdict = judge_runbooks(spans, rules)
    assert not verdict.passed
    assert "no runbook_url on: Bare" in verdict.message
    assert judge_runbooks(spans[:1], rules).passed
    assert not judge_runbooks([], rules).passed


def test_routed_needs_a_notification_at_that_receiver() -> None:
    spans = [AlertSpan("ZoneDown", {}, T0, None)]
    assert judge_routed("ZoneDown", spans, [("oncall", "ZoneDown")], "oncall").passed
    elsewhere = judge_routed("ZoneDown", spans, [("null", "ZoneDown")], "oncall")
    assert not elsewhere.passed
    assert "it went to null instead" in elsewhere.message
    dropped = judge_routed("ZoneDown", spans, [], "oncall")
    assert "no receiver got it" in dropped.message
    assert not judge_routed("ZoneDown", [], [], "oncall").passed
