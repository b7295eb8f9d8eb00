"""The results history: every drill run across nights, in one SQLite file.

Each run of a drill is a row of ``runs`` (its drill and scenario title, night, date, commit,
target, outcome, recovery, budget burned, environment) with one row of ``verdicts`` per judged
objective (observed, threshold and how much of the limit was used: the margin) and one row of
``alerts`` per alert that fired. The drill runs write it as they end (``steps/pipeline_plugin.py``,
``reports/history.sqlite`` unless ``SHAKEOUT_HISTORY_DB`` says otherwise); ``shakeout history
import`` adds run folders written before (or elsewhere), once each. ``shakeout report weekly``
reads it (:mod:`shakeout.report.weekly`).

The schema is versioned with SQLite's ``user_version``: :data:`MIGRATIONS` holds, for each
version, the statements that lead to it from the one before, applied in one transaction when a
database is opened; a database written by a newer ShakeOut is refused, never downgraded.
SQLite from the standard library: a single file a CI cache can carry from night to night, with
transactions, and no server.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shakeout.errors import ConfigError
from shakeout.report.runs import RunFolder, VerdictRow, read_run
from shakeout.report.scorecard import _margin

DEFAULT_DB = Path("reports/history.sqlite")
FACTS = ("data", "steady_state", "rollout", "event", "alert")  # not a value against a limit

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            run_key TEXT NOT NULL UNIQUE,      -- the run folder's name: imported once
            night TEXT NOT NULL,               -- YYYY-MM-DD the run counts for
            started_at REAL NOT NULL,          -- epoch seconds
            drill TEXT NOT NULL,               -- the pytest name
            title TEXT NOT NULL,               -- the scenario title (the drill's, when unknown)
            feature TEXT,
            target TEXT NOT NULL,
            commit_sha TEXT,
            outcome TEXT NOT NULL,             -- pass, fail, inconclusive, aborted, error
            recovery_s REAL,                   -- from the fault's start
            budget_burned_pct REAL,
            environment TEXT NOT NULL DEFAULT '{}'  -- JSON: machine, python, ...
        )""",
        "CREATE INDEX runs_night ON runs (night, title)",
        """CREATE TABLE verdicts (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            objective TEXT NOT NULL,
            journey TEXT,
            phase TEXT NOT NULL,
            observed REAL,
            threshold REAL,
            unit TEXT,
            status TEXT NOT NULL,              -- pass, fail, inconclusive
            limit_used REAL                    -- observed against threshold: 1.0 at the limit,
                                               -- above 1 past it; NULL for facts (events, ...)
        )""",
        "CREATE INDEX verdicts_run ON verdicts (run_id)",
        """CREATE TABLE alerts (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            alert TEXT NOT NULL,
            labels TEXT NOT NULL DEFAULT '{}',
            start REAL NOT NULL,
            end REAL,
            after_fault_s REAL                 -- time to alert, from the fault's start
        )""",
    ],
}
VERSION = max(MIGRATIONS)


def default_db() -> Path:
    """Where the drill runs record: ``SHAKEOUT_HISTORY_DB``, else ``reports/history.sqlite``
    under ``SHAKEOUT_REPORTS_DIR`` (default ``reports``)."""
    named = os.environ.get("SHAKEOUT_HISTORY_DB")
    if named:
        return Path(named)
    return Path(os.environ.get("SHAKEOUT_REPORTS_DIR", "reports")) / DEFAULT_DB.name


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it) and migrate the database to :data:`VERSION`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db, path)
    return db


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Bring the schema to :data:`VERSION`; return the version found."""
    (found,) = db.execute("PRAGMA user_version").fetchone()
    if found > VERSION:
        raise ConfigError(
            f"{path}: results database of schema {found}, written by a newer ShakeOut (this one "
            f"knows schema {VERSION} at most): upgrade ShakeOut, or name another file"
        )
    if found < VERSION:
        db.execute("BEGIN IMMEDIATE")
        try:
            for version in range(found + 1, VERSION + 1):
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return int(found)


@dataclass(frozen=True)
class RunInfo:
    """What a run folder does not say itself: its scenario, night, commit, environment."""

    title: str | None = None
    feature: str | None = None
    night: str | None = None
    commit: str | None = None
    environment: dict[str, str] | None = None


def current_commit(cwd: Path | None = None) -> str | None:
    """``SHAKEOUT_COMMIT``, else the checkout's HEAD, else None."""
    named = os.environ.get("SHAKEOUT_COMMIT")
    if named:
        return named
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def night_of(started_at: float) -> str:
    """``SHAKEOUT_NIGHT`` (a run after midnight still counts for its evening), else the local
    date the run started."""
    return os.environ.get("SHAKEOUT_NIGHT") or time.strftime("%Y-%m-%d", time.localtime(started_at))


