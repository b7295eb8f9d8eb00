"""The deployment controller: a service's versions, their traffic weights and replica counts.

* ``deploy`` starts replicas of a new version beside the stable one with a traffic weight; a
  rollout that does not become ready within its progress deadline, or whose replicas keep
  crashing, is rolled back automatically when the target says so (``platform.rollout``);
  ``promote`` makes it the stable version, ``rollback`` removes it;
* ``scale`` sets the stable version's replica count (a scale-down keeps the spread over the
  zones), ``evict`` and ``restore_capacity`` take replicas away and bring them back;
* a new replica is named and placed by the rule ``shakeout plan`` uses too
  (``shakeout.placement``): the ready zone holding the fewest replicas of its version; the
  kubelet (``shakeout.platform.kubelet``) runs it. A scale-down removes the replicas
  ``spread_victims`` picks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from shakeout.errors import PlatformError
from shakeout.placement import next_zone, replica_id
from shakeout.platform.kubelet import Kubelet
from shakeout.platform.replicas import Replica, Rollout, Service, free_port
from shakeout.topology import RolloutSpec


class Placed(Protocol):
    """What a scale-down reads of a replica."""

    @property
    def zone(self) -> str:
        """The zone it was placed in."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the control plane considers it ready."""
        ...


P = TypeVar("P", bound=Placed)


def spread_victims(replicas: Sequence[P], count: int) -> list[P]:
    """Which ``count`` of ``replicas`` a scale-down removes: those not ready first (as a
    ReplicaSet does), then from the zone holding the most, newest (last) first, so the spread
    over the zones stays even."""
    left = list(replicas)
    doomed: list[P] = []
    for _ in range(min(count, len(left))):
        held: dict[str, int] = {}
        for replica in left:
            held[replica.zone] = held.get(replica.zone, 0) + 1
        victim = max(
            reversed(left), key=lambda r: (not r.ready, held[r.zone])
        )  # reversed: among equals, the newest
        left.remove(victim)
        doomed.append(victim)
    return doomed


