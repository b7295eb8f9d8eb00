"""pytest wiring of a game day (``--gameday DIR``, what ``shakeout gameday`` runs).

Before each scenario: its plan and the target's steady state are published and the
facilitator's go is waited for; before each fault step (step mode, unless ``--gameday-auto``)
the next fault is announced and waited for; while a fault runs, the facilitator may hold it or
end it early. The drill engine does the rest as in any run (see :mod:`shakeout.gameday.live`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.parser import Feature, Scenario, Step

from shakeout import faults
from shakeout.chaos.hold import HOLD_ENV
from shakeout.drill import Drill
from shakeout.gameday.live import GameDayRun
from shakeout.gameday.record import checklist_of, runbooks_of
from shakeout.plan import PlannedFault, plan_scenario
from shakeout.session import TargetSession
from shakeout.target import load_target_file

_RUN = pytest.StashKey[GameDayRun]()
_FAULTS = pytest.StashKey[dict[int, PlannedFault]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shakeout game day")
    group.addoption(
        "--gameday",
        metavar="DIR",
        default=None,
        help="run as a game day driven by `shakeout gameday` through DIR (live view, controls)",
    )
    group.addoption(
        "--gameday-auto",
        action="store_true",
        help="with --gameday: run through, without waiting for go before each fault",
    )


def pytest_configure(config: pytest.Config) -> None:
    folder = config.getoption("--gameday", None)
    if folder:
        target = load_target_file(Path(config.getoption("--target")))
        os.environ[HOLD_ENV] = folder  # the faults' chaos runs read it (shakeout.chaos.hold)
        config.stash[_RUN] = GameDayRun(
            Path(folder),
            auto=bool(config.getoption("--gameday-auto")),
            hold_cap_s=target.game_day.max_hold_s,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is not None:
        run.close()


def _ticker(drill: Drill) -> Callable[[], None] | None:
    return drill.load.report if drill.load is not None else None


def _checks(steps: list[str]) -> list[str]:
    """The steps from the first ``Then`` on: what will be judged."""
    first = next((i for i, s in enumerate(steps) if s.startswith("Then ")), len(steps))
    return steps[first:]


@pytest.hookimpl(trylast=True)
def pytest_bdd_before_scenario(
    request: pytest.FixtureRequest, feature: Feature, scenario: Scenario
) -> None:
    """Publish the plan and the steady state; wait for go (a no-go skips the scenario)."""
    run = request.config.stash.get(_RUN, None)
    if run is None:
        return
    config = request.config
    target = str(config.getoption("--target"))
    plan = plan_scenario(scenario, feature.rel_filename, load_target_file(target), target)
    request.node.stash[_FAULTS] = {f.line: f for f in plan.faults}
    session: TargetSession = request.getfixturevalue("platform")
    drill: Drill = request.getfixturevalue("drill")
    met, problem = session.steady_state()
    tags = sorted(scenario.tags | feature.tags)
    run.begin(
        {
            "feature": feature.name,
            "feature_file": feature.rel_filename,
            "scenario": scenario.name,
            "target": session.target,
        },
        {
            "steps": plan.steps,
            "faults": [
                {"step": f.step, "word": f.word, "reach": f.reach, "experiment": f.experiment}
                for f in plan.faults
            ],
            "objectives": _checks(plan.steps)
            + (drill.slo.thresholds() if drill.slo is not None else []),
            "runbooks": runbooks_of(tags),
            "checklist": checklist_of(feature.description),
            "steady_state": "met" if met else f"NOT met: {problem}",
        },
        drill,
    )
    if not run.wait_for_go(f"go / no-go: start {scenario.name!r} on {session.target}", "start"):
        pytest.skip("no-go: the facilitator did not start the drill")


def pytest_bdd_before_step(
    request: pytest.FixtureRequest, feature: Feature, scenario: Scenario, step: Step
) -> None:
    """Announce the step; before a fault, wait for go (step mode)."""
    run = request.config.stash.get(_RUN, None)
    if run is None:
        return
    index = scenario.steps.index(step) + 1
    run.step(index, len(scenario.steps), step.keyword.strip(), step.name)
    planned = request.node.stash.get(_FAULTS, {}).get(step.line_number)
    if planned is None or faults.find(step.name) is None:
        return
    drill: Drill = request.getfixturevalue("drill")
    prompt = f"go: next, {step.name} (reaches {planned.reach})"
    if not run.wait_for_go(prompt, f"{step.keyword.strip()} {step.name}", _ticker(drill)):
        pytest.skip(f"no-go before {step.name!r}: the facilitator stopped the drill there")
    duration = planned.variables.get("duration_s")
    run.fault(
        planned.word,
        f"{step.keyword.strip()} {step.name}",
        planned.reach,
        float(duration) if isinstance(duration, int | float) else None,
    )


def _fault_over(request: pytest.FixtureRequest, step: Step) -> None:
    run = request.config.stash.get(_RUN, None)
    if run is not None and step.line_number in request.node.stash.get(_FAULTS, {}):
        run.fault_done()


def pytest_bdd_after_step(request: pytest.FixtureRequest, step: Step, **_: Any) -> None:
    """A fault step ended: its rollbacks are played."""
    _fault_over(request, step)


def pytest_bdd_step_error(request: pytest.FixtureRequest, step: Step, **_: Any) -> None:
    """A fault step failed: its rollbacks are played all the same."""
    _fault_over(request, step)


def _end(run: GameDayRun) -> None:
    drill = run.drill
    if drill is None:
        return
    outcome = None
    verdicts = drill.run_dir / "verdicts.json"
    if verdicts.is_file():
        outcome = json.loads(verdicts.read_text(encoding="utf-8")).get("outcome")
    run.end(outcome)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the drill fixture closed the drill: keep the scenario for the record."""
    try:
        return (yield)
    finally:
        run = item.config.stash.get(_RUN, None)
        if run is not None:
            _end(run)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """An interrupted run (abort: SIGINT) tears its fixtures down here, not in the item's
    teardown: the scenario is kept all the same."""
    run = session.config.stash.get(_RUN, None)
    if run is not None:
        _end(run)
