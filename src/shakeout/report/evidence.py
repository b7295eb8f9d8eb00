"""Evidence attached to each drill's Allure result, written next to the run's records.

``attach_drill_evidence`` runs in the drill fixture's teardown, after ``Drill.close()`` wrote
the run folder. It never raises: a report problem is logged and the drill's own result stands.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import allure

from shakeout.report.chart import render_png
from shakeout.report.runs import RunFolder, read_run
from shakeout.report.scorecard import Comparison, Scorecards, compare, entry_for
from shakeout.report.tables import events_text, load_table, verdict_table

log = logging.getLogger("shakeout.report")

# Files written into the run folder (kept with the records; also what gets attached).
VERDICTS_HTML = "verdicts.html"
CHART_PNG = "chart.png"
LOAD_HTML = "load.html"
EVENTS_TXT = "platform-events.txt"


@dataclass(frozen=True)
class Recorded:
    """A drill whose evidence was attached in this process (read back at session end)."""

    run_dir: Path
    target: str
    nodeid: str | None


# The drills of this pytest session, in the order they ran; the report plugin clears it at
# session start. A list in the module because the drill fixture and the plugin share nothing
# else (the fixture is the lead's, and passing the node is optional).
RECORDED: list[Recorded] = []


def _attach(path: Path, name: str, kind: allure.attachment_type) -> None:
    # allure-python-commons is untyped; one typed door keeps mypy strict everywhere else.
    allure.attach.file(str(path), name=name, attachment_type=kind)  # type: ignore[no-untyped-call]


def reports_dir() -> Path:
    """The reports folder, as the drill fixture chooses it (``$SHAKEOUT_REPORTS_DIR``)."""
    return Path(os.environ.get("SHAKEOUT_REPORTS_DIR", "reports"))


def _guarded(what: str, run_dir: Path, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # a report failure must never fail or mask the drill
        log.warning("report: could not attach %s of %s", what, run_dir, exc_info=True)


def _comparison(run: RunFolder, reports: Path) -> Comparison | None:
    entry = entry_for(run)
    found = Scorecards(reports).previous(entry.key)
    return compare(entry, *found) if found else None


def attach_drill_evidence(
    run_dir: Path, target: str, nodeid: str | None = None, reports: Path | None = None
) -> None:
    """Render a drill's evidence into its run folder and attach it to its Allure result.

    Attached, in reading order: the SLO verdict table (HTML), the chart (PNG), each Chaos
    Toolkit journal, the load summary (HTML), the platform's event log (local targets) and
    the drill summary (JSON). Without ``--alluredir`` the files are still written.
    """
    RECORDED.append(Recorded(Path(run_dir), target, nodeid))
    try:
        run = read_run(Path(run_dir))
    except Exception:
        log.warning("report: cannot read run folder %s", run_dir, exc_info=True)
        return
    reports = reports if reports is not None else reports_dir()
    types = allure.attachment_type

    def verdicts() -> None:
        comparison = _comparison(run, reports)
        path = run.path / VERDICTS_HTML
        path.write_text(verdict_table(run, comparison), encoding="utf-8")
        _attach(path, "SLO verdicts", types.HTML)
        if comparison and comparison.regressions:
            allure.dynamic.tag("regression")  # type: ignore[no-untyped-call]

    def chart() -> None:
        if run.series:
            path = render_png(run, run.path / CHART_PNG)
            _attach(path, "drill chart", types.PNG)

    def journals() -> None:
        for path in run.journals:
            name = f"Chaos Toolkit journal ({path.stem.removeprefix('journal-')})"
            _attach(path, name, types.JSON)

    def load() -> None:
        if run.summary.get("load"):
            path = run.path / LOAD_HTML
            path.write_text(load_table(run), encoding="utf-8")
            _attach(path, "load summary", types.HTML)

    def events() -> None:
        if (run.path / "platform-events.json").exists():
            path = run.path / EVENTS_TXT
            path.write_text(events_text(run), encoding="utf-8")
            _attach(path, "platform events", types.TEXT)

    def slo_applied() -> None:
        if (run.path / "slo-applied.txt").exists():
            _attach(run.path / "slo-applied.txt", "SLO file objectives applied", types.TEXT)

    def summary() -> None:
        if (run.path / "summary.json").exists():
            _attach(run.path / "summary.json", "drill summary", types.JSON)

    for what, action in (
        ("the verdict table", verdicts),
        ("the chart", chart),
        ("the journals", journals),
        ("the load summary", load),
        ("the platform events", events),
        ("the SLO objectives applied", slo_applied),
        ("the summary", summary),
    ):
        _guarded(what, run.path, action)
