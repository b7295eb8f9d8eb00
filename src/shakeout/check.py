"""One check before anything runs: every file a run would read, and every name in its features.

``shakeout validate``, ``shakeout plan``, ``pytest steps --dry-run`` and the start of every
drill session call :func:`check_run` before a platform starts, load runs or a fault is
injected. It reads the target file, its SLO file, every experiment file it names, the
commands it would start, the Kubernetes allowlists, and, per scenario of each feature, the
load profile and shape settings, every journey and phase a step names, and each fault's values
and reach (:mod:`shakeout.plan`). Every problem is collected, not only the first, and each
names its file, line and field, with the nearest valid name when one is near.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_bdd.exceptions import FeatureError
from pytest_bdd.parser import FeatureParser, Scenario

from shakeout import faults, profiles
from shakeout.errors import ConfigError, did_you_mean
from shakeout.k8s.target import KubernetesTarget, check_allowlists
from shakeout.observability.prometheus import check_alerting
from shakeout.plan import ScenarioPlan, plan_scenario, rendered
from shakeout.slofile import SLOFile, load_slo
from shakeout.target import Target, load_target_file
from shakeout.topology import LocalTarget
from shakeout.vocabulary import JOURNEY_REF, LOAD_STEP, PHASE_REF, PHASES, shape_settings


@dataclass
class CheckReport:
    """What a clean check read: the target, its SLO file and each scenario's plan."""

    target: Target
    slo: SLOFile | None
    plans: list[ScenarioPlan] = field(default_factory=list)
    features: list[Path] = field(default_factory=list)


