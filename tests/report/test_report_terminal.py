"""The end-of-run table: rich on a terminal, plain rows that never wrap in a CI log."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import FAIL_ZONE, PASS_CRASH
from shakeout.report.runs import read_run
from shakeout.report.scorecard import Comparison, Entry, entry_for
from shakeout.report.terminal import render, render_plain
from steps import report_plugin

LONG = "fail: SLO breached: checkout error rate < 1% over the drill: " + "observed 45.05% " * 12


def _entries() -> tuple[list[Entry], list[Comparison]]:
    ok = entry_for(read_run(PASS_CRASH), title="A crash-looping release [of orders] is kept out")
    bad = entry_for(
        read_run(FAIL_ZONE), category="SLO breach", title="Zone b goes down and traffic fails over"
    )
    bad.worst_objective = LONG
    worse = Comparison("20200101-000000", regressions=["verdict pass -> fail"])
    return [ok, bad], [Comparison(""), worse]


def test_plain_table_is_one_line_per_drill_however_long() -> None:
    entries, comparisons = _entries()
    text = render_plain(entries, comparisons)
    lines = text.splitlines()
    assert lines[0] == "ShakeOut drills"
    assert [cell.strip() for cell in lines[1].split(" | ")] == [
        "verdict", "scenario", "worst objective", "recovery", "budget", "vs previous run"
    ]  # fmt: skip
    assert set(lines[2]) == {"-", "+"}
    assert len(lines) == 5  # title, header, rule, one line per drill
    ok, bad = lines[3], lines[4]
    assert ok.startswith("pass              | A crash-looping release [of orders] is kept out")
    assert ok.endswith("|    0.0 s |   0.0% | first run")
    assert bad.startswith("fail (SLO breach) | Zone b goes down and traffic fails over")
    assert LONG.strip() in bad  # the whole objective, on the drill's line: nothing wraps
    assert bad.endswith("|    7.2 s | 450.5% | verdict pass -> fail")
    # Columns line up: every separator at the same place on every line.
    seps = {tuple(i for i, ch in enumerate(line) if ch in "|+") for line in lines[1:]}
    assert len(seps) == 1
    assert "\x1b[" not in text  # no colour codes in a log


def test_plain_table_keeps_each_drill_on_one_line_even_with_newlines() -> None:
    entries, comparisons = _entries()
    entries[1].worst_objective = "fail: 2 objective(s) not met:\n  a\n  b"
    lines = render_plain(entries, comparisons).splitlines()
    assert len(lines) == 5
    assert "fail: 2 objective(s) not met: a b" in lines[4]


def test_rich_table_shows_titles_verbatim_and_fits_the_terminal() -> None:
    entries, comparisons = _entries()
    entries[1].worst_objective = "fail: SLO breached"
    text = render(entries, comparisons, width=200)
    assert "│ A crash-looping release [of orders] is kept out " in text  # not eaten as markup
    assert "│ Zone b goes down and traffic fails over " in text
    assert "┃ scenario" in text
    narrow = render(entries, comparisons, width=60)
    assert max(len(line) for line in narrow.splitlines()) <= 60  # wrapped to the terminal
    assert "\x1b[" not in text
    assert "\x1b[" in render(entries, comparisons, width=100, color=True)


class _Config:
    def __init__(self, choice: str) -> None:
        self.choice = choice

    def getoption(self, name: str, default: Any = None) -> Any:
        assert name == "shakeout_table"
        return self.choice


class _Stdout:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("choice", "ci", "tty", "plain"),
    [
        ("auto", None, True, False),  # a person at a terminal: the rich table
        ("auto", None, False, True),  # piped into a log
        ("auto", "true", True, True),  # a CI runner that gives the job a pseudo-terminal
        ("auto", "false", True, False),
        ("rich", "true", False, False),
        ("plain", None, True, True),
    ],
)
def test_the_plain_table_in_ci_logs(
    monkeypatch: pytest.MonkeyPatch, choice: str, ci: str | None, tty: bool, plain: bool
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setattr("sys.stdout", _Stdout(tty))
    assert report_plugin._plain_table(_Config(choice)) is plain  # type: ignore[arg-type]
