"""Allure's side files, the tag conventions, the plugin end to end, the HTML build."""

from __future__ import annotations

import json
import re
import shutil
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from allure_commons.utils import format_exception

from conftest import ROOT, SampleRun, make_sample, run_sample
from shakeout.errors import (
    ConfigError,
    FaultError,
    LoadError,
    PlatformUnreachable,
    SLOBreach,
    StopConditionAbort,
)
from shakeout.report.allure_files import (
    CATEGORIES,
    category_of,
    family,
    parse_keyed_tag,
    write_environment,
)
from shakeout.report.build import build_html, missing_tools


def _allure_category(exc: BaseException, status: str) -> str | None:
    """Which category Allure files a result under: the first whose regex matches in full
    (Java's Pattern.matches) the message Allure recorded for that exception."""
    message = format_exception(type(exc), exc)
    for cat in CATEGORIES:
        if status not in cat["matchedStatuses"]:  # type: ignore[operator]
            continue
        regex = cat.get("messageRegex")
        if regex is None or re.fullmatch(str(regex), message):
            return str(cat["name"])
    return None


@pytest.mark.parametrize(
    ("exc", "status", "category", "short"),
    [
        (SLOBreach("SLO breached: checkout p95 < 300 ms: observed 412 ms"), "failed",
         "SLO breach (resilience regression)", "SLO breach"),
        (SLOBreach("2 objective(s) breached:\n  a\n  b"), "failed",
         "SLO breach (resilience regression)", "SLO breach"),
        (SLOBreach("SLO inconclusive: checkout p95: 3 requests"), "failed",
         "Inconclusive measurement", "inconclusive"),
        (SLOBreach("2 objective(s) not met:\n  SLO inconclusive: a\n  SLO breached: b"), "failed",
         "SLO breach (resilience regression)", "SLO breach"),
        (StopConditionAbort("aborted by stop condition: error rate 40% over 2 s"), "failed",
         "Stop-condition abort", "stop-condition abort"),
        (FaultError("experiment x: rollback failed"), "broken",
         "Fault not applied or rollback failed", "fault not applied or rollback failed"),
        (PlatformUnreachable("control API at 127.0.0.1:1 did not answer"), "broken",
         "Target unreachable", "target unreachable"),
        (LoadError("locust exited with 1"), "broken", "Harness error", "harness error"),
        (ConfigError("targets/x.yaml:3: bad"), "broken", "Harness error", "harness error"),
        (AssertionError("assert drill.platform.gateway_url"), "failed", "Harness error",
         "harness error"),
    ],
)  # fmt: skip
def test_categories_tell_regressions_from_harness_errors(
    exc: BaseException, status: str, category: str, short: str
) -> None:
    assert _allure_category(exc, status) == category
    assert category_of([c.__name__ for c in type(exc).__mro__], str(exc)) == short


def test_keyed_tags() -> None:
    assert parse_keyed_tag("crash_loop") is None
    assert parse_keyed_tag("severity:critical") == ("severity", "critical")
    assert parse_keyed_tag("runbook:https://x.example/a") == ("runbook", "https://x.example/a")
    with pytest.raises(ConfigError, match="unknown severity 'urgent'"):
        parse_keyed_tag("severity:urgent")
    with pytest.raises(ConfigError, match="empty value"):
        parse_keyed_tag("runbook:")
    assert family({"crash_loop", "nightly", "quick", "severity:minor"}, "f.feature") == "crash loop"
    assert family({"nightly", "epic:Zones"}, "zone.feature") == "Zones"
    assert family({"nightly"}, "features/zone_failure.feature") == "zone failure"


def test_environment_properties_escape(tmp_path: Path) -> None:
    path = write_environment(tmp_path, {"target.file": "C:\\t=1", "note": "a\nb"})
    assert path.read_text() == "target.file=C\\:\\\\t\\=1\nnote=a\\nb\n"


def test_plugin_writes_labels_evidence_and_side_files(sample: SampleRun) -> None:
    results = {}
    for path in sample.results.glob("*-result.json"):
        data = json.loads(path.read_text())
        results[data["name"]] = data
    assert set(results) == {
        "A crash-looping release of orders is kept out of traffic",
        "Zone b goes down against the fragile target",
        "The fault could not be applied",
    }
    ok = results["A crash-looping release of orders is kept out of traffic"]
    labels = {(lb["name"], lb["value"]) for lb in ok["labels"]}
    assert {("epic", "crash loop"), ("severity", "critical"), ("target", "local"),
            ("feature", "Service crash loop"), ("tag", "nightly")} <= labels  # fmt: skip
    assert ok["links"] == [
        {"type": "link", "url": "https://runbooks.example.org/crash-loop", "name": "runbook"}
    ]
    params = {p["name"]: p["value"] for p in ok["parameters"]}
    assert params == {"target": "'local'", "load profile": "'steady'", "rate": "'40 rps'"}
    assert [a["name"] for a in ok["attachments"]] == [
        "SLO verdicts",
        "drill chart",
        "Chaos Toolkit journal (crash_loop)",
        "load summary",
        "platform events",
        "drill summary",
    ]
    chart = next(a for a in ok["attachments"] if a["name"] == "drill chart")
    assert (sample.results / chart["source"]).read_bytes()[:4] == b"\x89PNG"
    # A scenario's own @severity wins over its feature's.
    bad = results["Zone b goes down against the fragile target"]
    assert [lb["value"] for lb in bad["labels"] if lb["name"] == "severity"] == ["minor"]
    assert json.loads((sample.results / "categories.json").read_text()) == CATEGORIES
    env = (sample.results / "environment.properties").read_text()
    assert "target=local\n" in env
    assert "version.chaostoolkit=" in env
    assert "git.sha=" in env
    assert json.loads((sample.results / "executor.json").read_text())["name"] == "ShakeOut drills"


