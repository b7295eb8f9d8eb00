"""The end-of-run table of drills: a rich table on a terminal, plain rows in a CI log.

Both show, per drill, its scenario title, verdict (with the failure category), worst objective,
recovery, budget burned and the change against its previous run. The plain form never wraps: one
line per drill, whatever the log viewer's width (a CI job has no terminal to measure).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shakeout.report.scorecard import Comparison, Entry, display_names

_STYLE = {"pass": "green", "fail": "bold red", "aborted": "red", "error": "magenta"}


@dataclass(frozen=True)
class Line:
    """One drill's cells, as plain text."""

    scenario: str
    verdict: str
    worst: str
    recovery: str
    budget: str
    change: str
    outcome: str
    regressed: bool


def _number(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def lines(entries: list[Entry], comparisons: list[Comparison]) -> list[Line]:
    """The cells of each drill (both forms of the table show the same)."""
    found = []
    names = display_names(entries)
    for entry, comp, name in zip(entries, comparisons, names, strict=True):
        verdict = entry.outcome
        if entry.category and entry.outcome != "pass":
            verdict += f" ({entry.category})"
        change = (
            "; ".join(comp.regressions)
            if comp.regressions
            else ("no regression" if comp.previous_stamp else "first run")
        )
        found.append(
            Line(
                scenario=name,
                verdict=verdict,
                worst=entry.worst_objective or "-",
                recovery=_number(entry.recovery_s, " s"),
                budget=_number(entry.budget_burned_pct, "%"),
                change=change,
                outcome=entry.outcome,
                regressed=bool(comp.regressions),
            )
        )
    return found


def table(entries: list[Entry], comparisons: list[Comparison]) -> Table:
    """The drills of this run: scenario, verdict, worst objective, recovery, budget, change."""
    t = Table(title="ShakeOut drills", title_justify="left", show_lines=False)
    t.add_column("scenario", overflow="fold")
    t.add_column("verdict")
    t.add_column("worst objective", overflow="fold")
    t.add_column("recovery", justify="right")
    t.add_column("budget", justify="right")
    t.add_column("vs previous run", overflow="fold")
    for line in lines(entries, comparisons):
        # Titles and objectives may hold brackets ("[goes down]"): not rich markup.
        t.add_row(
            escape(line.scenario),
            f"[{_STYLE.get(line.outcome, 'yellow')}]{escape(line.verdict)}[/]",
            escape(line.worst),
            line.recovery,
            line.budget,
            f"[bold red]{escape(line.change)}[/]" if line.regressed else escape(line.change),
        )
    return t


def render(
    entries: list[Entry], comparisons: list[Comparison], width: int = 160, color: bool = False
) -> str:
    """The rich table as text, with ANSI colours when ``color`` (the terminal has markup)."""
    out = io.StringIO()
    console = Console(
        file=out, width=width, force_terminal=color, color_system="standard" if color else None
    )
    console.print(table(entries, comparisons))
    return out.getvalue()


_HEADER = ("verdict", "scenario", "worst objective", "recovery", "budget", "vs previous run")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_plain(entries: list[Entry], comparisons: list[Comparison]) -> str:
    """The table as plain text for a log: a header and one ``|``-separated line per drill,
    columns padded to their longest cell, never wrapped nor cut, no colour."""
    grid = [_HEADER] + [
        (x.verdict, x.scenario, x.worst, x.recovery, x.budget, x.change)
        for x in lines(entries, comparisons)
    ]
    rows = [[_one_line(cell) for cell in row] for row in grid]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    right = {3, 4}  # recovery and budget: numbers
    out = ["ShakeOut drills"]
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(w) if i in right and n else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append(" | ".join(cells).rstrip())
        if n == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out) + "\n"
