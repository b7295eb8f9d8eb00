"""Plans: fault phrases resolved to experiments and blast radius, refusals before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shakeout.errors import ConfigError
from shakeout.faults import CLUSTER_ONLY, PHRASES, find
from shakeout.plan import plan_feature
from shakeout.topology import load_any_target, load_target

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


def test_every_phrase_has_an_experiment_on_the_local_targets() -> None:
    for name in ("local.yaml", "local-fragile.yaml"):
        assert set(PHRASES) - CLUSTER_ONLY <= set(load_target(ROOT / "targets" / name).faults)


def test_cluster_only_faults_are_on_the_kubernetes_target() -> None:
    target = load_any_target(ROOT / "targets" / "kubernetes" / "kind.yaml")
    assert set(CLUSTER_ONLY) <= set(target.faults)


def test_phrases_parse_into_experiment_variables() -> None:
    found = find('"payments" answers 20% errors for 30 seconds')
    assert found is not None
    phrase, args = found
    assert phrase.word == "dependency-errors"
    assert phrase.variables(args) == {
        "service": "payments",
        "error_rate": "0.2",
        "duration_s": 30.0,
    }
    assert find("a baseline of 3 seconds") is None


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


def test_a_fault_the_target_does_not_map_is_refused(tmp_path: Path) -> None:
    text = TARGET_FILE.read_text(encoding="utf-8").replace("  scale: scenarios/scale.json\n", "")
    target_file = tmp_path / "t.yaml"
    target_file.write_text(text, encoding="utf-8")
    feature = _feature(tmp_path, '"gateway" is scaled to 1 replicas for 5 seconds')
    with pytest.raises(ConfigError, match=r"fault 'scale' has no experiment .*field faults"):
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
