"""Replica capacity, the autoscaler and the capacity-loss fault, with real HTTP load.

Both targets give a gateway replica 15 requests per second; ``local.yaml`` autoscales the
gateway (3 to 10 replicas at 60% utilisation), ``local-fragile.yaml`` does not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support import platform_up
from shop_load import drive, kinds

from shakeout.chaos.runner import run_experiment
from shakeout.faults import REGISTRY
from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "targets" / "local.yaml"
FRAGILE = ROOT / "targets" / "local-fragile.yaml"


def spike(elapsed_s: float) -> float:
    """30 requests per second, then 70 (beyond the 45 of three replicas) after 4 s."""
    return 30.0 if elapsed_s < 4.0 else 70.0


def gateways(client: lifecycle.PlatformClient) -> int:
    return sum(1 for r in client.replicas() if r["service"] == "gateway")


@pytest.fixture(scope="module")
def resilient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    """``targets/local.yaml`` up."""
    with platform_up(LOCAL, tmp_path_factory.getbasetemp() / "runtime") as state:
        yield state


@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    """``targets/local-fragile.yaml`` up."""
    with platform_up(FRAGILE, tmp_path_factory.getbasetemp() / "runtime") as state:
        yield state


def test_spike_resilient_autoscaler_adds_replicas_and_nothing_fails(
    resilient: PlatformState,
) -> None:
    with lifecycle.PlatformClient(resilient) as client:
        since = client.events()[-1]["seq"]
        started = time.time()
        run = drive(resilient.gateway_url, spike, 12.0)
        events = client.events(since)
        scaled = kinds(events, "autoscaled")
        assert scaled, "no autoscaled event"
        assert max(e["replicas_to"] for e in scaled) >= 6  # 70 req/s at 60% of 15 per replica
        # It reacted to the spike (not to noise before it), while the spike was still on;
        # how fast is what the run's error rate and p95 below judge, not a wall-clock bound.
        first_big = min(e["t"] for e in scaled if e["replicas_to"] >= 5)
        assert started + 4.0 <= first_big < started + 12.0
        assert gateways(client) >= 6
    assert len(run.results) > 600
    assert run.error_rate() < 0.01, run.error_rate()
    assert run.p95_ms() < 300


def test_spike_fragile_saturated_replicas_answer_503(fragile: PlatformState) -> None:
    with lifecycle.PlatformClient(fragile) as client:
        since = client.events()[-1]["seq"]
        run = drive(fragile.gateway_url, spike, 12.0)
        assert not kinds(client.events(since), "autoscaled")
        assert gateways(client) == 3
    statuses = [r.status for r in run.results]
    assert run.error_rate() > 0.05, run.error_rate()
    assert 503 in statuses
    early = run.results[:100]
    assert all(r.status == 200 for r in early)  # 30 req/s fits: only the spike saturates


def test_explicit_scale_pins_the_count_until_reverted(resilient: PlatformState) -> None:
    with lifecycle.PlatformClient(resilient) as client:
        client.scale("gateway", 2)
        since = client.events()[-1]["seq"]
        drive(resilient.gateway_url, 40, 3.0)
        assert not kinds(client.events(since), "autoscaled")
        assert gateways(client) == 2
        client.scale("gateway", None)  # back to the topology's count: unpinned
        since = client.events()[-1]["seq"]
        drive(resilient.gateway_url, 60, 3.0)
        assert kinds(client.events(since), "autoscaled")


def test_capacity_loss_experiment_evicts_then_restores(
    resilient: PlatformState, tmp_path: Path
) -> None:
    experiment = ROOT / REGISTRY["capacity-loss"].experiments["local"]
    with lifecycle.PlatformClient(resilient) as client:
        before = gateways(client)
        since = client.events()[-1]["seq"]
        result = run_experiment(
            experiment,
            tmp_path,
            {"shakeout_target": "local", "service": "gateway", "count": 2, "duration_s": 1.0},
        )
        assert result.status == "completed", result.summary()
        assert result.rollbacks_ok, result.summary()
        events = client.events(since)
        [removed] = kinds(events, "capacity_removed")
        assert len(removed["replicas"]) == 2
        assert kinds(events, "capacity_restored")
        assert gateways(client) >= before


def test_capacity_loss_fragile_remaining_replica_saturates(fragile: PlatformState) -> None:
    with lifecycle.PlatformClient(fragile) as client:
        client.evict("gateway", 2)
        try:
            assert gateways(client) == 1
            run = drive(fragile.gateway_url, 30, 3.0)
        finally:
            client.restore("gateway")
        assert gateways(client) == 3
    assert run.error_rate() > 0.2, run.error_rate()


def test_capacity_loss_resilient_autoscaler_replaces_capacity(resilient: PlatformState) -> None:
    with lifecycle.PlatformClient(resilient) as client:
        client.scale("gateway", None)
        # 40 req/s settles at 5 replicas (60% of 75): losing 2 leaves 45, within the headroom.
        drive(resilient.gateway_url, 40, 3.0)
        client.evict("gateway", 2)
        try:
            run = drive(resilient.gateway_url, 40, 5.0)
            live = gateways(client)
        finally:
            client.restore("gateway")
    assert live >= 3  # the autoscaler put the evicted capacity back
    assert run.error_rate() < 0.01, run.error_rate()
