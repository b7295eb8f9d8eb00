"""The orders store migrated under checkout load: online loses nothing, offline loses orders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import FRAGILE, LOCAL, ROOT, Traffic, last_seq

from shakeout.chaos.runner import run_experiment
from shakeout.faults import REGISTRY
from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState


@pytest.fixture
def client(state: PlatformState) -> Iterator[lifecycle.PlatformClient]:
    """A control client of the class's platform."""
    with lifecycle.PlatformClient(state) as c:
        yield c


def _lookup(state: PlatformState, ids: list[str]) -> dict[str, Any]:
    with httpx.Client(base_url=state.gateway_url, timeout=10.0) as web:
        response = web.post("/api/orders/lookup", json={"ids": ids})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _migrate_under_load(
    state: PlatformState, client: lifecycle.PlatformClient, to: str
) -> tuple[Traffic, dict[str, Any], list[dict[str, Any]]]:
    since = last_seq(client)
    with Traffic(state.gateway_url, rate=15.0, checkout_every=2) as traffic:
        traffic.wait_more(15)
        outcome = client.migrate_orders(to)
        traffic.wait_more(15)
    return traffic, outcome, client.events(since)


class TestOnline:
    target = LOCAL

    def test_migrates_both_ways_without_losing_or_duplicating_an_order(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        assert client.migration_status()["schema"] == "v1"
        traffic, outcome, events = _migrate_under_load(state, client, "v2")
        assert outcome["status"] == "completed", outcome
        steps = [e["step"] for e in events if e["kind"] == "migration_step"]
        assert steps == ["expand", "backfill", "switch_reads", "contract"]
        status = client.migration_status()
        assert (status["schema"], status["target"], status["tables"]) == ("v2", None, ["orders_v2"])
        assert len(traffic.orders) >= 10
        assert traffic.errors == 0, traffic.failures[:5]
        found = _lookup(state, traffic.orders)
        assert found["missing"] == []
        assert found["duplicates"] == {}

        back, outcome, events = _migrate_under_load(state, client, "v1")
        assert outcome["status"] == "completed", outcome
        contract = [e for e in events if e.get("step") == "contract"]
        assert contract
        assert contract[0]["dropped"] == "orders_v2"
        assert client.migration_status()["tables"] == ["orders"]
        assert back.errors == 0, back.failures[:5]
        every = traffic.orders + back.orders
        found = _lookup(state, every)
        assert found["missing"] == []
        assert found["duplicates"] == {}
        assert len(found["found"]) == len(set(every))

    def test_experiment_migrates_then_reverts(
        self, client: lifecycle.PlatformClient, tmp_path: Path
    ) -> None:
        experiment = ROOT / REGISTRY["schema-migration"].experiments["local"]
        since = last_seq(client)
        result = run_experiment(
            experiment, tmp_path, {"shakeout_target": "local", "duration_s": 0.5}
        )
        assert result.status == "completed", result.summary()
        assert result.rollbacks_ok, result.summary()
        completed = [e["to"] for e in client.events(since) if e["kind"] == "migration_completed"]
        assert completed == ["v2", "v1"]  # the rollbacks' repeated revert changed nothing
        assert client.migration_status()["schema"] == "v1"
        assert client.migrate_orders("v1")["status"] == "unchanged"


class TestOffline:
    target = FRAGILE

    def test_offline_copy_loses_orders_written_during_the_copy(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        traffic, outcome, events = _migrate_under_load(state, client, "v2")
        assert outcome["status"] == "completed", outcome
        switch = [e for e in events if e.get("step") == "switch"]
        assert switch
        assert switch[0]["rows_lost"] > 0
        found = _lookup(state, traffic.orders)
        assert len(found["missing"]) > 0  # acknowledged, then gone
        assert len(found["missing"]) == switch[0]["rows_lost"]
