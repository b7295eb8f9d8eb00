"""Node drains on the embedded platform: cordons and the Eviction API's disruption budgets.

The supervisor runs here without processes (the kubelet's start and stop only record), so the
budget's arithmetic and the placement of replacements are checked exactly; the drain of a
running platform is in test_faults.py and in the node-drain drill.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shakeout.errors import ConfigError, EvictionRefused
from shakeout.platform.replicas import Replica
from shakeout.platform.supervisor import Supervisor
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parents[2]


def _supervisor(tmp_path: Path, target: str) -> tuple[Supervisor, list[str], list[str]]:
    """A supervisor of ``target`` whose replicas are all placed and ready, with no process."""
    loaded = load_target(ROOT / "targets" / target)
    sup = Supervisor(loaded, tmp_path, dict.fromkeys(loaded.services, 0))
    started: list[str] = []
    stopped: list[str] = []

    async def launch(replica: Replica) -> None:
        started.append(replica.id)

    async def stop(replica: Replica, grace_s: float = 3.0) -> None:
        replica.state = "stopped"
        replica.mark(False)
        stopped.append(replica.id)

    sup.kubelet.launch = launch  # type: ignore[method-assign]
    sup.kubelet.start_soon = lambda replica: started.append(replica.id)  # type: ignore[method-assign]
    sup.kubelet.stop = stop  # type: ignore[method-assign]
    return sup, started, stopped


async def _place_all(sup: Supervisor) -> None:
    for svc in sup.services.values():
        for _ in range(svc.spec.replicas):
            replica = await sup.deployments.add_replica(svc, svc.stable_version, {})
            replica.state = "running"
            replica.mark(True)


def _kinds(sup: Supervisor) -> list[str]:
    return [e["kind"] for e in sup.events]


def test_the_budget_grants_one_eviction_then_waits_for_the_replacement(tmp_path: Path) -> None:
    async def drill() -> None:
        sup, started, stopped = _supervisor(tmp_path, "local.yaml")
        await _place_all(sup)
        catalog = sup.services["catalog"]  # two replicas, zones a and b; max_unavailable 1
        first, second = catalog.replicas
        sup.drain.cordon(first.zone)
        granted = await sup.drain.evict(first)
        await asyncio.sleep(0)  # the spawned stop runs
        assert granted["evicted"]
        assert first.id in stopped
        replacement = catalog.replicas[-1]
        assert granted["replacement"] == replacement.id
        assert replacement.id in started
        assert replacement.zone != first.zone, "a replacement was placed in the cordoned zone"
        assert first not in catalog.replicas

        with pytest.raises(EvictionRefused, match="disruption budget of catalog"):
            await sup.drain.evict(second)  # its replacement is not ready: one unready already
        with pytest.raises(EvictionRefused):
            await sup.drain.evict(second)  # asked again: refused again, one event only
        assert _kinds(sup).count("eviction_refused") == 1
        assert second in catalog.replicas
        assert second.id not in stopped

        replacement.state = "running"
        replacement.mark(True)
        assert (await sup.drain.evict(second))["evicted"]
        sup.drain.uncordon(first.zone)
        assert not sup.nodes.cordoned
        assert _kinds(sup).count("replica_evicted") == 2
        assert [k for k in _kinds(sup) if k.startswith("node_")] == [
            "node_cordoned",
            "node_uncordoned",
        ]

    asyncio.run(drill())


def test_an_unready_replica_is_always_evicted(tmp_path: Path) -> None:
    async def drill() -> None:
        sup, _, stopped = _supervisor(tmp_path, "local.yaml")
        await _place_all(sup)
        first, second = sup.services["catalog"].replicas
        await sup.drain.evict(first)
        second.mark(False)  # crashed or frozen: evicting it takes nothing that serves
        assert (await sup.drain.evict(second))["evicted"]
        await asyncio.sleep(0)
        assert stopped == [first.id, second.id]

    asyncio.run(drill())


def test_without_a_budget_every_eviction_is_granted(tmp_path: Path) -> None:
    async def drill() -> None:
        sup, _, stopped = _supervisor(tmp_path, "local-fragile.yaml")
        await _place_all(sup)
        orders = sup.services["orders"]
        for replica in list(orders.replicas):
            await sup.drain.evict(replica)
        await asyncio.sleep(0)
        assert len(stopped) == 3
        assert not any(r.ready for r in orders.replicas), "every orders replica was replaced"
        assert "eviction_refused" not in _kinds(sup)

    asyncio.run(drill())


def test_a_budget_must_name_a_service(tmp_path: Path) -> None:
    text = (ROOT / "targets" / "local.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("    orders: {max_unavailable: 1}", "    order: {max_unavailable: 1}"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"platform\.disruption_budgets names 'order'"):
        load_target(bad)
