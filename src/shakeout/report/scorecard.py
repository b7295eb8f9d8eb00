"""The resilience scorecard: per scenario its verdict, recovery time and error budget burned,
compared with the same scenario's previous run to flag regressions.

Each session's scorecard is saved under ``reports/scorecards/<stamp>.json`` (and copied to
``reports/scorecard.json`` and ``reports/scorecard.md``); a scenario is compared with its most
recent earlier appearance on the same target, so a night that ran only some drills still
compares each drill with its own last run. Scenarios are shown by their title (as Allure shows
them) but matched across runs by their pytest name (``drill``), which scorecards written before
titles were kept also carry.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from shakeout.report.runs import RunFolder, VerdictRow

# A recovery or burn that grows by more than this fraction is a regression (the 20%)...
GROWTH_LIMIT = 0.20
# ...but only past a floor: one-second buckets make 0.0 -> 0.3 s noise, not a regression.
RECOVERY_FLOOR_S = 1.0
BURN_FLOOR_PCT = 2.0
# Scorecards kept under reports/scorecards/ (two months of nights).
KEEP = 60

_RANK = {"pass": 0, "inconclusive": 1, "aborted": 2, "fail": 3, "error": 4}

# Verdict kinds that state a fact about the target (an event seen, a rollout's end, an alert,
# orders lost) rather than a measured value against a limit.
FACTS = ("data", "steady_state", "rollout", "event", "alert")
# Count units where more is better: the objective expects at least the threshold.
_AT_LEAST = {"events": "fired", "notifications": "received"}


@dataclass
class Entry:
    """One scenario's line on the scorecard.

    ``drill`` is the pytest name (``test_zone_b_..._fails_over[goes down]``): the key across
    runs. ``title`` is the scenario's title with its example's values, as Allure shows it, and
    ``feature`` its feature's; both are None in scorecards written before they were kept.
    """

    drill: str
    target: str
    outcome: str
    worst_objective: str | None = None
    recovery_s: float | None = None
    budget_burned_pct: float | None = None
    category: str | None = None
    run_dir: str | None = None
    title: str | None = None
    feature: str | None = None

    @property
    def key(self) -> str:
        """What identifies a scenario across runs: its pytest name and target."""
        return f"{self.target}::{self.drill}"

    @property
    def name(self) -> str:
        """What a reader sees: the scenario's title, else (older entries) the pytest name."""
        return self.title or self.drill

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Entry:
        """An entry as saved in a scorecard, older or newer (unknown fields are left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def display_names(entries: Sequence[Entry]) -> list[str]:
    """Each entry's name for a table, told apart where two share a title in one run: by the
    feature first, else by the pytest name."""
    names = [e.name for e in entries]
    for tags in ([e.feature for e in entries], [e.drill if e.title else None for e in entries]):
        counts = Counter(names)
        names = [
            f"{n} ({tag})" if counts[n] > 1 and tag else n
            for n, tag in zip(names, tags, strict=True)
        ]
    return names


@dataclass
class Comparison:
    """One scenario compared with its previous run."""

    previous_stamp: str
    lines: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)


def _margin(row: VerdictRow) -> float:
    """How close an objective came to its threshold (1.0 = at it, above 1 = past it)."""
    obs, limit = row.observed, row.threshold
    if obs is None or limit is None:
        return 0.0
    if row.kind == "availability" or ">" in row.objective:
        # Higher is better: compare what was missing with what the objective allows to miss
        # (availability 99.5% against >= 99% used half of the 1% allowance).
        if row.unit == "%" and limit < 100:
            return (100.0 - obs) / (100.0 - limit)
        return limit / obs if obs else float("inf")
    return obs / limit if limit else 0.0


def _fact_margin(row: VerdictRow) -> float:
    """:func:`_margin` for a fact: how close it came to not holding (counts of events and
    notifications are better higher; the others, times and counts, lower)."""
    obs, limit = row.observed, row.threshold
    if obs is None or limit is None:
        return 0.0
    if row.unit in _AT_LEAST:
        return limit / obs if obs else float("inf")
    return obs / limit if limit else 0.0


def _g(value: float) -> str:
    return f"{value:g}"


def fact_text(row: VerdictRow) -> str:
    """A fact's line in words, never as a share of a limit: ``the target reports that a
    circuit breaker opened: fired 5 / expected >= 1``, ``... rolled back within 15 s: took
    4.8 s``, ``no alert fires: 0 alerts``."""
    obs, limit, unit = row.observed, row.threshold, row.unit or ""
    if obs is None:
        return f"{row.objective}: {'met' if row.status == 'pass' else 'not measured'}"
    if unit in _AT_LEAST:
        wanted = f" / expected >= {_g(limit)}" if limit is not None else ""
        return f"{row.objective}: {_AT_LEAST[unit]} {_g(obs)}{wanted}"
    if unit == "s":
        verb = "observed" if row.kind == "data" else "took"
        return f"{row.objective}: {verb} {obs:.1f} s"
    return f"{row.objective}: {_g(obs)} {unit}".rstrip()


def worst_objective(rows: list[VerdictRow]) -> str | None:
    """The objective a reviewer should read first: a failure, else the one nearest its limit.

    A measured objective reads ``p95 < 300 ms (90% of limit)``; a fact (an event, a rollout,
    an alert, orders; only when a drill judged nothing else) reads in its own words
    (:func:`fact_text`), since a count of events is no share of a limit.
    """
    if not rows:
        return None
    failed = [r for r in rows if r.status != "pass"]
    pool = failed or [r for r in rows if r.kind not in FACTS] or rows
    worst = max(pool, key=lambda r: _fact_margin(r) if r.kind in FACTS else _margin(r))
    if worst.status != "pass":
        return f"{worst.status}: {worst.message or worst.objective}"
    if worst.kind in FACTS:
        return fact_text(worst)
    return f"{worst.objective} ({_margin(worst):.0%} of limit)"


def entry_for(
    run: RunFolder,
    outcome: str | None = None,
    category: str | None = None,
    title: str | None = None,
    feature: str | None = None,
) -> Entry:
    """The scorecard entry of a run folder; ``outcome`` stands in when verdicts.json is missing.
    ``title`` and ``feature`` are the scenario's (the run folder knows only the pytest name)."""
    v = run.verdicts
    return Entry(
        drill=run.drill,
        target=run.target,
        outcome=run.outcome or outcome or "error",
        worst_objective=worst_objective(run.rows),
        recovery_s=v.recovery.from_fault_start_s if v and v.recovery else None,
        budget_burned_pct=v.budget_burned_pct if v else None,
        category=category,
        run_dir=str(run.path),
        title=title,
        feature=feature,
    )


