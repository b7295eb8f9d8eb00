"""The weekly digest: what a reviewer reads in a minute about the last nights of drills.

``shakeout report weekly [--nights 7]`` reads the results history (:mod:`shakeout.history`)
and writes ``digest.md`` and ``index.html`` with three charts: per drill its outcome each night,
how much of its tightest objective's limit it used, and its recovery time. It names the drills
that flip between pass and fail (flaky, with how often) and what regressed or improved against
the nights before.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

MARGIN_STEP = 0.15  # a median limit use that moves by 15 points of the limit is news
RECOVERY_GROWTH = 0.25  # recovery or time to alert 25% longer (and RECOVERY_FLOOR_S more)
RECOVERY_FLOOR_S = 0.5


@dataclass
class Run:
    """One drill run as the digest reads it."""

    night: str
    started_at: float
    outcome: str
    recovery_s: float | None
    budget_burned_pct: float | None
    time_to_alert_s: float | None
    limit_used: dict[str, float]  # objective -> observed against threshold (1 = at the limit)
    commit: str | None

    @property
    def tightest(self) -> float | None:
        """The most of a limit any objective used."""
        return max(self.limit_used.values()) if self.limit_used else None


@dataclass
class Drill:
    """One drill (by its scenario title) over this window and the one before."""

    title: str
    runs: list[Run] = field(default_factory=list)
    before: list[Run] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        """Share of this window's runs that passed."""
        return sum(r.outcome == "pass" for r in self.runs) / len(self.runs) if self.runs else 0.0

    @property
    def flips(self) -> int:
        """How often the verdict changed between pass and fail from one run to the next."""
        judged = [r.outcome == "pass" for r in self.runs if r.outcome in ("pass", "fail")]
        return sum(a != b for a, b in itertools.pairwise(judged))

    @property
    def flaky(self) -> bool:
        """Passed, failed, and passed again (or the reverse): two flips or more."""
        return self.flips >= 2

    def changes(self) -> tuple[list[str], list[str]]:
        """Regressions and improvements against the window before."""
        if not self.before or not self.runs:
            return [], []
        worse: list[str] = []
        better: list[str] = []
        rate_before = sum(r.outcome == "pass" for r in self.before) / len(self.before)
        if self.pass_rate < rate_before:
            worse.append(f"pass rate {rate_before:.0%} -> {self.pass_rate:.0%}")
        elif self.pass_rate > rate_before:
            better.append(f"pass rate {rate_before:.0%} -> {self.pass_rate:.0%}")
        for objective in sorted({o for r in self.runs for o in r.limit_used}):
            now = _median([r.limit_used.get(objective) for r in self.runs])
            then = _median([r.limit_used.get(objective) for r in self.before])
            if now is None or then is None or abs(now - then) < MARGIN_STEP:
                continue
            line = f"{objective}: {then:.0%} -> {now:.0%} of its limit"
            (worse if now > then else better).append(line)
        for name, attr in (("recovery", "recovery_s"), ("time to alert", "time_to_alert_s")):
            now = _median([getattr(r, attr) for r in self.runs])
            then = _median([getattr(r, attr) for r in self.before])
            if now is None or then is None or abs(now - then) < RECOVERY_FLOOR_S:
                continue
            line = f"{name} {then:.1f} s -> {now:.1f} s"
            if now > then * (1 + RECOVERY_GROWTH):
                worse.append(line)
            elif now < then / (1 + RECOVERY_GROWTH):
                better.append(line)
        return worse, better


def _median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


@dataclass
class Week:
    """The digest's figures: the nights covered, and every drill run in them."""

    nights: list[str]
    before: list[str]
    drills: list[Drill]

    @property
    def runs(self) -> int:
        """How many drill runs the window holds."""
        return sum(len(d.runs) for d in self.drills)


def nights_window(until: str, nights: int) -> tuple[list[str], list[str]]:
    """The ``nights`` dates up to ``until``, and the same number before them."""
    end = dt.date.fromisoformat(until)
    days = [(end - dt.timedelta(days=n)).isoformat() for n in range(2 * nights - 1, -1, -1)]
    return days[nights:], days[:nights]


def latest_night(db: sqlite3.Connection) -> str | None:
    """The newest night in the history, None when it is empty."""
    row = db.execute("SELECT max(night) FROM runs").fetchone()
    return str(row[0]) if row and row[0] else None


def read_week(db: sqlite3.Connection, nights: int, until: str) -> Week:
    """Every run of the ``nights`` up to ``until`` and of the nights before them."""
    this, before = nights_window(until, nights)
    limits: dict[int, dict[str, float]] = defaultdict(dict)
    for row in db.execute(
        """SELECT run_id, objective, max(limit_used) FROM verdicts
           WHERE limit_used IS NOT NULL AND run_id IN (SELECT id FROM runs WHERE night >= ?)
           GROUP BY run_id, objective""",
        (before[0],),
    ):
        limits[row[0]][row[1]] = float(row[2])
    drills: dict[str, Drill] = {}
    for row in db.execute(
        """SELECT r.*, (SELECT min(after_fault_s) FROM alerts a WHERE a.run_id = r.id
                        AND a.after_fault_s >= 0) AS time_to_alert
           FROM runs r WHERE night >= ? AND night <= ? ORDER BY started_at""",
        (before[0], this[-1]),
    ):
        run = Run(
            night=row["night"],
            started_at=row["started_at"],
            outcome=row["outcome"],
            recovery_s=row["recovery_s"],
            budget_burned_pct=row["budget_burned_pct"],
            time_to_alert_s=row["time_to_alert"],
            limit_used=limits.get(row["id"], {}),
            commit=row["commit_sha"],
        )
        drill = drills.setdefault(row["title"], Drill(row["title"]))
        (drill.runs if run.night in this else drill.before).append(run)
    return Week(this, before, sorted(drills.values(), key=lambda d: d.title))


def summary(week: Week) -> list[str]:
    """The lines a reviewer reads first."""
    current = [d for d in week.drills if d.runs]
    always = [d for d in current if d.pass_rate == 1.0]
    never = [d for d in current if d.pass_rate == 0.0]
    flaky = [d for d in current if d.flaky]
    lines = [
        f"{len(week.nights)} nights ({week.nights[0]} to {week.nights[-1]}), {len(current)} "
        f"drills, {week.runs} runs: {len(always)} passed every run, {len(never)} failed every "
        f"run, {len(flaky)} flaky.",
    ]
    for drill in never:
        lines.append(f"Failing: {drill.title} ({len(drill.runs)} of {len(drill.runs)} runs).")
    for drill in flaky:
        lines.append(
            f"Flaky: {drill.title} flipped {drill.flips} times in {len(drill.runs)} runs "
            f"(pass rate {drill.pass_rate:.0%})."
        )
    regressions = [(d.title, line) for d in current for line in d.changes()[0]]
    improvements = [(d.title, line) for d in current for line in d.changes()[1]]
    if not any(d.before for d in current):
        lines.append("No runs in the nights before: nothing to compare with.")
    lines += [f"Regression: {title}: {line}." for title, line in regressions]
    lines += [f"Improvement: {title}: {line}." for title, line in improvements]
    if len(lines) == 1 and any(d.before for d in current):
        lines.append("No regression and no improvement against the nights before.")
    return lines
