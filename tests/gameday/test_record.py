"""The game-day record: checklist, history of passing game days, markdown, Allure result; and
the console's refusal of bad input before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from screens import ROOT

from shakeout.gameday import record

DESCRIPTION = """A zone goes down.

  Runbook checklist:
  - the alert paged on-call
  - traffic stayed on the healthy zones

  Anything after the list is not an item.
  - not this one
"""


def test_the_checklist_and_runbooks_come_from_the_feature() -> None:
    assert record.checklist_of(DESCRIPTION) == [
        "the alert paged on-call",
        "traffic stayed on the healthy zones",
    ]
    assert record.checklist_of("no checklist here") == []
    tags = ["zone", "runbook:docs/runbooks.md#zonedown", "gameday"]
    assert record.runbooks_of(tags) == ["docs/runbooks.md#zonedown"]


def _scenario(tmp_path: Path, outcome: str) -> dict[str, Any]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "verdicts.json").write_text(
        json.dumps(
            {
                "verdicts": [
                    {
                        "objective": "checkout error rate < 1%",
                        "observed": 0.2,
                        "unit": "%",
                        "status": "pass",
                    },
                    {
                        "objective": "checkout p95 < 300 ms",
                        "observed": 412.25,
                        "unit": "ms",
                        "status": "fail",
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    (run_dir / "journal-zone_outage.json").write_text(
        json.dumps(
            {
                "status": "interrupted",
                "rollbacks": [{"activity": {"name": "bring-zone-back"}, "status": "succeeded"}],
            }
        ),
        encoding="utf-8",
    )
    return {
        "feature": "Zone failure",
        "scenario": "Zone b goes down",
        "target": "local",
        "started_at": 1000.0,
        "outcome": outcome,
        "run_dir": str(run_dir),
        "timeline": [{"t": 1001.0, "kind": "control", "text": "go: start"}],
        "notes": [{"t": 1002.0, "text": "paged"}],
        "controls": [{"t": 1003.0, "control": "abort", "detail": "the facilitator aborted"}],
    }


def _day(tmp_path: Path, outcome: str, answers: dict[str, str]) -> record.GameDay:
    return record.GameDay(
        feature_file="features/zone.feature",
        target="local",
        started_at=1000.0,
        ended_at=1100.0,
        scenarios=[_scenario(tmp_path, outcome)],
        checklist=answers,
        console_controls=[
            {"t": 1003.0, "control": "abort", "detail": "the facilitator aborted"},
            {"t": 1004.0, "control": "quit", "detail": ""},
        ],
    )


def test_a_game_day_passes_only_when_every_drill_and_checklist_item_passed(tmp_path: Path) -> None:
    assert _day(tmp_path, "pass", {"a": "pass"}).passed
    assert not _day(tmp_path, "fail", {"a": "pass"}).passed
    assert not _day(tmp_path, "pass", {"a": "pass", "b": "skipped"}).passed
    assert not _day(tmp_path, "aborted", {}).passed


def test_consecutive_passing_game_days_are_counted_per_feature(tmp_path: Path) -> None:
    history = tmp_path / "gameday" / record.HISTORY_FILE
    counts = []
    for number, outcome in enumerate(["pass", "pass", "fail", "pass", "pass"]):
        folder = tmp_path / f"day{number}"
        folder.mkdir()
        _, consecutive = record.write(_day(tmp_path, outcome, {}), folder, history)
        counts.append(consecutive)
    assert counts == [1, 2, 0, 1, 2]
    assert record.consecutive_passes(history, "features/other.feature") == 0


def test_the_record_holds_the_timeline_verdicts_rollbacks_notes_and_checklist(
    tmp_path: Path,
) -> None:
    day = _day(tmp_path, "aborted", {"the alert paged on-call": "fail"})
    folder = tmp_path / "day"
    folder.mkdir()
    path, consecutive = record.write(day, folder, tmp_path / record.HISTORY_FILE)
    text = path.read_text(encoding="utf-8")
    assert consecutive == 0
    for expected in (
        "result: **FAIL**",
        "Outcome: **aborted**",
        "control: go: start",
        "| checkout error rate < 1% | 0.2 % | pass |",
        "| checkout p95 < 300 ms | 412.2 ms | FAIL |",
        "- fault zone_outage: experiment interrupted; rollbacks: bring-zone-back succeeded",
        "paged",
        "| the alert paged on-call | fail |",
        "quit",
    ):
        assert expected in text, expected
    assert text.count("abort: the facilitator aborted") == 1  # the console's copy is not doubled
    results = record.attach_to_allure(day, path, tmp_path / "allure")
    (result,) = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert result["name"] == "Game day: Zone failure"
    assert result["status"] == "failed"
    (attachment,) = result["attachments"]
    assert (results / attachment["source"]).read_text(encoding="utf-8") == text


def _gameday(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shakeout.cli", "gameday", *args, "--no-page"],
        cwd=ROOT,
        env={**os.environ, "SHAKEOUT_REPORTS_DIR": str(reports)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_bad_input_is_refused_before_anything_starts(tmp_path: Path) -> None:
    missing = _gameday(tmp_path / "reports", "features/no_such.feature")
    assert missing.returncode == 2
    assert "features/no_such.feature: feature file not found" in missing.stderr
    feature = tmp_path / "bad.feature"
    feature.write_text(
        'Feature: bad\n  Scenario: too far\n    When zone "q" goes down for 5 seconds\n',
        encoding="utf-8",
    )
    bad = _gameday(tmp_path / "reports", str(feature))
    assert bad.returncode == 2
    assert f"{feature}:3" in bad.stderr, bad.stderr
    assert not (tmp_path / "reports").exists(), "the console started something"
