"""pytest plugin of the drill reports (registered from the root ``conftest.py``).

- collection: ``@severity:<level>``, ``@runbook:<url>`` and ``@epic:<name>`` tags become Allure
  labels and links instead of pytest markers;
- scenario start: Allure labels (epic = scenario family, story, target) and parameters
  (target, load profile, rate);
- each drill's end: ``shakeout.report.evidence.attach_drill_evidence`` (called by the drill
  fixture) attaches the evidence; the verdict goes into the JUnit XML as properties;
- session end: ``categories.json``, ``environment.properties`` and ``executor.json`` in the Allure
  results, the scorecard under ``reports/``, the HTML report with ``--allure-html DIR``, and the
  table of drills on the terminal.

Nothing here may fail a drill: report problems are logged and shown as warnings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import allure
import pytest
from pytest_bdd.parser import Feature, Scenario

from shakeout.report import evidence
from shakeout.report.allure_files import (
    category_of,
    environment,
    family,
    git_sha,
    parse_keyed_tag,
    write_categories,
    write_environment,
    write_executor,
)
from shakeout.report.build import build_html
from shakeout.report.runs import read_run
from shakeout.report.scorecard import Entry, Scorecards, entry_for
from shakeout.report.terminal import render
from shakeout.target import load_target_file

log = logging.getLogger("shakeout.report")

# The load step's wording (steps/drill_steps.py): parameters of the Allure result.
_LOAD_STEP = re.compile(
    r"load of (?P<rate>\d+) requests per second.* from the \"(?P<profile>[\w-]+)\" profile"
)

_FAILURES = pytest.StashKey[dict[str, tuple[list[str], str]]]()
_LINES = pytest.StashKey[list[str]]()
_TARGET = pytest.StashKey[str]()

# What the outcome is when a drill left no verdicts.json, from its failure's category.
_OUTCOME_OF_CATEGORY = {
    "SLO breach": "fail",
    "stop-condition abort": "aborted",
    "inconclusive": "inconclusive",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shakeout report")
    group.addoption(
        "--allure-html",
        metavar="DIR",
        default=None,
        help="after the drills, build the Allure HTML report into DIR (needs the pinned "
        "Allure CLI from `npm ci` and Java; says how to get them when missing)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FAILURES] = {}
    config.stash[_LINES] = []


@pytest.hookimpl(tryfirst=True)
def pytest_bdd_apply_tag(tag: str, function: Callable[..., object]) -> bool | None:
    """Keep the keyed tags (``severity:``, ``runbook:``, ``epic:``) from becoming markers."""
    keyed = parse_keyed_tag(tag)
    if keyed is None:
        return None
    # Validated now (a bad tag fails collection); applied at scenario start, where a
    # scenario's own @severity can win over its feature's.
    return True


def _keyed(tags: set[str], key: str) -> list[str]:
    return sorted(kv[1] for t in tags if (kv := parse_keyed_tag(t)) and kv[0] == key)


def _target_name(config: pytest.Config) -> str:
    if _TARGET not in config.stash:
        path = str(config.getoption("--target", "targets/local.yaml"))
        try:
            config.stash[_TARGET] = load_target_file(path).name
        except Exception:  # the drill plugin reports a bad target file with its own error
            config.stash[_TARGET] = Path(path).stem
    return config.stash[_TARGET]


@pytest.hookimpl(trylast=True)  # after allure-pytest-bdd scheduled the test case
def pytest_bdd_before_scenario(
    request: pytest.FixtureRequest, feature: Feature, scenario: Scenario
) -> None:
    """Labels and parameters of the drill's Allure result."""
    try:
        target = _target_name(request.config)
        allure.dynamic.epic(family(feature.tags | scenario.tags, feature.rel_filename))
        allure.dynamic.story(scenario.name)
        allure.dynamic.label("target", target)
        allure.dynamic.parameter("target", target)
        severity = _keyed(scenario.tags, "severity") or _keyed(feature.tags, "severity")
        if severity:
            allure.dynamic.severity(allure.severity_level(severity[0]))
        for url in _keyed(feature.tags | scenario.tags, "runbook"):
            allure.dynamic.link(url, name="runbook")
        for step in scenario.steps:
            if match := _LOAD_STEP.search(step.name):
                # Excluded from Allure's history id: retuning the rate keeps the trend line.
                allure.dynamic.parameter("load profile", match["profile"], excluded=True)
                allure.dynamic.parameter("rate", f"{match['rate']} rps", excluded=True)
                break
    except Exception:
        log.warning("report: could not label %s", request.node.nodeid, exc_info=True)