class DeploymentController:
    """Rolls out, promotes, rolls back and scales the services of a supervisor."""

    def __init__(
        self,
        services: Mapping[str, Service],
        zones: Sequence[str],
        ready_zones: Callable[[], list[str]],
        policy: RolloutSpec,
        kubelet: Kubelet,
        find_service: Callable[[str], Service],
        event: Callable[..., None],
        changed: Callable[[], None],
    ) -> None:
        """Manage ``services`` over ``zones`` (``ready_zones``: those the node controller finds
        ready and not cordoned) under the rollout ``policy``; ``kubelet`` runs the replicas;
        ``find_service`` names an unknown service; ``event`` records, ``changed`` is called
        when the endpoints may have changed."""
        self.services = services
        self.zones = zones
        self._ready_zones = ready_zones
        self.policy = policy
        self.kubelet = kubelet
        self._find_service = find_service
        self._event = event
        self._changed = changed

    # -- replicas ----------------------------------------------------------------------------

    def zone_for(self, svc: Service, version: str) -> str:
        """Placement: the ready zone holding the fewest replicas of this version (the first
        such in the target's order), so replicas spread over the zones and none is placed in
        a zone the node controller found not ready, or that is cordoned. With no such zone,
        any zone."""
        held = (r.zone for r in svc.replicas if r.version == version)
        return next_zone(self._ready_zones() or list(self.zones), held)

    async def add_replica(
        self, svc: Service, version: str, env: dict[str, str], *, in_turn: bool = False
    ) -> Replica:
        """Add a replica of ``version`` to ``svc`` and start it: at once, or (``in_turn``) in
        the background when a start slot is free."""
        index = sum(1 for r in svc.replicas if r.version == version)
        named = None if version == svc.stable_version else version
        replica = Replica(
            id=replica_id(svc.name, index, named),
            service=svc.name,
            version=version,
            zone=self.zone_for(svc, version),
            port=free_port(),
            env=env,
        )
        while any(r.id == replica.id for r in svc.replicas):
            index += 1
            replica.id = replica_id(svc.name, index, named)
        svc.replicas.append(replica)
        if in_turn:  # in the background: the caller (a controller) carries on meanwhile
            self.kubelet.start_soon(replica)
        else:
            await self.kubelet.launch(replica)
        return replica

    # -- rollouts ----------------------------------------------------------------------------

    async def deploy(
        self, name: str, version: str, weight: float, env: dict[str, str], replicas: int | None
    ) -> Rollout:
        """Start replicas of a new version beside the stable one and give it a traffic weight."""
        svc = self._find_service(name)
        if not 0.0 <= weight <= 1.0:
            raise PlatformError(f"weight must be between 0 and 1, got {weight}")
        if version == svc.stable_version:
            raise PlatformError(f"{name}: version {version!r} is already the stable version")
        if svc.rollout is not None and svc.rollout.status in ("progressing", "available"):
            raise PlatformError(
                f"{name}: version {svc.rollout.version!r} is still rolling out;"
                " promote or roll it back first"
            )
        count = replicas or svc.desired_replicas
        svc.rollout = Rollout(version=version, weight=weight, started_at=time.time())
        svc.weights = {svc.stable_version: 1.0 - weight, version: weight}
        self._event("rollout_started", service=name, version=version, weight=weight, env=env)
        if self.policy.strategy == "recreate" and weight >= 1.0:
            # Recreate: the old version's replicas stop before the new version's exist.
            old = [r for r in svc.replicas if r.version == svc.stable_version]
            svc.replicas = [r for r in svc.replicas if r not in old]
            await asyncio.gather(*(self.kubelet.stop(r, grace_s=1.0) for r in old))
            self._changed()
        merged = {**svc.spec.env, **env}
        for _ in range(count):
            await self.add_replica(svc, version, merged)
        return svc.rollout

    async def rollback(self, name: str, reason: str = "requested") -> Rollout | None:
        """Stop the new version's replicas and send all traffic back to the stable version."""
        svc = self._find_service(name)
        rollout = svc.rollout
        if rollout is None or rollout.status in ("rolled_back", "promoted"):
            return rollout
        svc.weights = {svc.stable_version: 1.0}
        doomed = [r for r in svc.replicas if r.version == rollout.version]
        svc.replicas = [r for r in svc.replicas if r.version != rollout.version]
        rollout.status, rollout.reason, rollout.ended_at = "rolled_back", reason, time.time()
        self._event("rollout_rolled_back", service=name, version=rollout.version, reason=reason)
        await asyncio.gather(*(self.kubelet.stop(r, grace_s=1.0) for r in doomed))
        if self.policy.strategy == "recreate":  # the old version's replicas come back
            stable = sum(1 for r in svc.replicas if r.version == svc.stable_version)
            for _ in range(svc.desired_replicas - stable):
                await self.add_replica(svc, svc.stable_version, dict(svc.spec.env))
        self._changed()
        return rollout

    async def promote(self, name: str) -> Rollout:
        """Make the new version stable: it takes all traffic and the old replicas stop."""
        svc = self._find_service(name)
        rollout = svc.rollout
        if rollout is None or rollout.status not in ("progressing", "available"):
            raise PlatformError(f"{name}: no rollout in progress to promote")
        old = [r for r in svc.replicas if r.version != rollout.version]
        svc.replicas = [r for r in svc.replicas if r.version == rollout.version]
        svc.stable_version = rollout.version
        svc.weights = {rollout.version: 1.0}
        rollout.status, rollout.ended_at = "promoted", time.time()
        self._event("rollout_promoted", service=name, version=rollout.version)
        await asyncio.gather(*(self.kubelet.stop(r, grace_s=1.0) for r in old))
        self._changed()
        return rollout

    async def scale(self, name: str, replicas: int | None, *, autoscaled: bool = False) -> int:
        """Set the number of replicas of the stable version (None: the topology's count).

        An explicit count pins the service (the autoscaler leaves it alone) until a scale to
        the topology's count (None) unpins it; the autoscaler's own calls pass ``autoscaled``.
        """
        svc = self._find_service(name)
        if not autoscaled:
            svc.pinned = replicas is not None
        if replicas is None:
            replicas = svc.spec.replicas
        if not 0 <= replicas <= 50:
            raise PlatformError(f"replicas must be between 0 and 50, got {replicas}")
        stable = [r for r in svc.replicas if r.version == svc.stable_version]
        svc.desired_replicas = replicas
        added = max(0, replicas - len(stable))
        await asyncio.gather(
            *(
                self.add_replica(svc, svc.stable_version, dict(svc.spec.env), in_turn=autoscaled)
                for _ in range(added)
            )
        )
        doomed = spread_victims(stable, len(stable) - replicas)
        svc.replicas = [r for r in svc.replicas if r not in doomed]
        await asyncio.gather(*(self.kubelet.stop(r, grace_s=1.0) for r in doomed))
        if not autoscaled:
            self._event("scaled", service=name, replicas=replicas)
        self._changed()
        return replicas

    async def evict(self, name: str, count: int) -> list[str]:
        """Capacity loss: ``count`` stable replicas lose their node and are not rescheduled.

        They stay gone until ``restore_capacity``; only the autoscaler (when on) adds replicas
        meanwhile, from the load it sees.
        """
        svc = self._find_service(name)
        if count < 1:
            raise PlatformError(f"count must be at least 1, got {count}")
        stable = [r for r in svc.replicas if r.version == svc.stable_version]
        doomed = stable[len(stable) - min(count, len(stable)) :]
        svc.replicas = [r for r in svc.replicas if r not in doomed]
        svc.evicted += len(doomed)
        await asyncio.gather(*(self.kubelet.stop(r, grace_s=0.1) for r in doomed))
        self._event("capacity_removed", service=name, replicas=[r.id for r in doomed])
        self._changed()
        return [r.id for r in doomed]

    async def restore_capacity(self, name: str) -> int:
        """Bring back the replicas a capacity loss evicted (idempotent); how many came back."""
        svc = self._find_service(name)
        count, svc.evicted = svc.evicted, 0
        for _ in range(count):
            await self.add_replica(svc, svc.stable_version, dict(svc.spec.env))
        if count:
            self._event("capacity_restored", service=name, replicas=count)
        self._changed()
        return count

    async def run(self) -> None:
        """Watch the rollouts in progress until cancelled: available once every new replica is
        ready; rolled back (with ``auto_rollback``) after ``max_restarts`` restarts or past the
        progress deadline."""
        policy = self.policy
        while True:
            for svc in self.services.values():
                rollout = svc.rollout
                if rollout is None or rollout.status != "progressing":
                    continue
                new = [r for r in svc.replicas if r.version == rollout.version]
                if new and all(r.ready for r in new):
                    rollout.status = "available"
                    self._event("rollout_available", service=svc.name, version=rollout.version)
                    continue
                if not policy.auto_rollback:
                    continue
                restarts = max((r.restarts for r in new), default=0)
                overdue = time.time() - rollout.started_at > policy.progress_deadline_s
                if restarts >= policy.max_restarts:
                    await self.rollback(svc.name, f"replicas restarted {restarts} times")
                elif overdue:
                    deadline = policy.progress_deadline_s
                    await self.rollback(svc.name, f"not ready within {deadline:g} s deadline")
            await asyncio.sleep(0.2)  # controller resync period
