"""Every fault of the local catalogue, run with `chaos run`: applied, then reverted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shakeout._process import wait_for
from shakeout.chaos.runner import run_experiment
from shakeout.faults import REGISTRY
from shakeout.platform import lifecycle, network

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


def _cordoned(client: lifecycle.PlatformClient) -> list[str]:
    return [z for z, health in client.status()["zone_health"].items() if health["cordoned"]]


def test_node_drain_moves_every_replica_node_by_node(
    client: lifecycle.PlatformClient, tmp_path: Path
) -> None:
    before = {r["pid"] for r in client.replicas()}  # ids are reused by replacements, not pids
    kinds = _run(client, tmp_path, "node-drain", timeout_s=30.0)
    assert kinds.count("node_cordoned") == kinds.count("node_uncordoned") == 3
    assert kinds.count("replica_evicted") >= len(before)
    assert "eviction_refused" in kinds  # the budgets made the drain wait for replacements
    assert wait_for(lambda: _steady(client), 15)
    assert not {r["pid"] for r in client.replicas()} & before, "a replica was never evicted"
    assert not _cordoned(client)


def test_a_drain_the_budgets_hold_past_its_timeout_fails_and_leaves_no_cordon(
    client: lifecycle.PlatformClient, tmp_path: Path
) -> None:
    assert wait_for(lambda: _steady(client), 15)
    experiment = ROOT / REGISTRY["node-drain"].experiments["local"]
    result = run_experiment(experiment, tmp_path, {"shakeout_target": "local", "timeout_s": 0.01})
    drain = next(a for a in result.method if a.name == "drain-nodes-in-turn")
    assert drain.status == "failed", result.summary()
    assert "the disruption budgets still refuse the eviction of" in (drain.exception or "")
    assert result.rollbacks_ok, result.summary()
    assert not _cordoned(client)
    assert wait_for(lambda: _steady(client), 15)


def test_registry_outage_stalls_the_release_and_both_are_undone(
    client: lifecycle.PlatformClient, tmp_path: Path
) -> None:
    kinds = _run(client, tmp_path, "registry-outage", service="catalog", duration_s=1.0)
    assert kinds.index("registry_down") < kinds.index("image_pull_failed")
    assert kinds.index("image_pull_failed") < kinds.index("registry_up")
    assert "rollout_rolled_back" in kinds
    assert client.status()["registry"]["reachable"] is True
    assert wait_for(lambda: _steady(client), 15)
    assert {r["version"] for r in client.replicas() if r["service"] == "catalog"} == {"v1"}


@pytest.mark.skipif(network.unavailable() is not None, reason=str(network.unavailable()))
def test_zone_packet_loss_is_applied_by_the_kernel_and_removed(
    client: lifecycle.PlatformClient, tmp_path: Path
) -> None:
    kinds = _run(client, tmp_path, "zone-packet-loss", zone="c", loss_percent=30, duration_s=1.0)
    assert kinds.count("zone_packet_loss") >= 2  # applied, then 0 (revert and rollback)
    assert client.status()["zone_health"]["c"]["world"] == "up"
    assert wait_for(lambda: _steady(client), 15)
