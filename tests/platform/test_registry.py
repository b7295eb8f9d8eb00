"""The image registry and the nodes' image caches: a registry outage stalls only what needs a pull.

A replica starts once its version is in its zone's node cache. With the registry away, a
scale-up lands where the version is cached and waits (ImagePullBackOff) where it is not; the
replicas serving are never touched; when the registry is back the waiting replica starts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from shakeout._process import wait_for
from shakeout.platform import lifecycle
from shakeout.platform.registry import ImagePuller, Registry
from shakeout.platform.replicas import Replica
from shakeout.platform.supervisor import Supervisor
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parents[2]


def _by_service(client: lifecycle.PlatformClient, service: str) -> list[dict[str, object]]:
    return [r for r in client.replicas() if r["service"] == service]


def test_a_scale_up_during_a_registry_outage_waits_only_where_the_image_is_not_cached(
    client: lifecycle.PlatformClient,
) -> None:
    assert wait_for(lambda: all(r["ready"] for r in client.replicas()), 30)
    serving = {r["id"]: r["pid"] for r in client.replicas()}
    assert client.registry(reachable=False) == {"reachable": False}
    assert client.status()["registry"]["reachable"] is False
    try:
        # catalog runs in zones a and b: a third replica goes to zone c, whose node never
        # pulled catalog; gateway runs in every zone, so a fourth lands on a node holding it.
        client.scale("catalog", 3)
        client.scale("gateway", 4)
        assert wait_for(lambda: sum(r["ready"] for r in _by_service(client, "gateway")) == 4, 30)
        (waiting,) = [r for r in _by_service(client, "catalog") if r["id"] not in serving]
        assert waiting["zone"] == "c"
        assert waiting["state"] == "Pending"
        failed = [e for e in client.events() if e["kind"] == "image_pull_failed"]
        assert [e["replica"] for e in failed] == [waiting["id"]]
        assert "registry unreachable" in failed[0]["reason"]
        untouched = {r["id"]: r["pid"] for r in client.replicas() if r["id"] in serving}
        assert untouched == serving, "a serving replica was restarted or stopped"
    finally:
        client.registry(reachable=True)
    assert wait_for(lambda: sum(r["ready"] for r in _by_service(client, "catalog")) == 3, 30)
    client.scale("catalog", None)
    client.scale("gateway", None)


def test_the_puller_caches_per_node_and_reports_an_unreachable_registry(tmp_path: Path) -> None:
    async def check() -> None:
        registry = Registry(tmp_path / "registry", tmp_path / "registry.log")
        puller = ImagePuller(registry.url)
        try:
            failure = await puller.pull("a", "catalog", "v1")
            assert failure is not None
            assert "registry unreachable" in failure
            await registry.start()
            assert "404" in (await puller.pull("a", "catalog", "v1") or "")  # not pushed yet
            registry.push("catalog", "v1")
            assert await puller.pull("a", "catalog", "v1") is None
            assert await registry.stop()
            assert await puller.pull("a", "catalog", "v1") is None  # cached on node a
            assert await puller.pull("b", "catalog", "v1") is not None  # node b never pulled
        finally:
            await registry.stop()
            await puller.close()

    asyncio.run(check())


def test_recreate_stops_the_old_replicas_first_and_a_rollback_brings_them_back(
    tmp_path: Path,
) -> None:
    async def check() -> None:
        target = load_target(ROOT / "targets" / "local-fragile.yaml")
        assert target.platform.rollout.strategy == "recreate"
        sup = Supervisor(target, tmp_path, dict.fromkeys(target.services, 0))
        stopped: list[str] = []

        async def launch(replica: Replica) -> None:
            replica.state = "running"

        async def stop(replica: Replica, grace_s: float = 3.0) -> None:
            replica.state = "stopped"
            stopped.append(replica.id)

        sup.kubelet.launch = launch  # type: ignore[method-assign]
        sup.kubelet.stop = stop  # type: ignore[method-assign]
        catalog = sup.services["catalog"]
        for _ in range(2):
            await sup.deployments.add_replica(catalog, "v1", {})
        old = [r.id for r in catalog.replicas]
        await sup.deployments.deploy("catalog", "v2", 1.0, {}, None)
        assert stopped == old
        assert {r.version for r in catalog.replicas} == {"v2"}
        await sup.deployments.rollback("catalog")
        assert [r.version for r in catalog.replicas] == ["v1", "v1"]

        await sup.deployments.deploy("catalog", "v3", 0.2, {}, None)  # a canary always surges
        assert sorted(r.version for r in catalog.replicas) == ["v1", "v1", "v3", "v3"]

    asyncio.run(check())
