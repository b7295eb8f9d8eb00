"""Node drains: cordon and uncordon a zone's node, and evict replicas within disruption budgets.

Kubernetes splits a drain in two. The server side answers the Eviction API: an eviction of a
ready pod is refused (429) while the pod's PodDisruptionBudget would be broken, and granted
otherwise, after which the pod terminates gracefully and its ReplicaSet places a replacement
on a schedulable node. The client side (``kubectl drain``) cordons the node, asks for every
pod's eviction, and asks again while refused, until its timeout. This module is the server
side for the embedded platform (``platform.disruption_budgets``); the client side is the
``drain_nodes_in_turn`` action (``shakeout.chaos.local.actions``).

A service without a budget has every eviction granted, however many of its replicas are
already gone: that is what a drain does to a service nobody protected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shakeout.errors import EvictionRefused
from shakeout.platform.deployments import DeploymentController
from shakeout.platform.kubelet import Kubelet
from shakeout.platform.nodes import NodeController
from shakeout.platform.replicas import Replica, Service
from shakeout.topology import DisruptionBudget

EVICTION_GRACE_S = 2.0
"""A granted eviction stops the replica like a pod's termination: out of the endpoints at once,
then SIGTERM, and SIGKILL only after this (uvicorn finishes its requests in flight meanwhile)."""


def disruptions_allowed(svc: Service, budget: DisruptionBudget) -> int:
    """How many more of ``svc``'s replicas may be disrupted now: its ready replicas beyond the
    ``len(replicas) - max_unavailable`` the budget wants ready (a PDB's ``disruptionsAllowed``;
    replicas starting as replacements count as expected, not as healthy)."""
    healthy = sum(1 for r in svc.replicas if r.ready)
    return healthy - (len(svc.replicas) - budget.max_unavailable)


class NodeDrain:
    """Cordons, uncordons, and evicts replicas as the budgets allow."""

    def __init__(
        self,
        services: Mapping[str, Service],
        nodes: NodeController,
        budgets: Mapping[str, DisruptionBudget],
        deployments: DeploymentController,
        kubelet: Kubelet,
        event: Callable[..., None],
        changed: Callable[[], None],
        spawn: Callable[[Any], None],
    ) -> None:
        self.services = services
        self.nodes = nodes
        self.budgets = budgets
        self.deployments = deployments
        self.kubelet = kubelet
        self._event = event
        self._changed = changed
        self._spawn = spawn
        self._refused: set[str] = set()  # replicas refused since their last grant (one event each)

    def cordon(self, zone: str) -> None:
        """Mark a zone's node unschedulable: its replicas stay, nothing new is placed there."""
        if zone not in self.nodes.cordoned:
            self.nodes.cordoned.add(zone)
            self._event("node_cordoned", zone=zone)

    def uncordon(self, zone: str) -> None:
        """Make a zone's node schedulable again (idempotent)."""
        if zone in self.nodes.cordoned:
            self.nodes.cordoned.discard(zone)
            self._event("node_uncordoned", zone=zone)

    async def evict(self, replica: Replica) -> dict[str, Any]:
        """Evict ``replica`` through its service's disruption budget.

        Refused (``EvictionRefused``) while the budget would be broken; a replica that is not
        ready is always granted (Kubernetes' ``AlwaysAllow`` for unhealthy pods: it serves
        nothing). Granted: it leaves the endpoints, stops gracefully, and a replacement of the
        same version is placed in a schedulable zone.
        """
        svc = self.services[replica.service]
        budget = self.budgets.get(svc.name)
        if budget is not None and replica.ready and disruptions_allowed(svc, budget) < 1:
            if replica.id not in self._refused:
                self._refused.add(replica.id)
                self._event("eviction_refused", replica=replica.id, service=svc.name)
            raise EvictionRefused(
                f"cannot evict {replica.id}: it would violate the disruption budget of "
                f"{svc.name} (max_unavailable {budget.max_unavailable}); try again later"
            )
        self._refused.discard(replica.id)
        svc.replicas.remove(replica)
        self._changed()  # out of the endpoints before it is told to stop
        replacement = await self.deployments.add_replica(
            svc, replica.version, dict(replica.env), in_turn=True
        )
        self._event(
            "replica_evicted", replica=replica.id, zone=replica.zone, replacement=replacement.id
        )
        # Granted at once, terminated meanwhile (the Eviction API does not wait for the pod).
        self._spawn(self.kubelet.stop(replica, grace_s=EVICTION_GRACE_S))
        return {"replica": replica.id, "evicted": True, "replacement": replacement.id}