def _limit_used(row: VerdictRow) -> float | None:
    if row.kind in FACTS or row.observed is None or row.threshold is None:
        return None
    return _margin(row)


def record(db: sqlite3.Connection, run: RunFolder, info: RunInfo = RunInfo()) -> bool:
    """Add one run folder; False when it is already there (a run is recorded once)."""
    if run.verdicts is None:
        return False
    v = run.verdicts
    started = float(run.summary.get("started_at") or run.path.stat().st_mtime)
    saved = _scenario_file(run.path)
    db.execute("BEGIN IMMEDIATE")
    try:
        cursor = db.execute(
            """INSERT OR IGNORE INTO runs (run_key, night, started_at, drill, title, feature,
               target, commit_sha, outcome, recovery_s, budget_burned_pct, environment)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run.path.name,
                info.night or saved.get("night") or night_of(started),
                started,
                run.drill,
                info.title or saved.get("title") or run.drill,
                info.feature or saved.get("feature"),
                run.target,
                info.commit or saved.get("commit"),
                v.outcome,
                v.recovery.from_fault_start_s if v.recovery else None,
                v.budget_burned_pct,
                json.dumps(info.environment or saved.get("environment") or {}),
            ),
        )
        if cursor.rowcount == 0:
            db.execute("ROLLBACK")
            return False
        run_id = cursor.lastrowid
        db.executemany(
            """INSERT INTO verdicts (run_id, kind, objective, journey, phase, observed,
               threshold, unit, status, limit_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    run_id,
                    r.kind,
                    r.objective,
                    r.journey,
                    r.phase,
                    r.observed,
                    r.threshold,
                    r.unit,
                    r.status,
                    _limit_used(r),
                )
                for r in v.verdicts
            ],
        )
        db.executemany(
            """INSERT INTO alerts (run_id, alert, labels, start, end, after_fault_s)
               VALUES (?, ?, ?, ?, ?, ?)""",
            [
                (run_id, a.alert, json.dumps(a.labels), a.start, a.end, a.after_fault_s)
                for a in v.alerts
            ],
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return True


SCENARIO_FILE = "scenario.json"


def _scenario_file(run_dir: Path) -> dict[str, Any]:
    """What the drill process noted about a run (its title, feature, night, commit)."""
    try:
        data: dict[str, Any] = json.loads((run_dir / SCENARIO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data


def import_runs(db: sqlite3.Connection, folders: Iterable[Path]) -> tuple[int, int, int]:
    """Import run folders (each a run, or a folder of them): how many were added, already
    there, and left out (no verdicts.json: the drill never got to judge anything)."""
    added = known = unjudged = 0
    for folder in folders:
        runs = [folder] if (folder / "summary.json").is_file() else sorted(folder.glob("*/"))
        for path in runs:
            if not (path / "summary.json").is_file():
                continue
            run = read_run(path)
            if run.verdicts is None:
                unjudged += 1
            elif record(db, run):
                added += 1
            else:
                known += 1
    return added, known, unjudged
