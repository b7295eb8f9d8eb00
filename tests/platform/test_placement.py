"""Naming and scale-down: the platform names replicas by the rule ``shakeout plan`` reads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from shakeout.placement import replica_id
from shakeout.platform.deployments import spread_victims
from shakeout.platform.replicas import Replica
from shakeout.platform.supervisor import Supervisor
from shakeout.topology import load_target

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class _Placed:
    name: str
    zone: str
    ready: bool = True


def test_the_platform_names_replicas_by_the_rule_the_plan_uses(tmp_path: Path) -> None:
    target = load_target(ROOT / "targets" / "local.yaml")

    async def add() -> tuple[str, list[str]]:
        sup = Supervisor(target, tmp_path, dict.fromkeys(target.services, 0))
        launched: list[str] = []

        async def launch(replica: Replica) -> None:  # no process: only the names matter here
            launched.append(replica.id)

        sup.kubelet.launch = launch  # type: ignore[method-assign]
        catalog = sup.services["catalog"]
        for version in [catalog.stable_version, catalog.stable_version, "v9", "v9"]:
            await sup.deployments.add_replica(catalog, version, {})
        return catalog.stable_version, launched

    stable, launched = asyncio.run(add())
    assert launched == [
        replica_id("catalog", 0),
        replica_id("catalog", 1),
        replica_id("catalog", 0, "v9"),
        replica_id("catalog", 1, "v9"),
    ]
    assert launched == ["catalog-0", "catalog-1", "catalog-v9-0", "catalog-v9-1"]
    assert stable != "v9"


def test_a_scale_down_removes_unready_replicas_first_then_the_newest_of_the_fullest_zone() -> None:
    replicas = [
        _Placed("a0", "a"),
        _Placed("b0", "b"),
        _Placed("a1", "a"),
        _Placed("c0", "c", ready=False),
        _Placed("a2", "a"),
    ]
    assert [r.name for r in spread_victims(replicas, 3)] == ["c0", "a2", "a1"]
    assert spread_victims(replicas, 0) == []
    assert len(spread_victims(replicas, 9)) == len(replicas)
