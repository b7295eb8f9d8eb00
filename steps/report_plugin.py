"""pytest plugin of the drill reports (registered from the root ``conftest.py``).

- collection: ``@severity:<level>``, ``@runbook:<url>`` and ``@epic:<name>`` tags become Allure
  labels and links instead of pytest markers;
- scenario start: Allure labels (epic = scenario family, story, target) and parameters
  (target, load profile, rate);
- each scenario's JUnit testcase: named by the scenario's title with its example's values (as
  Allure shows it), its classname the feature's name;
- each drill's end: ``shakeout.report.evidence.attach_drill_evidence`` (called by the drill
  fixture) attaches the evidence; the verdict goes into the JUnit XML as properties;
- session end: ``categories.json``, ``environment.properties`` and ``executor.json`` in the Allure
  results, the scorecard under ``reports/``, the HTML report with ``--allure-html DIR``, and the
  table of drills on the terminal (plain rows in a CI log, see ``--shakeout-table``).

Nothing here may fail a drill: report problems are logged and shown as warnings.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
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
from shakeout.report.terminal import render, render_plain
from shakeout.target import load_target_file
from steps.plugin import scenario_template

log = logging.getLogger("shakeout.report")

# The load step's wording (steps/drill_steps.py): parameters of the Allure result.
_LOAD_STEP = re.compile(
    r"load of (?P<rate>\d+) requests per second.* from the \"(?P<profile>[\w-]+)\" profile"
)

_FAILURES = pytest.StashKey[dict[str, tuple[list[str], str]]]()
_LINES = pytest.StashKey[list[str]]()
_TARGET = pytest.StashKey[str]()
# Each scenario's node id -> (title as Allure shows it, feature's name).
_TITLES = pytest.StashKey[dict[str, tuple[str, str]]]()

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
    group.addoption(
        "--shakeout-table",
        choices=("auto", "rich", "plain"),
        default="auto",
        help="the end-of-run table of drills: 'rich' (a boxed table fitted to the terminal), "
        "'plain' (one line per drill that never wraps, for logs) or 'auto' (plain when "
        "stdout is not a terminal or $CI is set; the default)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FAILURES] = {}
    config.stash[_LINES] = []
    config.stash[_TITLES] = {}


def scenario_title(item: pytest.Item) -> tuple[str, str] | None:
    """The title of the scenario an item runs, as Allure shows it (an outline's rendered with
    its example's values), and its feature's name; None when the item is not a scenario.

    An example whose title is the same as another's of its outline (the title names none of
    the columns that differ) gets its example id appended: ``Zone b fails over [freezes]``.
    """
    found = scenario_template(item)
    if found is None:
        return None
    template, example = found
    callspec = getattr(item, "callspec", None)
    title = template.render(example).name
    if callspec is not None and example:
        titles = [template.render(c).name for ex in template.examples for c in ex.as_contexts()]
        if titles.count(title) > 1:
            title = f"{title} [{callspec.id}]"
    feature = template.feature
    return title, feature.name or Path(feature.filename).stem


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note each scenario's title for the JUnit testcase, the scorecard and the table."""
    titles = config.stash[_TITLES]
    for item in items:
        try:
            named = scenario_title(item)
        except Exception:  # a title is not worth a failed collection
            log.warning("report: no title for %s", item.nodeid, exc_info=True)
            continue
        if named is not None:
            titles[item.nodeid] = named


@pytest.fixture(autouse=True)
def _shakeout_junit_testcase(request: pytest.FixtureRequest) -> None:
    """A scenario's JUnit testcase takes its title as ``name`` and its feature as
    ``classname``, through pytest's ``record_xml_attribute``; its node id (what ``pytest``
    and ``-k`` take) stays in the property ``shakeout.test``."""
    config = request.config
    named = config.stash[_TITLES].get(request.node.nodeid)
    if named is None or config.getoption("xmlpath", None) is None:
        return
    title, feature = named
    prefix = config.getoption("junitprefix", None)
    request.node.user_properties.append(("shakeout.test", request.node.nodeid))
    try:
        with warnings.catch_warnings():
            # The fixture is marked experimental, and warns that junit_family xunit2 drops
            # the attributes it sets: not these two, the testcase attributes xunit2 keeps.
            warnings.filterwarnings("ignore", "record_xml_attribute is", pytest.PytestWarning)
            record: Callable[[str, object], None] = request.getfixturevalue("record_xml_attribute")
        record("classname", f"{prefix}.{feature}" if prefix else feature)
        record("name", title)
    except Exception:
        log.warning("report: JUnit name of %s not set", request.node.nodeid, exc_info=True)


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
    title, feature = config.stash[_TITLES].get(rec.nodeid or "", (None, None))
    try:
        entry = entry_for(read_run(rec.run_dir), fallback, category, title, feature)
    except Exception:
        return Entry(
            rec.run_dir.name, rec.target, fallback, category=category, title=title, feature=feature
        )
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


def _plain_table(config: pytest.Config) -> bool:
    """Plain rows unless on a terminal: a CI log has no width to fit a table to."""
    choice = config.getoption("shakeout_table", "auto")
    if choice != "auto":
        return bool(choice == "plain")
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return not sys.stdout.isatty()


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
        if _plain_table(config):
            lines.append(render_plain(entries, comparisons))
        else:
            writer = config.get_terminal_writer()
            lines.append(
                render(
                    entries, comparisons, width=max(writer.fullwidth, 100), color=writer.hasmarkup
                )
            )
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
