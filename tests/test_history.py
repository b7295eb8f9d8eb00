"""The results history (SQLite) and the weekly digest's figures, on hand-made runs; the nights
of real drills are in tests/test_weekly_nights.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shakeout import history
from shakeout.errors import ConfigError
from shakeout.report import weekly
from shakeout.report.digest import write_digest
from steps.pipeline_plugin import exit_code

NIGHTS = ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24", "2026-11-25"]


def _run_folder(root: Path, name: str, outcome: str, p95: float, recovery: float) -> Path:
    """A run folder as the engine writes it: summary.json and verdicts.json (schema 1)."""
    path = root / name
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"drill": "test_x", "started_at": 1e9}))
    verdicts = [
        {"kind": "latency", "objective": "browse p95 latency < 300 ms", "journey": "browse",
         "observed": p95, "threshold": 300.0, "unit": "ms",
         "status": "pass" if p95 < 300 else "fail"},
        {"kind": "event", "objective": "the target reports that a zone was found not ready",
         "observed": 1.0, "threshold": 1.0, "unit": "events", "status": "pass"},
    ]  # fmt: skip
    (path / "verdicts.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "drill": "test_x",
                "target": "local",
                "outcome": outcome,
                "recovery": {"journey": "browse", "from_fault_start_s": recovery},
                "budget_burned_pct": 10.0,
                "verdicts": verdicts,
                "alerts": [{"alert": "ZoneDown", "start": 1e9, "after_fault_s": 1.5}],
            }
        )
    )
    return path


def _history(tmp_path: Path, nights: list[tuple[str, str, float, float]]) -> Path:
    db_path = tmp_path / "history.sqlite"
    db = history.connect(db_path)
    for n, (night, outcome, p95, recovery) in enumerate(nights):
        run = _run_folder(tmp_path / "runs", f"run-{n}", outcome, p95, recovery)
        info = history.RunInfo(title="Zone b goes down", night=night, commit=f"c{n}")
        assert history.record(db, history.read_run(run), info)
    db.close()
    return db_path


def test_a_run_is_recorded_once_with_its_margins_and_alerts(tmp_path: Path) -> None:
    db_path = _history(tmp_path, [(NIGHTS[0], "pass", 150.0, 2.0)])
    db = history.connect(db_path)
    (run,) = db.execute("SELECT * FROM runs").fetchall()
    assert (run["title"], run["night"], run["outcome"], run["recovery_s"]) == (
        "Zone b goes down", NIGHTS[0], "pass", 2.0)  # fmt: skip
    limits = dict(db.execute("SELECT kind, limit_used FROM verdicts").fetchall())
    assert limits == {"latency": 0.5, "event": None}  # an event count is no share of a limit
    assert db.execute("SELECT after_fault_s FROM alerts").fetchone()[0] == 1.5
    assert history.import_runs(db, [tmp_path / "runs"]) == (0, 1, 0)  # already there
    db.close()


def test_a_database_from_a_newer_shakeout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {history.VERSION + 1}")
    with pytest.raises(ConfigError, match=r"schema 2, written by a newer ShakeOut"):
        history.connect(path)


def test_migrations_bring_an_empty_file_to_the_current_schema(tmp_path: Path) -> None:
    db = history.connect(tmp_path / "h.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == history.VERSION
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"runs", "verdicts", "alerts"}
    assert history.migrate(db, tmp_path / "h.sqlite") == history.VERSION  # nothing to do
    db.close()


def test_flaky_regression_and_figures_of_a_week(tmp_path: Path) -> None:
    """Two nights before (passing, fast), then three: fail, pass, fail, slower to recover."""
    db_path = _history(
        tmp_path,
        [
            (NIGHTS[1], "pass", 90.0, 2.0),
            (NIGHTS[2], "pass", 90.0, 2.0),
            (NIGHTS[3], "fail", 450.0, 6.0),
            (NIGHTS[4], "pass", 150.0, 4.0),
            (NIGHTS[5], "fail", 330.0, 5.0),
        ],
    )
    db = history.connect(db_path)
    week = weekly.read_week(db, 3, NIGHTS[5])
    db.close()
    (drill,) = week.drills
    assert [r.outcome for r in drill.runs] == ["fail", "pass", "fail"]
    assert len(drill.before) == 2
    assert drill.pass_rate == pytest.approx(1 / 3)
    assert drill.flips == 2
    assert drill.flaky
    worse, better = drill.changes()
    assert "pass rate 100% -> 33%" in worse
    assert "browse p95 latency < 300 ms: 30% -> 110% of its limit" in worse
    assert "recovery 2.0 s -> 5.0 s" in worse
    assert better == []
    lines = weekly.summary(week)
    assert lines[0].startswith("3 nights (2026-11-23 to 2026-11-25), 1 drills, 3 runs")
    assert "Flaky: Zone b goes down flipped 2 times in 3 runs (pass rate 33%)." in lines
    digest = write_digest(db_path, tmp_path / "weekly", nights=3)
    text = digest.markdown.read_text()
    assert "| Zone b goes down | ✗✓✗ | 33% of 3 | 2 flips | 150% | 6.0 s | 1.5 s | 10% |" in text
    assert all(chart.stat().st_size > 5_000 for chart in digest.charts)
    assert "Zone b goes down" in digest.html.read_text()


def test_an_empty_history_has_no_digest(tmp_path: Path) -> None:
    history.connect(tmp_path / "h.sqlite").close()
    with pytest.raises(ValueError, match="holds no run yet"):
        write_digest(tmp_path / "h.sqlite", tmp_path / "out")


@pytest.mark.parametrize(
    ("outcomes", "left", "pytest_code", "expected"),
    [
        (["pass", "inconclusive"], False, 0, 0),
        (["pass", "fail"], False, 1, 1),
        (["aborted"], False, 1, 1),
        (["fail", "error"], False, 1, 3),
        (["fail"], True, 1, 6),
        (["pass"], False, 2, 2),  # interrupted stays interrupted
        (["pass"], False, 4, 4),
    ],
)
def test_exit_codes_a_pipeline_branches_on(
    outcomes: list[str], left: bool, pytest_code: int, expected: int
) -> None:
    assert exit_code(outcomes, left, pytest_code) == expected
