"""Metrics and the platform's own Prometheus: what the platform and every replica export, and
Prometheus finding every replica through file-based discovery as the platform scales."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from _support import CART

from shakeout._process import wait_for
from shakeout.observability.prometheus import INSTALL_HINT, find_binaries
from shakeout.platform import lifecycle
from shakeout.platform.metrics import PlatformMetrics
from shakeout.platform.state import PlatformState


def _metrics(url: str) -> str:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return response.text


def test_the_router_and_the_control_plane_export_their_metrics(
    platform: PlatformState, client: lifecycle.PlatformClient
) -> None:
    assert httpx.get(f"{platform.gateway_url}/api/products", timeout=5).status_code == 200
    text = _metrics(platform.control_url)  # no control token needed: read-only
    assert 'shakeout_router_responses_total{code="200",service="gateway"}' in text
    assert 'shakeout_zone_ready{zone="b"} 1.0' in text
    assert 'shakeout_replicas_ready{service="orders",version="v1"} 3.0' in text
    assert 'shakeout_rollbacks_total{service="catalog"} 0.0' in text  # from 0, for increase()
    assert "shakeout_router_attempts_total{" in text
    # The control API itself still wants its token.
    assert httpx.get(f"{platform.control_url}/v1/status", timeout=5).status_code == 401


def test_a_replica_counts_its_answers_by_route_template(platform: PlatformState) -> None:
    gateway = platform.gateway_url
    assert httpx.get(f"{gateway}/api/products/p3", timeout=5).status_code == 200
    assert httpx.post(f"{gateway}/api/cart", json=CART, timeout=5).status_code == 200
    assert httpx.get(f"{gateway}/api/nowhere", timeout=5).status_code == 404
    with lifecycle.PlatformClient(platform) as client:
        replicas = [r for r in client.replicas() if r["service"] == "gateway"]
    texts = [_metrics(f"http://127.0.0.1:{r['port']}") for r in replicas]
    joined = "\n".join(texts)
    assert 'route="/api/products/{product_id}",status="200"' in joined
    assert 'method="POST",route="/api/cart",status="200"' in joined
    assert 'route="unmatched",status="404"' in joined
    assert "/healthz" not in joined  # probes are not traffic
    assert "/readyz" not in joined
    assert "shakeout_http_request_duration_seconds_bucket{" in joined


@pytest.mark.skipif(find_binaries() is None, reason=INSTALL_HINT)
def test_prometheus_scrapes_every_replica_and_follows_scaling(
    platform: PlatformState, client: lifecycle.PlatformClient
) -> None:
    assert platform.prometheus_url is not None, platform.monitoring_absent
    prometheus = platform.prometheus_url

    def scraped() -> dict[str, str]:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]
        return {
            t["labels"]["replica"]: t["health"]
            for t in targets["activeTargets"]
            if t["labels"]["job"] == "replicas"
        }

    ids = {r["id"] for r in client.replicas()}
    assert wait_for(lambda: set(scraped()) == ids and set(scraped().values()) == {"up"}, 15), (
        scraped()
    )
    client.scale("catalog", 3)
    try:
        assert wait_for(lambda: scraped().get("catalog-2") == "up", 20), scraped()
        labels = httpx.get(
            f"{prometheus}/api/v1/query",
            params={"query": 'up{job="replicas",replica="catalog-2"}'},
            timeout=5,
        ).json()["data"]["result"][0]["metric"]
        assert labels["service"] == "catalog"
        assert labels["zone"] in {"a", "b", "c"}
        assert labels["version"] == "v1"
    finally:
        client.scale("catalog", None)
    assert wait_for(lambda: "catalog-2" not in scraped(), 20), scraped()


def _view(crashes: list[tuple[int, bool]]) -> SimpleNamespace:
    replicas = [
        SimpleNamespace(version="v2", ready=ready, consecutive_crashes=n, state="backoff")
        for n, ready in crashes
    ]
    service = SimpleNamespace(replicas=replicas, stable_version="v1", versions=lambda: {"v2": 1})
    return SimpleNamespace(
        spec=SimpleNamespace(zones=["a"]),
        nodes=SimpleNamespace(ready=lambda zone: True),
        services={"orders": service},
        secret_file=Path("/nonexistent"),
    )


def test_a_replica_crash_loops_from_its_second_crash_in_a_row() -> None:
    # One crash is a replica that died (a zone outage, a kill): no loop yet.
    metrics = PlatformMetrics(_view([(1, False), (2, False), (3, True)]))
    text = metrics.exposition().decode()
    assert 'shakeout_replicas_crashlooping{service="orders",version="v2"} 1.0' in text
    assert 'shakeout_replicas_ready{service="orders",version="v2"} 1.0' in text
    assert "shakeout_secret_store_up 0.0" in text