def test_plugin_terminal_table_junit_and_scorecard(sample: SampleRun) -> None:
    out = sample.proc.stdout
    assert "shakeout report" in out
    # stdout is a pipe here, as in a CI job: the plain table, one whole line per drill.
    fragile = next(line for line in out.splitlines() if "against the fragile target" in line)
    assert fragile.startswith("fail (SLO breach) ")
    assert "observed 45.05% (91 requests) |    7.2 s | 450.5% | first run" in fragile
    # The drill's verdicts.json says pass, but a later step raised FaultError: the run's own
    # failure wins.
    assert "error (fault not applied or rollback failed) | The fault could not be applied" in out
    assert "HTML report not built" not in out  # not asked for (no --allure-html)
    cases = {c.get("name"): c for c in ET.parse(sample.junit).getroot().iter("testcase")}
    assert set(cases) == {
        "A crash-looping release of orders is kept out of traffic",
        "Zone b goes down against the fragile target",
        "The fault could not be applied",
    }  # the titles, as Allure names the results (test_plugin_writes_labels_...)
    assert {c.get("classname") for c in cases.values()} == {"Service crash loop"}
    props = {
        name: {p.get("name"): p.get("value") for p in case.iter("property")}
        for name, case in cases.items()
    }
    fragile_props = props["Zone b goes down against the fragile target"]
    assert fragile_props["shakeout.test"] == (
        "test_sample.py::test_zone_b_goes_down_against_the_fragile_target"
    )
    assert fragile_props["shakeout.outcome"] == "fail"
    assert fragile_props["shakeout.category"] == "SLO breach"
    assert fragile_props["shakeout.recovery_s"] == "7.2"
    assert props["The fault could not be applied"]["shakeout.outcome"] == "error"
    card = json.loads((sample.reports / "scorecard.json").read_text())
    assert [s["outcome"] for s in card["scenarios"]] == ["pass", "fail", "error"]
    # The scorecard keeps the pytest name (its key across runs) beside the title.
    assert [(s["drill"], s["title"], s["feature"]) for s in card["scenarios"]][1] == (
        "test_zone_b_failure_and_traffic_fails_over[goes down]",  # the recorded run's
        "Zone b goes down against the fragile target",
        "Service crash loop",
    )
    md = (sample.reports / "scorecard.md").read_text()
    assert "| Zone b goes down against the fragile target | fail |" in md


@pytest.fixture(scope="module")
def other_sample(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    """The sample drills run once more, with the options the first run leaves at defaults."""
    project = make_sample(tmp_path_factory.mktemp("other"))
    extra = ["--allure-html", str(project / "reports" / "allure-report")]
    extra += ["--shakeout-table", "rich", "--junit-prefix", "nightly"]
    return run_sample(project, extra)


def test_plugin_rich_table_on_request_and_junit_prefix(other_sample: SampleRun) -> None:
    assert other_sample.proc.returncode == 1
    out = other_sample.proc.stdout
    assert "┃ scenario" in out  # the boxed table, fitted to COLUMNS=160
    assert "│ The fault could not be applied " in out
    assert "verdict                                      | scenario" not in out
    # pytest's --junit-prefix still comes first in the classname.
    cases = ET.parse(other_sample.junit).getroot().iter("testcase")
    assert {c.get("classname") for c in cases} == {"nightly.Service crash loop"}


def test_missing_cli_says_how_to_build(other_sample: SampleRun, tmp_path: Path) -> None:
    run = other_sample
    assert run.proc.returncode == 1  # the drills' own failures, nothing more
    # The sample project has no node_modules: the report says what to install.
    assert "HTML report not built: missing the pinned Allure CLI" in run.proc.stdout
    assert "npm ci" in run.proc.stdout
    result = build_html(run.results, tmp_path / "r", tmp_path)
    assert not result.built
    assert "tox -e report" in result.message


def test_html_report_keeps_history_between_runs(sample: SampleRun, tmp_path: Path) -> None:
    missing = missing_tools(ROOT)
    if missing:
        pytest.skip("cannot build the HTML report: missing " + "; ".join(missing))
    report = tmp_path / "allure-report"

    def night(n: int) -> Path:
        results = tmp_path / f"results-{n}"
        shutil.copytree(sample.results, results)
        for path in results.glob("*-result.json"):  # a new run: new result uuids
            path.rename(path.with_name(f"{uuid.uuid4()}-result.json"))
        return results

    def points() -> int:
        return len(json.loads((report / "history" / "history-trend.json").read_text()))

    first = build_html(night(1), report, ROOT)
    assert first.built, first.message
    assert points() == 1
    shutil.rmtree(report)  # the kept copy under allure-history survives
    second = night(2)
    assert build_html(second, report, ROOT).built
    assert points() == 2
    # Rebuilding the same night (tox -e report) adds no point.
    assert build_html(second, report, ROOT).built
    assert points() == 2
    trend = json.loads((report / "history" / "history-trend.json").read_text())
    assert trend[0]["data"] == {"failed": 1, "broken": 1, "skipped": 0, "passed": 1,
                                "unknown": 0, "total": 3}  # fmt: skip
    assert (tmp_path / "allure-history" / "history-trend.json").exists()
    assert (report / "index.html").exists()
