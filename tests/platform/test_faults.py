"""Every fault of the local catalogue, run with `chaos run`: applied, then reverted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shakeout._process import wait_for
from shakeout.chaos.runner import run_experiment
from shakeout.faults import REGISTRY
from shakeout.platform import lifecycle

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "targets" / "local.yaml"


def _run(
    client: lifecycle.PlatformClient, tmp_path: Path, word: str, **variables: Any
) -> list[str]:
    experiment = ROOT / REGISTRY[word].experiments["local"]
    since = client.events()[-1]["seq"]
    result = run_experiment(experiment, tmp_path, {"shakeout_target": "local", **variables})
    assert result.status == "completed", result.summary()
    assert result.rollbacks_ok, result.summary()
    assert not result.deviated, result.summary()
    assert result.fault_start is not None
    assert result.fault_end is not None
    assert result.fault_end > result.fault_start
    return [e["kind"] for e in client.events(since)]


def _steady(client: lifecycle.PlatformClient) -> bool:
    return all(r["ready"] for r in client.replicas())


def test_replica_kill(client: lifecycle.PlatformClient, tmp_path: Path) -> None:
    kinds = _run(client, tmp_path, "replica-kill", service="catalog", duration_s=1.0)
    assert "replica_killed" in kinds
    assert wait_for(lambda: _steady(client), 15)
    assert "replica_restarted" in [e["kind"] for e in client.events()]


@pytest.mark.parametrize(("word", "applied", "reverted"), [
    ("zone-outage", "zone_down", "zone_up"),
    ("zone-freeze", "replica_frozen", "replica_resumed"),
])  # fmt: skip
def test_zone_faults(
    client: lifecycle.PlatformClient, tmp_path: Path, word: str, applied: str, reverted: str
) -> None:
    kinds = _run(client, tmp_path, word, zone="c", duration_s=1.0)
    assert applied in kinds
    assert reverted in kinds
    assert wait_for(lambda: _steady(client), 15)


@pytest.mark.parametrize(("word", "variables"), [
    ("dependency-errors", {"service": "payments", "error_rate": 0.5, "duration_s": 1.0}),
    ("dependency-latency", {"service": "payments", "latency_ms": 300, "duration_s": 1.0}),
    ("bad-canary", {"service": "catalog", "weight": 0.3, "duration_s": 1.0}),
])  # fmt: skip
def test_degraded_versions_are_rolled_out_then_back(
    client: lifecycle.PlatformClient, tmp_path: Path, word: str, variables: dict[str, Any]
) -> None:
    kinds = _run(client, tmp_path, word, **variables)
    assert "rollout_started" in kinds
    assert "rollout_rolled_back" in kinds
    service = str(variables["service"])
    assert {r["version"] for r in client.replicas() if r["service"] == service} == {"v1"}
    assert client.status()["services"][service]["weights"] == {"v1": 1.0}


def test_key_rotation(client: lifecycle.PlatformClient, tmp_path: Path) -> None:
    kinds = _run(client, tmp_path, "key-rotation", duration_s=0.5)
    assert "key_rotated" in kinds


def test_secret_store_outage(client: lifecycle.PlatformClient, tmp_path: Path) -> None:
    kinds = _run(client, tmp_path, "secret-store-outage", duration_s=1.0)
    assert kinds.index("secret_store_down") < kinds.index("secret_store_up")
    assert _steady(client)


def test_scale_down_and_back(client: lifecycle.PlatformClient, tmp_path: Path) -> None:
    kinds = _run(client, tmp_path, "scale", service="gateway", replicas=1, duration_s=1.0)
    assert kinds.count("scaled") >= 2  # down, then back (method revert and idempotent rollback)
    assert wait_for(
        lambda: sum(1 for r in client.replicas() if r["service"] == "gateway" and r["ready"]) == 3,
        15,
    )
