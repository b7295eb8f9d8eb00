"""pytest wiring of the drills: the ``--target`` option, the platform and drill fixtures.

Registered from the root ``conftest.py`` with ``pytest_plugins``, so every feature sees the steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_bdd.exceptions import StepDefinitionNotFoundError
from pytest_bdd.parser import Feature, Scenario, Step
from pytest_bdd.scenario import get_step_function

from shakeout.chaos import undo
from shakeout.drill import Drill
from shakeout.plan import plan_scenario
from shakeout.report.evidence import attach_drill_evidence
from shakeout.session import TargetSession
from shakeout.target import Target, load_target_file, open_session


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shakeout")
    group.addoption(
        "--target",
        default=os.environ.get("SHAKEOUT_TARGET_FILE", "targets/local.yaml"),
        help="target file the drills run against (default: targets/local.yaml)",
    )
    group.addoption(
        "--dry-run",
        action="store_true",
        help="print what each scenario would do (faults, experiments, blast radius), run none",
    )
    group.addoption(
        "--allow-production",
        action="store_true",
        help="allow a Kubernetes context whose name matches the target's production patterns",
    )
    group.addoption(
        "--max-replicas",
        type=int,
        default=None,
        help="refuse a fault whose blast radius exceeds this many replicas",
    )


def pytest_bdd_before_scenario(
    request: pytest.FixtureRequest, feature: Feature, scenario: Scenario
) -> None:
    """Refuse a scenario with an unknown step before its first step (and any fault) runs."""
    # pytest-bdd only finds out at the unknown step itself, possibly after a fault was injected.
    for step in scenario.steps:
        if get_step_function(request=request, step=step) is None:
            raise StepDefinitionNotFoundError(
                f"{feature.rel_filename}:{step.line_number}: no step definition matches "
                f"{step.keyword.strip()} {step.name!r} (see docs for the step vocabulary)"
            )
    # Resolve every fault (and its blast radius) before the first step runs.
    config = request.config
    target: Target = request.getfixturevalue("target_spec")
    planned = plan_scenario(
        scenario,
        feature.rel_filename,
        target,
        str(config.getoption("--target")),
        config.getoption("--max-replicas"),
    )
    if config.getoption("--dry-run"):
        lines = [f"dry run of {scenario.name!r} on {target.name} ({target.kind}):"]
        lines += [
            f"  {f.word} -> {f.experiment} {f.variables}; reaches {f.reach}" for f in planned.faults
        ]
        pytest.skip("\n".join(lines))
    session: TargetSession = request.getfixturevalue("platform")
    for fault in planned.faults:  # e.g. a Chaos Mesh fault on a cluster without it
        reason = session.fault_skip_reason(Path(fault.experiment))
        if reason:
            pytest.skip(reason)


def pytest_bdd_before_step(
    request: pytest.FixtureRequest, feature: Feature, scenario: Scenario, step: Step
) -> None:
    """End the load, explicitly, before a scenario's first ``Then``: the checks judge an
    ended load and never stop it themselves."""
    if step.type != "then" or "drill" not in request.fixturenames:
        return
    drill: Drill = request.getfixturevalue("drill")
    if drill.load is not None and not drill.load.ended:
        drill.end_load()


_CALL_ERROR = pytest.StashKey[BaseException]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep the exception a scenario's steps ended on, for the drill's outcome."""
    if call.when == "call" and call.excinfo is not None:
        item.stash[_CALL_ERROR] = call.excinfo.value
    return (yield)


@pytest.fixture(scope="session")
def target_file(pytestconfig: pytest.Config) -> Path:
    """The target file given with ``--target``."""
    return Path(pytestconfig.getoption("--target"))


@pytest.fixture(scope="session")
def target_spec(target_file: Path) -> Target:
    """The target file, validated once before anything starts."""
    return load_target_file(target_file)


def _finish_pending(target: str) -> None:
    """Finish the rollbacks of an earlier run that was killed in the middle of a fault."""
    reports = Path(os.environ.get("SHAKEOUT_REPORTS_DIR", "reports"))
    for record in undo.pending(target):
        undo.finish(record, reports / "cleanup")


@pytest.fixture(scope="session")
def platform(
    target_file: Path, target_spec: Target, pytestconfig: pytest.Config
) -> Iterator[TargetSession]:
    """The target the drills run against. The embedded platform is started (and later
    stopped) here when it was not running; a Kubernetes target is checked against its
    allowlists first, and its port-forward is closed at the end."""
    allow = bool(pytestconfig.getoption("--allow-production"))
    with open_session(target_file, target_spec, allow_production=allow) as session:
        _finish_pending(session.target)
        yield session


@pytest.fixture
def drill(platform: TargetSession, request: pytest.FixtureRequest) -> Iterator[Drill]:
    """The engine for one scenario; its load is stopped and its results saved however it ends."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def progress(line: str) -> None:
        """Live progress on the terminal, outside pytest's output capture."""
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"  [shakeout] {line}")

    reports = Path(os.environ.get("SHAKEOUT_REPORTS_DIR", "reports"))
    run = Drill(platform, request.node.name, reports, progress)
    try:
        yield run
    finally:
        try:
            run.close(request.node.stash.get(_CALL_ERROR, None))
        finally:  # the evidence is attached even when cleaning up (e.g. cluster workers) failed
            attach_drill_evidence(run.run_dir, platform.target, request.node.nodeid)
