"""Fixtures of the report tests: real run folders (trimmed copies of drills) and a small
sample pytest-bdd project whose drills attach that evidence, run once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
RUNS = DATA / "runs"
PASS_ZONE = RUNS / "20261125-143903-test-zone-b-failure-and-traffic-fails-over-goes-down"
FAIL_ZONE = RUNS / "20261125-135240-test-zone-b-failure-and-traffic-fails-over-goes-down"
PASS_CRASH = RUNS / "20261125-143931-test-a-crashlooping-release-of-orders-is-kept-out-of-traffic"


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    """A writable copy of the passing zone-failure drill's run folder."""
    dst = tmp_path / "runs" / PASS_ZONE.name
    shutil.copytree(PASS_ZONE, dst)
    return dst


@pytest.fixture
def fail_copy(tmp_path: Path) -> Path:
    """A writable copy of the zone-failure drill that breached against the fragile target."""
    dst = tmp_path / "runs" / FAIL_ZONE.name
    shutil.copytree(FAIL_ZONE, dst)
    return dst


FEATURE = """\
@crash_loop @nightly @severity:critical @runbook:https://runbooks.example.org/crash-loop
Feature: Service crash loop
  Replays recorded drills so the report can be checked without a platform.

  Scenario: A crash-looping release of orders is kept out of traffic
    Given load of 40 requests per second from the "steady" profile
    Then the recorded drill "{pass_crash}" is reported

  @severity:minor
  Scenario: Zone b goes down against the fragile target
    Given load of 40 requests per second from the "steady" profile
    Then the recorded drill "{fail_zone}" is reported
    And it breached its objectives

  Scenario: The fault could not be applied
    Given load of 20 requests per second from the "shop" profile
    Then the recorded drill "{pass_zone}" is reported
    And its fault was not applied
"""

STEPS = """\
import os
import shutil
from pathlib import Path

import pytest
from pytest_bdd import given, parsers, scenarios, then

from shakeout.errors import FaultError, SLOBreach
from shakeout.report.evidence import attach_drill_evidence

scenarios("sample.feature")


@pytest.fixture
def drill(request):
    box = {}
    yield box
    # What the real drill fixture does after Drill.close() wrote the run folder.
    src = Path(box["src"])
    dst = Path(os.environ["SHAKEOUT_REPORTS_DIR"]) / "runs" / src.name
    shutil.copytree(src, dst, dirs_exist_ok=True)
    attach_drill_evidence(dst, "local", request.node.nodeid)


@given(parsers.parse('load of {rate:d} requests per second from the "{profile}" profile'))
def load(drill, rate, profile):
    drill["rate"] = rate


@then(parsers.parse('the recorded drill "{src}" is reported'))
def recorded(drill, src):
    drill["src"] = src


@then("it breached its objectives")
def breached():
    raise SLOBreach("SLO breached: checkout error rate < 1% over the drill: observed 45.05%")


@then("its fault was not applied")
def not_applied():
    raise FaultError("experiment scenarios/zone_outage.json: the method failed")
"""


@dataclass(frozen=True)
class SampleRun:
    """The outcome of one run of the sample project."""

    project: Path
    reports: Path
    results: Path
    junit: Path
    proc: subprocess.CompletedProcess[str]


def run_sample(project: Path, extra: list[str] | None = None) -> SampleRun:
    """Run the sample drills with the report plugin (in its own pytest process)."""
    reports = project / "reports"
    results = reports / "allure-results"
    junit = reports / "junit.xml"
    env = {
        **os.environ,
        "SHAKEOUT_REPORTS_DIR": str(reports),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "160",
    }
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:locust",  # its pytest plugin would import locust (gevent) into this process
        "-p",
        "no:cacheprovider",
        "-p",
        "steps.report_plugin",
        "--alluredir",
        str(results),
        "--clean-alluredir",
        "--junitxml",
        str(junit),
        "test_sample.py",
        *(extra or []),
    ]
    proc = subprocess.run(
        cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return SampleRun(project, reports, results, junit, proc)


def make_sample(project: Path) -> Path:
    """Write the sample project (a feature, its steps, a pytest.ini) into ``project``."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "sample.feature").write_text(
        FEATURE.format(pass_crash=PASS_CRASH, fail_zone=FAIL_ZONE, pass_zone=PASS_ZONE),
        encoding="utf-8",
    )
    (project / "test_sample.py").write_text(STEPS, encoding="utf-8")
    (project / "pytest.ini").write_text(
        textwrap.dedent(
            """\
            [pytest]
            addopts = --strict-markers
            markers =
                crash_loop: family
                nightly: suite
            """
        ),
        encoding="utf-8",
    )
    return project


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    """The sample drills, run once for the whole session."""
    run = run_sample(make_sample(tmp_path_factory.mktemp("sample")))
    assert run.proc.returncode == 1, run.proc.stdout + run.proc.stderr
    return run
