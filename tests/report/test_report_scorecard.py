"""The resilience scorecard: entries, comparison with the previous run, history on disk."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FAIL_ZONE, PASS_ZONE
from shakeout.report.runs import VerdictRow, read_run
from shakeout.report.scorecard import Entry, Scorecards, compare, entry_for, worst_objective
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


def test_entry_from_a_run() -> None:
    entry = entry_for(read_run(FAIL_ZONE))
    assert entry.outcome == "fail"
    assert entry.recovery_s == 7.2
    assert entry.budget_burned_pct == 450.5
    assert entry.worst_objective is not None
    assert "45.05%" in entry.worst_objective
    assert entry.key == "local-fragile::test_zone_b_failure_and_traffic_fails_over[goes down]"


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
    assert "| test_zone_b_failure_and_traffic_fails_over[goes down] | pass |" in md
    assert "up more than 20%" in md
    # "other" did not run tonight but is still found for a later night.
    assert cards.previous("local::other") is not None


def test_terminal_table_shows_names_verbatim() -> None:
    entry = entry_for(read_run(FAIL_ZONE), category="SLO breach")
    text = render([entry], [compare(entry, Entry(entry.drill, entry.target, "pass"), "x")], 200)
    assert "test_zone_b_failure_and_traffic_fails_over[goes down]" in text  # not eaten as markup
    assert "fail (SLO breach)" in text
    assert "7.2 s" in text
    assert "450.5%" in text
    assert "verdict pass -> fail" in text
