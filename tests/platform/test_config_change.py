"""Feature flags rolled out by the platform: validated, staged, rolled back; fragile: not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import FRAGILE, LOCAL, ROOT, Traffic, kinds_since, last_seq

from shakeout._process import wait_for
from shakeout.chaos.runner import run_experiment
from shakeout.faults import REGISTRY
from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState

LIST_PRICE_P1 = 8999


def _price_p1(state: PlatformState) -> int:
    with httpx.Client(base_url=state.gateway_url, timeout=5.0) as web:
        response = web.get("/api/products/p1")
    assert response.status_code == 200, response.text
    return int(response.json()["price_cents"])


def _change_under_traffic(
    state: PlatformState, client: lifecycle.PlatformClient, pricing: str, after: int
) -> tuple[dict[str, Any], Traffic]:
    """Set ``catalog.pricing`` after 15 requests of steady traffic (about a second at 15
    rps) and keep the traffic up for ``after`` more requests."""
    with Traffic(state.gateway_url) as traffic:
        traffic.wait_more(15)
        outcome = client.set_flags({"catalog.pricing": pricing})
        traffic.wait_more(after)
    return outcome, traffic


@pytest.fixture
def client(state: PlatformState) -> Iterator[lifecycle.PlatformClient]:
    """A control client; every test leaves the config as it found it."""
    with lifecycle.PlatformClient(state) as c:
        yield c
        c.revert_config()


class TestResilient:
    target = LOCAL

    def test_invalid_value_is_rejected_and_nothing_changes(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        since = last_seq(client)
        before = client.config()["version"]
        outcome = client.set_flags({"catalog.pricing": "sael"})
        assert outcome["status"] == "rejected"
        assert "catalog.pricing" in outcome["reason"]
        assert "sael" in outcome["reason"]
        unknown = client.set_flags({"catalog.nope": "x"})
        assert unknown["status"] == "rejected"
        assert "unknown flag" in unknown["reason"]
        assert client.config()["version"] == before
        assert kinds_since(client, since).count("config_rejected") == 2
        assert _price_p1(state) == LIST_PRICE_P1

    def test_good_value_is_staged_then_applied_without_errors(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        since = last_seq(client)
        outcome, traffic = _change_under_traffic(state, client, "sale", 15)
        assert outcome["status"] == "applied", outcome
        assert outcome["requests"] > 0  # the canary zone served traffic under the new config
        kinds = kinds_since(client, since)
        assert kinds.index("config_canary") < kinds.index("config_applied")
        assert traffic.total >= 40
        assert traffic.errors == 0, traffic.failures[:5]
        assert _price_p1(state) == LIST_PRICE_P1 * 90 // 100  # everywhere now
        reverted = client.revert_config()
        assert reverted["status"] == "reverted"
        assert wait_for(lambda: _price_p1(state) == LIST_PRICE_P1, 5)

    def test_harmful_value_is_caught_in_the_canary_zone_and_rolled_back(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        since = last_seq(client)
        outcome, traffic = _change_under_traffic(state, client, "dynamic", 30)
        assert outcome["status"] == "rolled_back", outcome
        assert "catalog-" in outcome["reason"] or "error rate" in outcome["reason"]
        kinds = kinds_since(client, since)
        assert kinds.index("config_canary") < kinds.index("config_canary_failed")
        assert kinds.index("config_canary_failed") < kinds.index("config_rolled_back")
        events = [e for e in client.events(since) if e["kind"] == "config_rolled_back"]
        assert len(events) == 1
        assert events[0]["zones"] == ["a"]
        assert events[0]["replicas"]  # the figures name the canary zone's replicas
        assert client.config()["flags"]["catalog.pricing"] == "list"
        assert client.config()["canary"] is None
        assert traffic.total >= 40
        assert traffic.error_rate < 0.01, (traffic.statuses, traffic.failures[:5])
        assert _price_p1(state) == LIST_PRICE_P1
        assert wait_for(lambda: all(r["ready"] for r in client.replicas()), 10)

    def test_experiment_runs_and_reverts(
        self, client: lifecycle.PlatformClient, tmp_path: Path
    ) -> None:
        experiment = ROOT / REGISTRY["config-change"].experiments["local"]
        since = last_seq(client)
        result = run_experiment(
            experiment,
            tmp_path,
            {"shakeout_target": "local", "flag": "catalog.pricing", "value": "sale",
             "duration_s": 0.5},
        )  # fmt: skip
        assert result.status == "completed", result.summary()
        assert result.rollbacks_ok, result.summary()
        kinds = kinds_since(client, since)
        assert "config_applied" in kinds
        assert "config_reverted" in kinds
        assert client.config()["flags"]["catalog.pricing"] == "list"


def _settled(client: lifecycle.PlatformClient) -> None:
    assert wait_for(lambda: all(r["ready"] for r in client.replicas()), 15)


class TestFragile:
    target = FRAGILE

    def test_even_a_harmless_change_restarts_the_service_at_once(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        _settled(client)
        since = last_seq(client)
        outcome, traffic = _change_under_traffic(state, client, "sale", 45)
        assert outcome["status"] == "applied"
        assert sorted(outcome["restarted"]) == ["catalog-0", "catalog-1"]
        assert kinds_since(client, since).count("replica_killed") == 2
        assert traffic.errors > 0, traffic.statuses  # both catalog replicas down together
        _settled(client)
        assert _price_p1(state) == LIST_PRICE_P1 * 90 // 100

    def test_harmful_value_goes_everywhere_and_requests_fail(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        _settled(client)
        since = last_seq(client)
        outcome, traffic = _change_under_traffic(state, client, "dynamic", 45)
        assert outcome["status"] == "applied"
        assert "config_canary" not in kinds_since(client, since)
        assert traffic.error_rate > 0.2, traffic.statuses
        assert client.config()["flags"]["catalog.pricing"] == "dynamic"  # nothing rolled back

    def test_typo_is_shipped_and_breaks_the_catalog(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        _settled(client)
        outcome = client.set_flags({"catalog.pricing": "sael"})
        assert outcome["status"] == "applied"

        def broken() -> bool:
            with httpx.Client(base_url=state.gateway_url, timeout=5.0) as web:
                return web.get("/api/products").status_code >= 500

        assert wait_for(broken, 10)
