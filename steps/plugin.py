"""pytest wiring of the drills: options, feature collection, the check before anything runs,
and the platform and drill fixtures.

Registered from the root ``conftest.py`` with ``pytest_plugins``, so every feature sees the steps.
Features come from ``features/`` (``--features`` changes that), or from the ``.feature`` files
and folders named on the command line (``pytest steps my/drills/``); their tags need no
registration. Before the first scenario (and so before the platform starts) every collected
feature is checked with :func:`shakeout.check.check_run`, plus that each step has a definition.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_bdd import scenarios
from pytest_bdd.parser import Feature, Scenario, ScenarioTemplate, Step
from pytest_bdd.scenario import find_fixturedefs_for_step, scenario_wrapper_template_registry

from shakeout import profiles
from shakeout.chaos import undo
from shakeout.check import check_run
from shakeout.drill import Drill
from shakeout.errors import ConfigError
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
    group.addoption(
        "--features",
        dest="shakeout_features",
        action="append",
        default=None,
        metavar="PATH",
        help="feature file or folder of the library (repeatable; default: features). "
        ".feature files and folders named as arguments run instead of the library",
    )
    group.addoption(
        "--profiles",
        default=os.environ.get("SHAKEOUT_PROFILES_DIR", str(profiles.PROFILE_DIR)),
        metavar="DIR",
        help="folder of the load profiles the features name, after the profiles/ folder beside "
        "each feature file (default: loadprofiles)",
    )


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG.append(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    _CONFIG.remove(config)


def _named_features(config: pytest.Config) -> list[Path]:
    """The ``.feature`` files and folders holding features named as arguments."""
    named = []
    for arg in config.args:
        path = config.invocation_params.dir / arg.split("::")[0]
        if path.suffix == ".feature" or (path.is_dir() and any(path.rglob("*.feature"))):
            named.append(path)
    return named


def library_features() -> list[str]:
    """The features ``steps/test_drills.py`` collects: ``--features`` (default ``features/``),
    or none when features were named as arguments (they are collected from there)."""
    if not _CONFIG:
        return ["features"]
    config = _CONFIG[-1]
    if config.getoption("shakeout_features") is None and _named_features(config):
        return []
    return [str(Path(p).resolve()) for p in config.getoption("shakeout_features") or ["features"]]


class FeatureModule(pytest.Module):
    """A ``.feature`` file collected as a test module: its scenarios, with the step library."""

    def _getobj(self) -> object:
        module = types.ModuleType(self.path.stem)
        module.__file__ = str(self.path)
        # ``scenarios`` puts the tests in its caller's namespace: run it from the module's own.
        code = compile("scenarios(path, features_base_dir=base)", str(self.path), "exec")
        exec(code, {**module.__dict__, "scenarios": scenarios, "path": str(self.path),
                    "base": str(self.path.parent)}, module.__dict__)  # fmt: skip
        return module


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect a ``.feature`` file named on the command line or found in a folder named there."""
    if file_path.suffix != ".feature":
        return None
    named = [p.resolve() for p in _named_features(parent.config)]
    if not any(file_path.resolve() == p or p in file_path.resolve().parents for p in named):
        return None
    return FeatureModule.from_parent(parent, path=file_path)


