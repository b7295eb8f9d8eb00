"""Drills are named by their scenario titles in the JUnit XML, as Allure names them: a dry run
of features written with the step library (every scenario skipped, no platform started) still
writes a testcase per scenario."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import ROOT

ZONES = """\
@zone
Feature: Names in the JUnit XML

  Background:
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile

  Scenario Outline: Zone b <failure> and traffic fails over
    When zone "b" <failure> for 6 seconds
    Then the "checkout" journey's error rate stays below 1%

    Examples:
      | failure   |
      | goes down |
      | freezes   |

  Scenario Outline: A canary of catalog is rolled back
    When a canary of "catalog" <change> takes 20% of traffic for 15 seconds
    Then the release of "catalog" was rolled back within 10 seconds

    Examples:
      | change                  |
      | failing 50% of requests |
      | answering 400 ms slower |
"""

OTHER = """\
@zone
Feature: Another feature

  Scenario: Zone b goes down and traffic fails over
    Given the target is up and every replica is ready
    And load of 40 requests per second from the "steady" profile
    When zone "b" goes down for 6 seconds
    Then the "checkout" journey's error rate stays below 1%
"""


def _dry_run(project: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    features = project / "features"
    features.mkdir(parents=True)
    (features / "zones.feature").write_text(ZONES, encoding="utf-8")
    (features / "other.feature").write_text(OTHER, encoding="utf-8")
    (project / "conftest.py").write_text(
        'pytest_plugins = ["steps.plugin", "steps.drill_steps", "steps.report_plugin"]\n',
        encoding="utf-8",
    )
    (project / "test_names.py").write_text(
        "from pytest_bdd import scenarios\n\nscenarios('features')\n", encoding="utf-8"
    )
    junit = project / "junit.xml"
    command = [sys.executable, "-m", "pytest", str(project / "test_names.py"), "-q"]
    command += ["-p", "no:cacheprovider", "-p", "no:locust", "--rootdir", str(project)]
    command += ["--target", str(ROOT / "targets" / "local.yaml"), "--dry-run"]
    command += ["-W", "error", "--junitxml", str(junit), *extra]  # warnings fail, as in tox
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SHAKEOUT_REPORTS_DIR": str(project / "reports"),
            "SHAKEOUT_RUNTIME_DIR": str(project / "runtime"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc, junit


def _cases(junit: Path) -> list[ET.Element]:
    return list(ET.parse(junit).getroot().iter("testcase"))


def test_junit_testcases_are_named_by_scenario_title(tmp_path: Path) -> None:
    proc, junit = _dry_run(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 skipped" in proc.stdout
    cases = _cases(junit)
    names = [(c.get("classname"), c.get("name")) for c in cases]
    here, canary = "Names in the JUnit XML", "A canary of catalog is rolled back"
    assert sorted(names) == sorted(
        [
            # An outline's examples: the title with the example's values, as Allure shows it.
            (here, "Zone b goes down and traffic fails over"),
            (here, "Zone b freezes and traffic fails over"),
            # An outline whose title names no column: the example's id tells them apart.
            (here, f"{canary} [failing 50% of requests]"),
            (here, f"{canary} [answering 400 ms slower]"),
            # The same title in another feature: told apart by the classname (the feature).
            ("Another feature", "Zone b goes down and traffic fails over"),
        ]
    )
    # What pytest takes on its command line is kept as a property of each testcase.
    tests = {
        c.get("name"): p.get("value")
        for c in cases
        if c.get("classname") == here
        for p in c.iter("property")
        if p.get("name") == "shakeout.test"
    }
    assert tests["Zone b freezes and traffic fails over"] == (
        "test_names.py::test_zone_b_failure_and_traffic_fails_over[freezes]"
    )
    assert all(case.find("skipped") is not None for case in cases)  # a dry run runs nothing