def _grew(old: float | None, new: float | None, floor: float) -> bool:
    if old is None or new is None:
        return False
    return new - old > floor and new > old * (1 + GROWTH_LIMIT)


def compare(entry: Entry, previous: Entry, previous_stamp: str) -> Comparison:
    """Compare a scenario with its previous run; regressions follow the module's limits."""
    result = Comparison(previous_stamp)
    if previous.outcome != entry.outcome:
        result.lines.append(f"verdict {previous.outcome} -> {entry.outcome}")
        if _RANK.get(entry.outcome, 4) > _RANK.get(previous.outcome, 4):
            result.regressions.append(f"verdict {previous.outcome} -> {entry.outcome}")
    for name, old, new, floor, unit in (
        ("recovery time", previous.recovery_s, entry.recovery_s, RECOVERY_FLOOR_S, " s"),
        ("budget burned", previous.budget_burned_pct, entry.budget_burned_pct, BURN_FLOOR_PCT, "%"),
    ):
        if old is None and new is None:
            continue
        show = f"{name} {_show(old, unit)} -> {_show(new, unit)}"
        result.lines.append(show)
        if _grew(old, new, floor):
            result.regressions.append(f"{show} (up more than {GROWTH_LIMIT:.0%})")
    return result


def _show(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


class Scorecards:
    """The scorecards kept under ``<reports>/scorecards/``."""

    def __init__(self, reports: Path) -> None:
        self.reports = reports
        self.folder = reports / "scorecards"

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []

    def previous(self, key: str, before: str | None = None) -> tuple[Entry, str] | None:
        """The most recent saved entry of a scenario (older than ``before``), with its stamp.

        ``key`` is :attr:`Entry.key` (target and pytest name), which scorecards written
        before scenario titles were kept share with today's.
        """
        for path in reversed(self._files()):
            if before is not None and path.stem >= before:
                continue
            try:
                scenarios = json.loads(path.read_text(encoding="utf-8")).get("scenarios", [])
            except (OSError, ValueError, AttributeError):
                continue  # a damaged old scorecard must not stop tonight's report
            for raw in scenarios if isinstance(scenarios, list) else []:
                try:
                    entry = Entry.from_dict(raw)
                except (TypeError, AttributeError):
                    continue
                if entry.key == key:
                    return entry, path.stem
        return None

    def save(self, entries: list[Entry], meta: dict[str, Any]) -> tuple[Path, list[Comparison]]:
        """Save tonight's scorecard, compare each entry, write the JSON and Markdown copies."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        comparisons: list[Comparison] = []
        rows: list[dict[str, Any]] = []
        for entry in entries:
            found = self.previous(entry.key, before=stamp)
            comp = compare(entry, *found) if found else None
            comparisons.append(comp or Comparison(previous_stamp=""))
            rows.append(
                {
                    **asdict(entry),
                    "previous": found[1] if found else None,
                    "regressions": comp.regressions if comp else [],
                }
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {"stamp": stamp, **meta, "scenarios": [asdict(e) for e in entries]}
        path = self.folder / f"{stamp}.json"
        if path.exists():  # two sessions in one second: keep both
            path = self.folder / f"{stamp}-{len(self._files())}.json"
        path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        latest = {"stamp": stamp, **meta, "scenarios": rows}
        (self.reports / "scorecard.json").write_text(json.dumps(latest, indent=2), "utf-8")
        (self.reports / "scorecard.md").write_text(markdown(latest), encoding="utf-8")
        for old in self._files()[:-KEEP]:
            old.unlink(missing_ok=True)
        return path, comparisons


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(doc: dict[str, Any]) -> str:
    """The scorecard as a Markdown table (for CI job summaries and people)."""
    lines = [
        f"# Resilience scorecard {doc.get('stamp', '')}",
        "",
        f"target `{doc.get('target', '?')}`, commit `{doc.get('git_sha', '?')}`",
        "",
        "| scenario | verdict | worst objective | recovery | budget burned | vs previous |",
        "|---|---|---|---|---|---|",
    ]
    rows = doc.get("scenarios", [])
    names = display_names([Entry.from_dict(row) for row in rows])
    for row, name in zip(rows, names, strict=True):
        vs = "; ".join(row.get("regressions") or []) or (
            "no regression" if row.get("previous") else "first run"
        )
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    name,
                    row["outcome"],
                    row.get("worst_objective") or "",
                    _show(row.get("recovery_s"), " s"),
                    _show(row.get("budget_burned_pct"), "%"),
                    vs,
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"
