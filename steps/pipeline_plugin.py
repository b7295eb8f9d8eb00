"""pytest wiring for pipelines: each drill recorded in the results history, and an exit code a
pipeline can branch on (docs/pipelines.md).

| code | meaning |
|---|---|
| 0 | every drill passed (inconclusive ones, e.g. alert steps without Prometheus, are listed) |
| 1 | SLO breach: a drill failed, or its stop condition aborted it |
| 2 | interrupted (Ctrl-C, a cancelled job) |
| 3 | harness or platform error: a drill could not be judged |
| 4 | bad input or refused target: nothing was started |
| 5 | no drill selected |
| 6 | a fault was left behind that cleanup could not undo: `shakeout cleanup` |

Codes 2, 4 and 5 are pytest's own; the others replace pytest's 1 once drills ran.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Generator
from pathlib import Path

import allure
import pytest

from shakeout import history
from shakeout.chaos import undo
from shakeout.errors import ShakeoutError
from shakeout.report.runs import read_run
from steps.plugin import DRILL
from steps.report_plugin import scenario_title

log = logging.getLogger("shakeout.history")

BREACH, HARNESS_ERROR, FAULT_LEFT_BEHIND = 1, 3, 6
WEEKLY_DIGEST = "../weekly/index.html"  # from reports/allure-report/index.html
_OUTCOMES = pytest.StashKey[list[str]]()
_TARGETS = pytest.StashKey[set[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_OUTCOMES] = []
    config.stash[_TARGETS] = set()


@pytest.hookimpl(trylast=True)  # after allure-pytest-bdd scheduled the test case
def pytest_bdd_before_scenario(request: pytest.FixtureRequest) -> None:
    """Every drill in Allure links to the weekly digest (``shakeout report weekly`` writes it
    beside the HTML report: reports/weekly/ next to reports/allure-report/)."""
    try:
        allure.dynamic.link(WEEKLY_DIGEST, name="weekly digest")
    except Exception:  # never fails a drill
        log.warning("no weekly digest link on %s", request.node.nodeid, exc_info=True)


def _title(item: pytest.Item) -> tuple[str, str | None]:
    """The scenario's title and feature, as Allure, the scorecard and JUnit show them."""
    named = scenario_title(item)
    return named if named is not None else (item.name, None)


def _keep(item: pytest.Item, run_dir: Path) -> None:
    """Note the run's scenario beside it, then record it in the results history."""
    title, feature = _title(item)
    started = time.time()
    info = history.RunInfo(
        title=title,
        feature=feature,
        night=history.night_of(started),
        commit=history.current_commit(),
        environment={
            "machine": platform.node(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
    )
    (run_dir / history.SCENARIO_FILE).write_text(
        json.dumps({k: v for k, v in info.__dict__.items() if v is not None}, indent=2),
        encoding="utf-8",
    )
    run = read_run(run_dir)
    if run.verdicts is not None:
        item.config.stash[_OUTCOMES].append(run.verdicts.outcome)
        item.config.stash[_TARGETS].add(run.target)
    db = history.connect(history.default_db())
    try:
        history.record(db, run, info)
    finally:
        db.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Once the drill fixture has closed its drill (verdicts.json written)."""
    drill = item.stash.get(DRILL, None)
    try:
        return (yield)
    finally:
        if drill is not None:
            try:
                _keep(item, drill.run_dir)
            except (OSError, ShakeoutError, ValueError) as exc:  # never fails a drill
                log.warning("results history not written for %s: %s", item.nodeid, exc)


def exit_code(outcomes: list[str], left_behind: bool, pytest_code: int) -> int:
    """The run's exit code from its drills' outcomes (see the table above)."""
    if pytest_code in (2, 4):  # interrupted, or refused before anything started
        return pytest_code
    if left_behind:
        return FAULT_LEFT_BEHIND
    if "error" in outcomes:
        return HARNESS_ERROR
    if "fail" in outcomes or "aborted" in outcomes:
        return BREACH
    return 0 if outcomes else pytest_code


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Replace pytest's exit status with the drills' (only when drills ran)."""
    outcomes = session.config.stash[_OUTCOMES]
    if not outcomes:
        return
    # An undo record this run wrote and still holds: a fault whose rollbacks failed.
    left = any(
        record.harness_pid == os.getpid()
        for target in session.config.stash[_TARGETS]
        for record in undo.pending(target, include_live=True)
    )
    session.exitstatus = exit_code(outcomes, left, int(exitstatus))
