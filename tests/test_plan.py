"""Plans: fault phrases resolved to experiments and blast radius, refusals before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shakeout.chaos.runner import validate
from shakeout.errors import ConfigError
from shakeout.faults import REGISTRY, find
from shakeout.plan import plan_feature
from shakeout.target import load_target_file
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parent.parent
TARGET_FILE = ROOT / "targets" / "local.yaml"
TARGET = load_target(TARGET_FILE)


def _feature(tmp_path: Path, step: str) -> Path:
    path = tmp_path / "x.feature"
    path.write_text(
        f"Feature: x\n  Scenario: one fault\n    Given the target is up\n    When {step}\n",
        encoding="utf-8",
    )
    return path


def test_every_fault_unit_names_valid_experiments(tmp_path: Path) -> None:
    for word, fault in REGISTRY.items():
        assert fault.experiments, word
        for kind, path in fault.experiments.items():
            assert kind in ("local", "kubernetes"), (word, kind)
            validate(ROOT / path, tmp_path)  # chaos validate: a broken experiment fails here


def test_cluster_only_faults_are_refused_on_a_local_target(tmp_path: Path) -> None:
    cluster_only = [w for w, f in REGISTRY.items() if f.cluster_only]
    assert cluster_only == ["network-latency", "packet-loss", "cpu-stress", "memory-stress"]
    feature = _feature(tmp_path, '"catalog" loses 5% of its packets for 10 seconds')
    with pytest.raises(ConfigError, match=r"x\.feature:4: fault 'packet-loss' has no experiment"):
        plan_feature(feature, TARGET, str(TARGET_FILE))
    cluster = ROOT / "targets" / "kubernetes" / "kind.yaml"
    (plan,) = plan_feature(feature, load_target_file(cluster), str(cluster))
    assert plan.faults[0].experiment == "scenarios/kubernetes/packet_loss.json"


def test_phrases_parse_into_typed_experiment_variables() -> None:
    found = find('"payments" answers 20% errors for 30 seconds')
    assert found is not None
    fault, args = found
    assert fault.word == "dependency-errors"
    assert fault.configure(args).variables() == {
        "service": "payments",
        "error_rate": 0.2,
        "duration_s": 30.0,
    }
    assert find("a baseline of 3 seconds") is None


def test_a_value_out_of_range_is_refused_with_its_field(tmp_path: Path) -> None:
    feature = _feature(tmp_path, '"payments" answers 150% errors for 30 seconds')
    with pytest.raises(ConfigError, match=r"x\.feature:4: refused: .*field error_rate: .*1"):
        plan_feature(feature, TARGET, str(TARGET_FILE))


def test_plans_name_the_replicas_the_platform_creates() -> None:
    (plan,) = [
        p
        for p in plan_feature(ROOT / "features" / "crash_loop.feature", TARGET, str(TARGET_FILE))
        if p.faults
    ][:1]
    assert plan.faults[0].replicas == [
        "orders-v2-crashloop-0",
        "orders-v2-crashloop-1",
        "orders-v2-crashloop-2",
    ]


def test_shipped_features_plan_with_their_blast_radius() -> None:
    plans = plan_feature(ROOT / "features" / "zone_failure.feature", TARGET, str(TARGET_FILE))
    assert [p.name for p in plans] == [
        "Zone b goes down and traffic fails over",
        "Zone b freezes and traffic fails over",
    ]
    fault = plans[0].faults[0]
    assert fault.word == "zone-outage"
    assert fault.experiment == "scenarios/zone_outage.json"
    assert fault.replicas == ["gateway-1", "catalog-1", "orders-1", "payments-1", "inventory-1"]


@pytest.mark.parametrize(("step", "message"), [
    ('zone "q" goes down for 5 seconds', r"zone 'q' resolves to nothing \(zones: a, b, c\)"),
    ('2 replicas of "billing" are killed', r"service 'billing' resolves to nothing"),
    ('zone "a" freezes for 5 seconds', r"reaches 5 replicas .* more than the cap of 2"),
])  # fmt: skip
def test_refusals_name_the_feature_line(tmp_path: Path, step: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"x\.feature:4: refused: .*{message}"):
        plan_feature(_feature(tmp_path, step), TARGET, str(TARGET_FILE), max_replicas=2)


def test_a_target_file_may_name_its_own_experiment(tmp_path: Path) -> None:
    text = TARGET_FILE.read_text(encoding="utf-8") + "faults:\n  scale: my/scale.json\n"
    target_file = tmp_path / "t.yaml"
    target_file.write_text(text, encoding="utf-8")
    feature = _feature(tmp_path, '"gateway" is scaled to 1 replicas for 5 seconds')
    with pytest.raises(ConfigError, match=r"no experiment file my/scale.json .*field faults.scale"):
        plan_feature(feature, load_target(target_file), str(target_file))


def test_plan_command_touches_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shakeout.cli", "plan", "features/crash_loop.feature"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"SHAKEOUT_RUNTIME_DIR": str(tmp_path), "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fault crash-loop → scenarios/crash_loop.json" in result.stdout
    assert "nothing was touched" in result.stdout
    assert not any(tmp_path.iterdir())


def test_a_new_fault_is_one_unit_plus_its_experiment(tmp_path: Path) -> None:
    """The worked example of docs/architecture.md: the unit alone makes the step phrase
    known, typed, planned with its reach and resolved to its experiment."""
    from collections.abc import Mapping
    from typing import Any

    from shakeout.faults import Fault, Placement, Reach
    from shakeout.faults._base import on
    from shakeout.faults.releases import ReleaseParams, _new_version

    experiment = tmp_path / "not_ready_release.json"
    experiment.write_text((ROOT / "scenarios" / "crash_loop.json").read_text(), encoding="utf-8")

    class NotReadyRelease(Fault[ReleaseParams]):
        """A new release whose replicas never pass their readiness probe."""

        word = "not-ready-release"
        phrase = 'a release of "{service}" that never becomes ready takes {weight:d}% of traffic'
        experiments = on(local=str(experiment))

        def params(self, args: Mapping[str, Any]) -> ReleaseParams:
            return ReleaseParams(service=args["service"], weight=args["weight"] / 100.0)

        def reach(self, placement: Placement, params: ReleaseParams) -> Reach:
            return _new_version(placement, params.service, "v2-not-ready", params.weight)

    try:
        feature = _feature(
            tmp_path, 'a release of "catalog" that never becomes ready takes 20% of traffic'
        )
        (plan,) = plan_feature(feature, TARGET, str(TARGET_FILE))
        (fault,) = plan.faults
        assert (fault.word, fault.experiment) == ("not-ready-release", str(experiment))
        assert fault.variables == {"service": "catalog", "weight": 0.2}
        assert fault.replicas == [f"catalog-v2-not-ready-{i}" for i in range(2)]
        assert "20% of its traffic" in fault.reach
    finally:
        del REGISTRY["not-ready-release"]