def _scenario_key(item: pytest.Item) -> tuple[str, str, str] | None:
    template = scenario_wrapper_template_registry.get(getattr(item, "function", None))  # type: ignore[arg-type]
    if template is None:
        return None
    callspec = getattr(item, "callspec", None)
    return template.feature.filename, template.name, callspec.id if callspec else ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A scenario a test module already binds (its own ``scenarios(...)`` call) is not run a
    second time from its ``.feature`` file collected in the same folder."""
    bound = {
        key
        for item in items
        if not isinstance(item.parent, FeatureModule) and (key := _scenario_key(item))
    }
    twice = [i for i in items if isinstance(i.parent, FeatureModule) and _scenario_key(i) in bound]
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = [item for item in items if item not in twice]


def pytest_bdd_apply_tag(tag: str, function: object) -> None:
    """A feature's tags need no registration: each is registered as a marker when first seen
    (with ``--strict-markers`` an unregistered tag would stop the collection of everything)."""
    config = _CONFIG[-1]
    if tag not in {line.split(":")[0].strip() for line in config.getini("markers")}:
        config.addinivalue_line("markers", f"{tag}: a tag of a feature")
    # None: pytest-bdd's own implementation applies the marker.


def _shown(filename: str) -> Path:
    """A path as a user would write it: relative to the current folder when under it."""
    path = Path(filename)
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def scenario_template(item: pytest.Item) -> tuple[ScenarioTemplate, dict[str, str]] | None:
    """The scenario template an item runs and its example's values (None: not a drill)."""
    template: ScenarioTemplate | None = scenario_wrapper_template_registry.get(
        getattr(item, "function", None)  # type: ignore[arg-type]
    )
    if template is None:
        return None
    callspec = getattr(item, "callspec", None)
    example = callspec.params.get("_pytest_bdd_example", {}) if callspec else {}
    return template, example


def scenario_of(item: pytest.Item) -> Scenario | None:
    """The scenario an item runs, rendered with its example's values (None: not a drill)."""
    found = scenario_template(item)
    return found[0].render(found[1]) if found is not None else None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Check every collected feature, and that each step has a definition, before the first
    scenario: nothing starts (platform, load, fault) when a run has a mistake in it."""
    config = session.config
    problems: list[str] = []
    features: set[Path] = set()
    for item in session.items:
        scenario = scenario_of(item)
        if scenario is None:
            continue
        feature = _shown(scenario.feature.filename)
        features.add(feature)
        for step in scenario.steps:
            # pytest-bdd's own lookup (no public API lists step definitions).
            if not any(find_fixturedefs_for_step(step, session._fixturemanager, item)):
                problems.append(
                    f"{feature}:{step.line_number}: no step definition "
                    f"matches {step.keyword.strip()} {step.name!r} (see docs/steps.md)"
                )
    if not features:
        return
    try:
        check_run(
            Path(config.getoption("--target")),
            sorted(features),
            Path(config.getoption("--profiles")),
            allow_production=bool(config.getoption("--allow-production")),
            max_replicas=config.getoption("--max-replicas"),
        )
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            for line in sorted(set(problems)):
                reporter.write_line(f"refused: {line}", red=True)
        pytest.exit("refused before anything started (bad input)", returncode=4)


def pytest_bdd_before_scenario(
    request: pytest.FixtureRequest, feature: Feature, scenario: Scenario
) -> None:
    """Plan the scenario's faults (a dry run prints them and stops here); skip a scenario
    whose fault the target cannot run (e.g. Chaos Mesh absent). Every feature was already
    checked before the first scenario (``pytest_collection_finish``)."""
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
DRILL = pytest.StashKey[Drill]()
"""An item's drill (set by the ``drill`` fixture), for plugins that read it at teardown."""


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
    scenario = scenario_of(request.node)
    profile_dirs = profiles.search_path(
        Path(scenario.feature.filename) if scenario else None,
        Path(request.config.getoption("--profiles")),
    )
    run = Drill(platform, request.node.name, reports, progress, profile_dirs)
    request.node.stash[DRILL] = run  # for the plugins that read the run once it has ended
    try:
        yield run
    finally:
        try:
            error = request.node.stash.get(_CALL_ERROR, None)
            if isinstance(error, pytest.skip.Exception):  # e.g. an alert step, no Prometheus
                run.skipped, error = str(error.msg), None
            run.close(error)
        finally:  # the evidence is attached even when cleaning up (e.g. cluster workers) failed
            attach_drill_evidence(run.run_dir, platform.target, request.node.nodeid)