def _mro_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Remember why a drill failed; put its verdict into the JUnit XML's properties."""
    if call.when == "teardown":
        for rec in evidence.RECORDED:
            if rec.nodeid == item.nodeid:
                _junit_properties(item, rec)
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        failures = item.config.stash[_FAILURES]
        if item.nodeid not in failures:  # the first failure is the cause
            exc = call.excinfo.value
            failures[item.nodeid] = (_mro_names(exc), str(exc))


def _entry(config: pytest.Config, rec: evidence.Recorded) -> Entry:
    """A drill's scorecard entry; the test's own failure has the last word on the outcome."""
    failed = config.stash[_FAILURES].get(rec.nodeid or "")
    category = category_of(*failed) if failed else None
    fallback = "pass" if not failed else _OUTCOME_OF_CATEGORY.get(category or "", "error")
    try:
        entry = entry_for(read_run(rec.run_dir), fallback, category)
    except Exception:
        return Entry(rec.run_dir.name, rec.target, fallback, category=category)
    if failed and entry.outcome == "pass":
        # verdicts.json is written before the last steps; a step that failed after it wins.
        entry.outcome = fallback
    return entry


def _junit_properties(item: pytest.Item, rec: evidence.Recorded) -> None:
    entry = _entry(item.config, rec)
    run_dir = rec.run_dir
    item.user_properties.append(("shakeout.run_dir", str(run_dir)))
    item.user_properties.append(("shakeout.outcome", entry.outcome))
    if entry.category:
        item.user_properties.append(("shakeout.category", entry.category))
    if entry.recovery_s is not None:
        item.user_properties.append(("shakeout.recovery_s", entry.recovery_s))
    if entry.budget_burned_pct is not None:
        item.user_properties.append(("shakeout.budget_burned_pct", entry.budget_burned_pct))


def pytest_sessionstart(session: pytest.Session) -> None:
    evidence.RECORDED.clear()


def _entries(config: pytest.Config) -> list[Entry]:
    return [_entry(config, rec) for rec in evidence.RECORDED]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Categories, environment, scorecard and (with ``--allure-html``) the HTML report."""
    config = session.config
    lines = config.stash[_LINES]
    if not evidence.RECORDED or hasattr(config, "workerinput"):
        return
    root = config.rootpath
    try:
        entries = _entries(config)
        target = _target_name(config)
        reports = evidence.reports_dir()
        _, comparisons = Scorecards(reports).save(
            entries, {"target": target, "git_sha": git_sha(root)}
        )
        width = config.get_terminal_writer().fullwidth
        lines.append(render(entries, comparisons, width=max(width, 100)))
        regressions = sum(bool(c.regressions) for c in comparisons)
        lines.append(
            f"scorecard: {reports / 'scorecard.md'} ({regressions} regression(s) "
            "against the previous run)"
        )
        results = config.getoption("allure_report_dir", None)
        if results:
            results_dir = Path(results)
            write_categories(results_dir)
            target_file = str(config.getoption("--target", ""))
            write_environment(results_dir, environment(target, target_file, root))
            write_executor(results_dir, "ShakeOut drills", f"{target} {git_sha(root)}")
            html = config.getoption("--allure-html")
            if html:
                lines.append(build_html(results_dir, Path(html), root).message)
        elif config.getoption("--allure-html"):
            lines.append("--allure-html needs --alluredir (the results to build from)")
    except Exception as exc:  # never turn a finished run into an internal error
        log.warning("report: session report failed", exc_info=True)
        lines.append(f"report: session report failed: {exc!r}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The table of drills and where the reports are."""
    lines = terminalreporter.config.stash.get(_LINES, [])
    if not lines:
        return
    terminalreporter.section("shakeout report")
    for line in lines:
        terminalreporter.write_line(line.rstrip("\n"))
