"""The alert judges, the timeline read from Prometheus' ``ALERTS`` samples, and the servers'
view beside the load's (no platform)."""

from __future__ import annotations

from typing import Any

from shakeout.measure import WindowStats
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
from shakeout.observability.serverside import compare
from shakeout.slofile import JourneySelector

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


def _load(count: int, errors: int, p95_ms: float = 20.0) -> WindowStats:
    return WindowStats("checkout", T0, T0 + 20, count, errors, 0, 10.0, p95_ms, 30.0, 40.0)


WHERE = JourneySelector(service="gateway", method="POST", route="/api/checkout")


def test_load_and_servers_that_agree_are_not_flagged() -> None:
    row = compare("checkout", WHERE, _load(400, 2), (410.0, 0.5, 18.0))
    assert row.flag == ""
    assert row.where == "gateway POST /api/checkout"
    assert (row.load_error_pct, row.server_error_pct) == (0.5, 0.5)


def test_errors_no_server_logged_are_flagged() -> None:
    # The load saw 10% errors (a dead replica: the router answered 502), the servers 0.5%.
    row = compare("checkout", WHERE, _load(400, 40), (380.0, 0.5, 18.0))
    assert "9.5 points of errors no server logged" in row.flag


def test_errors_the_load_never_saw_and_counts_apart_are_flagged() -> None:
    row = compare("checkout", WHERE, _load(400, 0), (800.0, 5.0, 18.0))
    assert "servers logged 5.0 points more errors than the load saw" in row.flag
    assert "request counts differ: load 400, servers 800" in row.flag
    assert "logged none" in compare("checkout", WHERE, _load(400, 0), (None, None, None)).flag
