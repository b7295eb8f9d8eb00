"""The resilience scorecard: entries, comparison with the previous run, history on disk."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FAIL_ZONE, PASS_ZONE
from shakeout.report.runs import VerdictRow, read_run
from shakeout.report.scorecard import (
    Entry,
    Scorecards,
    compare,
    display_names,
    entry_for,
    markdown,
    worst_objective,
)
from shakeout.report.terminal import render


def _row(
    status: str, observed: float, threshold: float = 300.0, kind: str = "latency"
) -> VerdictRow:
    return VerdictRow(
        kind=kind,
        objective=f"p95 < {threshold}",
        observed=observed,
        threshold=threshold,
        status=status,  # type: ignore[arg-type]
        message=f"{status} at {observed}",
    )


def test_worst_objective_prefers_failures_then_margin() -> None:
    assert worst_objective([]) is None
    assert worst_objective([_row("pass", 30), _row("pass", 270)]) == "p95 < 300.0 (90% of limit)"
    assert worst_objective([_row("pass", 290), _row("fail", 400)]) == "fail: fail at 400"
    # Availability is better higher: 99.5% against >= 99% used half of its 1% allowance,
    # which is nearer its limit than a latency at 30% of its own.
    avail = VerdictRow(kind="availability", objective="all availability >= 99%", observed=99.5,
                       threshold=99.0, unit="%", status="pass")  # fmt: skip
    assert worst_objective([_row("pass", 90), avail]) == "all availability >= 99% (50% of limit)"
    assert worst_objective([_row("pass", 240), avail]) == "p95 < 300.0 (80% of limit)"


def _fact(
    kind: str, objective: str, observed: float | None, threshold: float | None, unit: str
) -> VerdictRow:
    return VerdictRow(kind=kind, objective=objective, observed=observed, threshold=threshold,
                      unit=unit, status="pass", message=f"SLO met: {objective}")  # fmt: skip


BREAKER = "the target reports that a circuit breaker opened"


def test_facts_read_in_words_never_as_a_share_of_a_limit() -> None:
    # The line: 5 breaker_opened events against "at least 1" read "(500% of limit)".
    assert worst_objective([_fact("event", BREAKER, 5, 1, "events")]) == (
        f"{BREAKER}: fired 5 / expected >= 1"
    )
    lines = {
        ("rollout", "the release of orders is rolled back within 15 s", 4.8164, 15, "s"):
            "the release of orders is rolled back within 15 s: took 4.8 s",
        ("steady_state", "the target is back in its steady state within 30 s", 0.054, 30, "s"):
            "the target is back in its steady state within 30 s: took 0.1 s",
        ("steady_state", "the steady-state hypothesis of crash_loop holds", None, None, ""):
            "the steady-state hypothesis of crash_loop holds: met",
        ("alert", 'the "ZoneDown" alert fires within 5 s of the fault\'s start', 2.5, 5, "s"):
            'the "ZoneDown" alert fires within 5 s of the fault\'s start: took 2.5 s',
        ("alert", 'the "ZoneDown" alert is routed to "oncall"', 2, 1, "notifications"):
            'the "ZoneDown" alert is routed to "oncall": received 2 / expected >= 1',
        ("alert", "no alert fires", 0, 0, "alerts"): "no alert fires: 0 alerts",
        ("alert", "every alert that fired names a runbook", 0, 0, "without one"):
            "every alert that fired names a runbook: 0 without one",
        ("data", "acknowledged orders lost <= 0", 0, 0, "orders"):
            "acknowledged orders lost <= 0: 0 orders",
        ("data", "data-loss window (RPO) <= 0 s", 0, 0, "s"):
            "data-loss window (RPO) <= 0 s: observed 0.0 s",
    }  # fmt: skip
    for (kind, objective, observed, threshold, unit), line in lines.items():
        shown = worst_objective([_fact(kind, objective, observed, threshold, unit)])
        assert shown == line
        assert "of limit" not in line


def test_the_fact_nearest_to_not_holding_is_the_worst() -> None:
    one = _fact("event", "the target reports that the config change was applied", 1, 1, "events")
    five = _fact("event", BREAKER, 5, 1, "events")
    # One event against at least one is at its limit; five is well clear of it.
    assert worst_objective([five, one]) == (
        "the target reports that the config change was applied: fired 1 / expected >= 1"
    )
    slow = _fact("rollout", "the release of catalog is rolled back within 10 s", 9.0, 10, "s")
    assert worst_objective([five, slow]) == (
        "the release of catalog is rolled back within 10 s: took 9.0 s"
    )
    # A measured objective beside facts is the one shown, as a share of its limit.
    assert worst_objective([five, slow, _row("pass", 30)]) == "p95 < 300.0 (10% of limit)"
    message = f"SLO breached: {BREAKER} over the drill: observed 0 events; no such event"
    failed = VerdictRow(kind="event", objective=BREAKER, observed=0, threshold=1, unit="events",
                        status="fail", message=message)  # fmt: skip
    assert worst_objective([_row("pass", 290), failed]) == f"fail: {failed.message}"


def test_entry_from_a_run() -> None:
    entry = entry_for(read_run(FAIL_ZONE))
    assert entry.outcome == "fail"
    assert entry.recovery_s == 7.2
    assert entry.budget_burned_pct == 450.5
    assert entry.worst_objective is not None
    assert "45.05%" in entry.worst_objective
    assert entry.key == "local-fragile::test_zone_b_failure_and_traffic_fails_over[goes down]"
    assert entry.name == "test_zone_b_failure_and_traffic_fails_over[goes down]"  # no title
    titled = entry_for(read_run(FAIL_ZONE), None, None, "Zone b goes down and traffic fails over")
    assert titled.name == "Zone b goes down and traffic fails over"
    assert titled.key == entry.key  # the pytest name stays the key across runs


def test_regressions_follow_the_20_percent_rule() -> None:
    old = Entry("d", "local", "pass", recovery_s=5.0, budget_burned_pct=10.0)
    same = compare(Entry("d", "local", "pass", recovery_s=5.9, budget_burned_pct=11.0), old, "s")
    assert same.regressions == []  # +18% recovery, +10% burn: within limits
    worse = compare(Entry("d", "local", "fail", recovery_s=6.5, budget_burned_pct=13.0), old, "s")
    assert worse.regressions == [
        "verdict pass -> fail",
        "recovery time 5.0 s -> 6.5 s (up more than 20%)",
        "budget burned 10.0% -> 13.0% (up more than 20%)",
    ]
    # Below the floor, a large relative jump is noise: 0.2 s -> 0.6 s is not a regression.
    tiny = compare(
        Entry("d", "local", "pass", recovery_s=0.6),
        Entry("d", "local", "pass", recovery_s=0.2),
        "s",
    )
    assert tiny.regressions == []
    better = compare(Entry("d", "local", "pass"), Entry("d", "local", "fail"), "s")
    assert better.lines == ["verdict fail -> pass"]
    assert better.regressions == []


def test_scorecards_compare_each_scenario_with_its_last_run(tmp_path: Path) -> None:
    cards = Scorecards(tmp_path)
    first = [entry_for(read_run(PASS_ZONE)), Entry("other", "local", "pass", recovery_s=2.0)]
    first[0].recovery_s = 1.0
    path1, comps1 = cards.save(first, {"target": "local", "git_sha": "abc"})
    assert all(c.previous_stamp == "" for c in comps1)
    # Tonight only the zone drill runs, recovering 3 s later: flagged against last night.
    path1.rename(path1.with_name("20200101-000000.json"))
    tonight = entry_for(read_run(PASS_ZONE))
    tonight.recovery_s = 4.0
    _, comps2 = cards.save([tonight], {"target": "local", "git_sha": "def"})
    assert comps2[0].previous_stamp == "20200101-000000"
    assert comps2[0].regressions == ["recovery time 1.0 s -> 4.0 s (up more than 20%)"]
    latest = json.loads((tmp_path / "scorecard.json").read_text())
    assert latest["git_sha"] == "def"
    assert latest["scenarios"][0]["previous"] == "20200101-000000"
    md = (tmp_path / "scorecard.md").read_text()
    assert "| test_zone_b_failure_and_traffic_fails_over[goes down] | pass |" in md  # no title
    assert "up more than 20%" in md
    # "other" did not run tonight but is still found for a later night.
    assert cards.previous("local::other") is not None


def test_scorecards_written_before_titles_still_compare(tmp_path: Path) -> None:
    folder = tmp_path / "scorecards"
    folder.mkdir()
    old = {  # a scorecard as written before titles were kept: the pytest name only
        "stamp": "20200101-000000",
        "target": "local",
        "scenarios": [
            {"drill": "broken", "target": "local"},  # damaged: skipped, not the whole file
            {"drill": "test_zone_b_failure_and_traffic_fails_over[goes down]", "target": "local",
             "outcome": "pass", "worst_objective": "x (10% of limit)", "recovery_s": 1.0,
             "budget_burned_pct": 0.0, "category": None, "run_dir": "r",
             "some_future_field": 1},
        ],
    }  # fmt: skip
    (folder / "20200101-000000.json").write_text(json.dumps(old))
    tonight = entry_for(read_run(PASS_ZONE), title="Zone b goes down and traffic fails over")
    tonight.target = "local"
    tonight.recovery_s = 4.0
    _, comps = Scorecards(tmp_path).save([tonight], {"target": "local", "git_sha": "def"})
    assert comps[0].previous_stamp == "20200101-000000"
    assert comps[0].regressions == ["recovery time 1.0 s -> 4.0 s (up more than 20%)"]
    saved = json.loads((tmp_path / "scorecard.json").read_text())["scenarios"][0]
    assert saved["drill"] == "test_zone_b_failure_and_traffic_fails_over[goes down]"
    assert saved["title"] == "Zone b goes down and traffic fails over"
    md = (tmp_path / "scorecard.md").read_text()
    assert "| Zone b goes down and traffic fails over | pass |" in md


def test_two_scenarios_with_one_title_are_told_apart() -> None:
    a = Entry("test_zone_down", "local", "pass", title="Zone b goes down", feature="Zones")
    b = Entry("test_zone_down_1", "local", "fail", title="Zone b goes down", feature="Outages")
    c = Entry("test_x[1]", "local", "pass", title="Same", feature="F")
    d = Entry("test_x[2]", "local", "pass", title="Same", feature="F")
    old = Entry("test_old", "local", "pass")  # written before titles: its pytest name
    assert display_names([a, b, c, d, old]) == [
        "Zone b goes down (Zones)",
        "Zone b goes down (Outages)",
        "Same (F) (test_x[1])",
        "Same (F) (test_x[2])",
        "test_old",
    ]
    assert display_names([a]) == ["Zone b goes down"]
    md = markdown({"scenarios": [{**vars(a), "previous": None}, {**vars(b), "previous": "s"}]})
    assert "| Zone b goes down (Zones) | pass |" in md
    assert "| Zone b goes down (Outages) | fail |" in md


def test_terminal_table_shows_names_verbatim() -> None:
    entry = entry_for(read_run(FAIL_ZONE), category="SLO breach")
    text = render([entry], [compare(entry, Entry(entry.drill, entry.target, "pass"), "x")], 200)
    assert "test_zone_b_failure_and_traffic_fails_over[goes down]" in text  # not eaten as markup
    assert "fail (SLO breach)" in text
    assert "7.2 s" in text
    assert "450.5%" in text
    assert "verdict pass -> fail" in text
