"""Plans: what each scenario of a feature will do to a target, before anything is touched.

``shakeout plan FEATURE`` (and ``pytest steps --dry-run``) reads the Gherkin, finds the fault
phrases (:mod:`shakeout.faults`), checks their values, resolves each to the experiment that runs
it on the target and to the replicas it reaches, and refuses a fault the target cannot run, one
that reaches nothing, or one that reaches more replicas than a declared cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_bdd.exceptions import FeatureError
from pytest_bdd.parser import FeatureParser, Scenario, ScenarioTemplate

from shakeout import faults
from shakeout.errors import ConfigError
from shakeout.faults import Variables
from shakeout.target import Target


@dataclass(frozen=True)
class PlannedFault:
    """One fault step resolved against the target."""

    line: int
    step: str
    word: str
    experiment: str
    variables: Variables
    replicas: list[str]
    reach: str


@dataclass(frozen=True)
class ScenarioPlan:
    """What one scenario (one example of an outline) will do."""

    feature: str
    name: str
    line: int
    tags: list[str]
    steps: list[str]
    faults: list[PlannedFault] = field(default_factory=list)


def rendered(template: ScenarioTemplate) -> list[Scenario]:
    """The scenarios of a template: one per example row of an outline, or the one."""
    contexts = [ctx for examples in template.examples for ctx in examples.as_contexts()]
    return [template.render(ctx) for ctx in contexts] if contexts else [template.render({})]


def plan_scenario(
    scenario: Scenario,
    feature_file: str,
    target: Target,
    target_file: str,
    max_replicas: int | None = None,
) -> ScenarioPlan:
    """Resolve one scenario's fault steps; refuse what reaches nothing or exceeds the cap."""
    planned = ScenarioPlan(
        feature=feature_file,
        name=scenario.name,
        line=scenario.line_number,
        tags=sorted(scenario.tags | scenario.feature.tags),
        steps=[f"{s.keyword.strip()} {s.name}" for s in scenario.steps],
    )
    placement = target.placement()
    for step in scenario.steps:
        found = faults.find(step.name)
        if found is None:
            continue
        fault, args = found
        where = f"{feature_file}:{step.line_number}"
        experiment = fault.experiment(target.kind, target.faults)
        if experiment is None:
            raise ConfigError(
                f"{where}: fault {fault.word!r} has no experiment for a {target.kind} target "
                f"(it runs on: {', '.join(fault.experiments) or 'none'}); {target_file}: field "
                f"faults.{fault.word} can name one"
            )
        if not Path(experiment).is_file():
            origin = (
                f"{target_file}: field faults.{fault.word}"
                if fault.word in target.faults
                else "its fault unit"
            )
            raise ConfigError(
                f"{where}: fault {fault.word!r}: no experiment file {experiment} "
                f"(named by {origin})"
            )
        try:
            params = fault.configure(args)
            reach = fault.reach(placement, params)
        except ConfigError as exc:
            raise ConfigError(f"{where}: refused: {exc}") from None
        if max_replicas is not None and len(reach.replicas) > max_replicas:
            raise ConfigError(
                f"{where}: refused: {fault.word} reaches {len(reach.replicas)} replicas "
                f"({reach.description}), more than the cap of {max_replicas}"
            )
        planned.faults.append(
            PlannedFault(
                line=step.line_number,
                step=step.name,
                word=fault.word,
                experiment=experiment,
                variables=params.variables(),
                replicas=reach.replicas,
                reach=reach.description,
            )
        )
    return planned


def plan_feature(
    path: Path, target: Target, target_file: str, max_replicas: int | None = None
) -> list[ScenarioPlan]:
    """Plan every scenario of a feature file; errors name the file and line."""
    if not path.is_file():
        raise ConfigError(f"{path}: feature file not found")
    try:
        feature = FeatureParser(str(path.parent), path.name).parse()
    except FeatureError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return [
        plan_scenario(scenario, str(path), target, target_file, max_replicas)
        for template in feature.scenarios.values()
        for scenario in rendered(template)
    ]