def feature_files(paths: list[Path]) -> list[Path]:
    """The feature files named, folders searched recursively; a missing path is an error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(path.rglob("*.feature"))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"{path}: no such feature file or folder")
    return found


def _slo_path(target: Target, target_file: Path) -> Path | None:
    return target_file.parent / target.slo if target.slo else None


def _check_target(target: Target, target_file: Path, allow_production: bool) -> list[str]:
    problems = []
    for word, experiment in target.faults.items():
        where = f"{target_file}: field faults.{word}"
        if word not in faults.REGISTRY:
            problems.append(f"{where}: no fault word {word!r}{did_you_mean(word, faults.REGISTRY)}")
        path = Path(experiment)
        if not path.is_file():
            problems.append(f"{where}: experiment file {experiment} not found")
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            problems.append(f"{where}: experiment file {experiment} is not valid JSON: {exc}")
    if isinstance(target, KubernetesTarget):
        try:
            check_allowlists(target, target_file, allow_production)
        except ConfigError as exc:
            problems.append(str(exc))
    if isinstance(target, LocalTarget):
        for name, service in target.services.items():
            program = service.command[0]
            if "{" in program:
                continue  # {python}: the interpreter running ShakeOut
            if ("/" in program and not Path(program).exists()) or (
                "/" not in program and shutil.which(program) is None
            ):
                problems.append(
                    f"{target_file}: field services.{name}.command[0]: {program!r} not found"
                    + (" (relative to the current folder)" if "/" in program else " on PATH")
                )
    return problems


def _check_scenario(
    scenario: Scenario,
    feature: Path,
    profiles_dir: Path,
    slo: SLOFile | None,
    slo_file: Path | None,
    has_orders: bool,
) -> list[str]:
    problems = []
    where = str(feature)
    journeys: list[str] | None = None
    profile_name = ""
    has_fault = any(faults.find(step.name) for step in scenario.steps)
    for step in scenario.steps:
        at = f"{where}:{step.line_number}"
        load = LOAD_STEP.match(step.name) if step.type == "given" else None
        if load:
            profile_name, journeys = load["profile"], []  # [] : not known (yet)
            try:
                path = profiles.resolve(profile_name, profiles.search_path(feature, profiles_dir))
                journeys = profiles.journeys(path)
                shape_settings(load["shape"])
            except ConfigError as exc:
                problems.append(f"{at}: {exc}")
            continue
        if step.type != "then":
            continue
        if not has_orders and ("acknowledged order" in step.name or "(RPO)" in step.name):
            problems.append(
                f"{at}: the data check needs an orders service, and the target has none"
            )
        phase = PHASE_REF.match(step.name)
        if phase and phase["phase"] not in PHASES:
            problems.append(
                f"{at}: unknown phase {phase['phase']!r} (phases: {', '.join(PHASES)})"
                f"{did_you_mean(phase['phase'], PHASES)}"
            )
        elif phase and phase["phase"] != "drill" and not has_fault:
            problems.append(f"{at}: the {phase['phase']} phase needs a fault step in the scenario")
        for ref in JOURNEY_REF.finditer(step.name):
            journey = ref["journey"]
            if journeys is None:
                problems.append(f"{at}: journey {journey!r} is checked, but no load step runs")
            elif journeys and journey not in [*journeys, "all"]:
                problems.append(
                    f"{at}: journey {journey!r} is not run by the {profile_name!r} profile "
                    f"(its journeys: {', '.join(journeys)}){did_you_mean(journey, journeys)}"
                )
        if "SLO file" in step.name and slo is not None and journeys:
            named = {o.journey for o in slo.latency} | {o.journey for o in slo.error_rate}
            named |= {o.journey for o in slo.availability}
            for journey in sorted(named - {*journeys, "all"}):
                problems.append(
                    f"{at}: the SLO file {slo_file} names journey {journey!r}, which the "
                    f"{profile_name!r} profile does not run (its journeys: {', '.join(journeys)})"
                )
    return problems


def check_features(
    paths: list[Path],
    target: Target,
    target_file: Path,
    profiles_dir: Path,
    slo: SLOFile | None,
    max_replicas: int | None = None,
) -> tuple[list[ScenarioPlan], list[str]]:
    """Plan every scenario of the features; the problems found in them."""
    plans: list[ScenarioPlan] = []
    problems: list[str] = []
    slo_file = _slo_path(target, target_file)
    for path in paths:
        try:
            feature = FeatureParser(str(path.parent), path.name).parse()
        except FeatureError as exc:
            problems.append(f"{path}: {exc}")
            continue
        for template in feature.scenarios.values():
            for scenario in rendered(template):
                try:
                    plans.append(
                        plan_scenario(scenario, str(path), target, str(target_file), max_replicas)
                    )
                except ConfigError as exc:
                    problems.append(str(exc))
                problems += _check_scenario(
                    scenario, path, profiles_dir, slo, slo_file, "orders" in target.services
                )
    return plans, problems


def check_run(
    target_file: Path,
    features: Sequence[Path] = (),
    profiles_dir: Path = profiles.PROFILE_DIR,
    *,
    allow_production: bool = False,
    max_replicas: int | None = None,
) -> CheckReport:
    """Check everything a run would read; ConfigError listing every problem found."""
    target = load_target_file(target_file)
    problems = _check_target(target, target_file, allow_production)
    slo = None
    slo_file = _slo_path(target, target_file)
    if slo_file is not None:
        try:
            slo = load_slo(slo_file)
        except ConfigError as exc:
            problems.append(str(exc))
    if isinstance(target, LocalTarget):
        problems += check_alerting(target, target_file, slo)
    has_orders = "orders" in target.services
    if slo is not None and not has_orders and (slo.lost_orders, slo.rpo_s) != (None, None):
        problems.append(
            f"{slo_file}: field lost_orders/rpo_s: data objectives need an order store, and "
            f"target {target.name!r} has no orders service: remove them"
        )
    files: list[Path] = []
    try:
        files = feature_files(list(features))
    except ConfigError as exc:
        problems.append(str(exc))
    plans, found = check_features(files, target, target_file, profiles_dir, slo, max_replicas)
    problems += found
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"{count} found before anything started:\n  " + "\n  ".join(problems))
    return CheckReport(target, slo, plans, files)
