"""Credentials under a secret-store outage and a key rotation: cached and overlapped, or not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _support import FRAGILE, LOCAL, Traffic, last_seq

from shakeout._process import wait_for
from shakeout.platform import lifecycle
from shakeout.platform.state import PlatformState, state_dir


@pytest.fixture
def client(state: PlatformState) -> Iterator[lifecycle.PlatformClient]:
    """A control client; every test leaves the secret store reachable."""
    with lifecycle.PlatformClient(state) as c:
        yield c
        c.secret_store(reachable=True)


def _all_ready(client: lifecycle.PlatformClient) -> bool:
    return all(r["ready"] for r in client.replicas())


class TestResilient:
    target = LOCAL

    def test_outage_is_served_from_cache_and_a_restarted_replica_waits(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        since = last_seq(client)
        with Traffic(state.gateway_url) as traffic:
            traffic.wait_more(8)
            client.secret_store(reachable=False)
            assert wait_for(
                lambda: any(e["kind"] == "credentials_cached" for e in client.events(since)), 15
            )
            assert len(client.secrets_status()["on_cache"]) == 12
            killed_at = last_seq(client)
            client.replica_action("catalog-0", "kill")  # restarted during the outage
            # Back up and answering, but with no store it has no key: reduced capacity.
            assert wait_for(lambda: "catalog-0" in client.secrets_status()["without_key"], 30)
            traffic.wait_more(8)
            client.secret_store(reachable=True)
            assert wait_for(lambda: _all_ready(client), 15)
            traffic.wait_more(8)
        events = client.events(killed_at)
        store_up = next(e["seq"] for e in events if e["kind"] == "secret_store_up")
        ready = [
            e["seq"]
            for e in events
            if e["kind"] == "replica_ready" and e.get("replica") == "catalog-0"
        ]
        assert ready, "catalog-0 never came back"
        assert min(ready) > store_up, "a replica without a key was taken into traffic"
        assert traffic.total >= 30
        assert traffic.errors == 0, traffic.failures[:5]
        cached = [e for e in client.events(since) if e["kind"] == "credentials_cached"]
        assert len(cached) == 1
        assert len(cached[0]["on_cache"]) == 12
        assert cached[0]["without_key"] == []
        status = client.secrets_status()
        assert status["on_cache"] == []
        assert status["all_current"]

    def test_rotation_reaches_every_replica_and_retires_the_old_key(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        before = client.secrets_status()["store"]["key_id"]
        with Traffic(state.gateway_url, rate=20.0) as traffic:
            traffic.wait_more(10)
            client.rotate_key()
            traffic.wait_more(20)
        assert traffic.errors == 0, traffic.failures[:5]
        assert wait_for(lambda: client.secrets_status()["all_current"], 5)
        status = client.secrets_status()
        assert status["store"]["previous_key_id"] == before
        assert {r["key_id"] for r in status["replicas"]} == {status["store"]["key_id"]}
        assert not client.old_key_check("catalog")["refused"]  # within the overlap
        overlap = status["store"]["previous_valid_for_s"]
        assert wait_for(lambda: client.old_key_check("catalog")["refused"], overlap + 5)
        audit = [
            json.loads(line) for line in (state_dir("local") / "audit.log").read_text().splitlines()
        ]
        rotations = [a for a in audit if a["action"] == "key_rotated"]
        assert rotations[-1]["previous_key_id"] == before
        assert rotations[-1]["key_id"] == status["store"]["key_id"]


class TestFragile:
    target = FRAGILE

    def test_outage_without_cache_fails_requests(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        with Traffic(state.gateway_url) as traffic:
            traffic.wait_more(8)
            client.secret_store(reachable=False)
            # No cache: every replica loses its key at its next poll of the store.
            assert wait_for(lambda: len(client.secrets_status()["without_key"]) == 12, 15)
            failed_before = traffic.errors
            traffic.wait_more(15)
            failed_during = traffic.errors - failed_before
            client.secret_store(reachable=True)
        assert failed_during >= 5, traffic.statuses  # a third of the requests at least

    def test_rotation_without_overlap_fails_requests_in_flight(
        self, state: PlatformState, client: lifecycle.PlatformClient
    ) -> None:
        with Traffic(state.gateway_url, rate=25.0, checkout_every=2) as traffic:
            for _ in range(3):
                traffic.wait_more(25)
                client.rotate_key()
                # No overlap: refused as soon as the replica has polled the store.
                assert wait_for(lambda: client.old_key_check("catalog")["refused"], 10)
            traffic.wait_more(10)
        assert traffic.errors > 0, traffic.statuses
