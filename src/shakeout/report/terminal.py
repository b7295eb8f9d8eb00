"""The end-of-run table on the terminal: one line per drill, for people and CI logs."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shakeout.report.scorecard import Comparison, Entry

_STYLE = {"pass": "green", "fail": "bold red", "aborted": "red", "error": "magenta"}


def table(entries: list[Entry], comparisons: list[Comparison]) -> Table:
    """The drills of this run: scenario, verdict, worst objective, recovery, budget, change."""
    t = Table(title="ShakeOut drills", title_justify="left", show_lines=False)
    t.add_column("scenario", overflow="fold")
    t.add_column("verdict")
    t.add_column("worst objective", overflow="fold")
    t.add_column("recovery", justify="right")
    t.add_column("budget", justify="right")
    t.add_column("vs previous run", overflow="fold")
    for entry, comp in zip(entries, comparisons, strict=True):
        verdict = entry.outcome
        if entry.category and entry.outcome != "pass":
            verdict += f" ({entry.category})"
        change = (
            "; ".join(comp.regressions)
            if comp.regressions
            else ("no regression" if comp.previous_stamp else "first run")
        )
        # Drill names carry outline examples in brackets ("[goes down]"): not rich markup.
        t.add_row(
            escape(entry.drill),
            f"[{_STYLE.get(entry.outcome, 'yellow')}]{escape(verdict)}[/]",
            escape(entry.worst_objective or "-"),
            "-" if entry.recovery_s is None else f"{entry.recovery_s:.1f} s",
            "-" if entry.budget_burned_pct is None else f"{entry.budget_burned_pct:.1f}%",
            f"[bold red]{escape(change)}[/]" if comp.regressions else escape(change),
        )
    return t


def render(
    entries: list[Entry], comparisons: list[Comparison], width: int = 160, color: bool = False
) -> str:
    """The table as text, with ANSI colours when ``color`` (the terminal has markup)."""
    out = io.StringIO()
    console = Console(
        file=out, width=width, force_terminal=color, color_system="standard" if color else None
    )
    console.print(table(entries, comparisons))
    return out.getvalue()
