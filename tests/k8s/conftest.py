"""Fixtures of the Kubernetes target's tests: a fake API server seeded from the real manifests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.fakeapi import FakeApiServer, FakeCluster

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "targets" / "kubernetes" / "base"
NAMESPACE = "shakeout-shop"
CONTEXT = "kind-shakeout"
SERVICES = ["gateway", "catalog", "orders", "payments", "inventory"]


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    """A fake API server with two nodes in each of zones a, b, c and the reference shop."""
    cluster = FakeCluster()
    for zone in "abc":
        for index in (1, 2):
            cluster.add_node(f"node-{zone}{index}", zone)
    cluster.apply_manifests(
        [BASE / f"{svc}.yaml" for svc in SERVICES]
        + [BASE / "shared-key.yaml", BASE / "config.yaml"],
        NAMESPACE,
    )
    server = FakeApiServer(cluster)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def kubeconfig(fake: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig pointing at the fake, exported as chaosk8s expects it."""
    path = fake.write_kubeconfig(tmp_path / "kubeconfig", CONTEXT)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("KUBERNETES_CONTEXT", CONTEXT)
    return path
