"""Node actions: capacity loss (the nodes of some of a service's pods go away), and a rolling
node upgrade (every node drained in turn)."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from shakeout.k8s._api import ActivityFailed, ApiException, core, namespace, not_found
from shakeout.k8s.actions._common import APP_LABEL, POLL_S, Conf

__all__ = [
    "drain_nodes_in_turn",
    "return_nodes_of_service",
    "take_nodes_of_service",
    "uncordon_drained_nodes",
]

LOST_NODE_LABEL = "shakeout.io/capacity-loss"
LOST_NODE_NAMESPACE = "shakeout.io/capacity-loss-namespace"
DRAIN_LABEL = "shakeout.io/drain"


def _marked_nodes(service: str, ns: str, secrets: Conf) -> list[Any]:
    found: list[Any] = core(secrets).list_node(label_selector=f"{LOST_NODE_LABEL}={service}").items
    return [n for n in found if (n.metadata.annotations or {}).get(LOST_NODE_NAMESPACE) == ns]


def _evict(name: str, ns: str, deadline: float, secrets: Conf) -> bool:
    """Evict one pod through the Eviction API; True once evicted, False if it was gone.

    A 429 means a PodDisruptionBudget forbids it for now: retried until ``deadline``, as
    ``kubectl drain`` does, since the Deployment's replacement pod becomes ready meanwhile.
    """
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
    while True:
        try:
            core(secrets).create_namespaced_pod_eviction(name, ns, body)
            return True
        except ApiException as exc:
            if not_found(exc):
                return False
            if exc.status != 429 or time.monotonic() >= deadline:
                raise ActivityFailed(
                    f"cannot evict pod {ns}/{name}: {exc.status} {exc.reason}"
                ) from None
        time.sleep(POLL_S)  # wait for the disruption budget to allow it, under the deadline


def take_nodes_of_service(
    service: str,
    count: int = 1,
    timeout_s: float = 120.0,
    configuration: Conf = None,
    secrets: Conf = None,
) -> dict[str, Any]:
    """Capacity loss: ``count`` replicas of a service lose their node.

    Picks schedulable nodes running pods of the service (label ``app.kubernetes.io/name``),
    fewest of its pods first, until they hold at least ``count`` of them; cordons those nodes,
    marking them with the ``shakeout.io/capacity-loss`` label (the revert finds them by it, from
    any process), and evicts that service's pods there (Eviction API, within the
    PodDisruptionBudget). Other pods on those nodes keep running: only this service loses
    capacity. The scheduler places the replacements on the remaining nodes when they have room;
    on a full node pool they stay Pending until :func:`return_nodes_of_service`.

    Hand-written rather than ``chaosk8s.node.actions.drain_nodes``: that evicts every pod of
    every namespace on the nodes, picks ``count`` nodes at random (with repeats) rather than
    ``count`` replicas, and leaves no mark a later rollback could find.
    """
    ns = namespace(configuration)
    count = int(count)
    if count < 1:
        raise ActivityFailed(f"count must be at least 1, got {count}")
    already = _marked_nodes(service, ns, secrets)
    if already:  # applied twice without a revert: the same nodes are still out
        return {
            "service": service,
            "nodes": sorted(n.metadata.name for n in already),
            "evicted": [],
        }
    api = core(secrets)
    pods: list[Any] = api.list_namespaced_pod(ns, label_selector=f"{APP_LABEL}={service}").items
    nodes: list[Any] = api.list_node().items
    schedulable = {n.metadata.name for n in nodes if not (n.spec and n.spec.unschedulable)}
    by_node: dict[str, list[str]] = {}
    for pod in pods:
        node: Any = pod.spec.node_name if pod.spec else None
        if node in schedulable and pod.metadata.deletion_timestamp is None:
            by_node.setdefault(node, []).append(pod.metadata.name)
    if not by_node:
        raise ActivityFailed(f"no pod of {ns}/{service} runs on a schedulable node")
    chosen: list[str] = []
    lost = 0
    for node in sorted(by_node, key=lambda n: (len(by_node[n]), n)):
        if lost >= count:
            break
        chosen.append(node)
        lost += len(by_node[node])
    mark = {
        "metadata": {
            "labels": {LOST_NODE_LABEL: service},
            "annotations": {LOST_NODE_NAMESPACE: ns},
        },
        "spec": {"unschedulable": True},
    }
    for node in chosen:
        api.patch_node(node, mark)
    deadline = time.monotonic() + float(timeout_s)
    evicted = [p for node in chosen for p in by_node[node] if _evict(p, ns, deadline, secrets)]
    return {"service": service, "nodes": chosen, "evicted": evicted}


def return_nodes_of_service(
    service: str, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """Undo :func:`take_nodes_of_service`: uncordon the nodes it marked; none marked, no-op.

    (``chaosk8s.node.actions.uncordon_node`` fails when no node matches, so a rollback after
    the revert would fail, and it cannot remove the mark.)
    """
    ns = namespace(configuration)
    nodes = sorted(n.metadata.name for n in _marked_nodes(service, ns, secrets))
    unmark = {
        "metadata": {"labels": {LOST_NODE_LABEL: None}, "annotations": {LOST_NODE_NAMESPACE: None}},
        "spec": {"unschedulable": False},
    }
    for node in nodes:
        core(secrets).patch_node(node, unmark)
    return {"service": service, "nodes": nodes, "restored": bool(nodes)}


def _pods_on(node: str, ns: str, secrets: Conf) -> list[str]:
    pods: list[Any] = core(secrets).list_namespaced_pod(ns).items
    return [
        p.metadata.name
        for p in pods
        if p.spec and p.spec.node_name == node and p.metadata.deletion_timestamp is None
    ]


def drain_nodes_in_turn(
    timeout_s: float = 120.0, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """A rolling node upgrade: every node running the namespace's pods is drained in turn.

    Each node is cordoned and labelled ``shakeout.io/drain`` (the rollback finds it by that,
    from any process); the namespace's pods on it are evicted through the Eviction API within
    their PodDisruptionBudgets, a refusal (429) asked again until ``timeout_s``, as ``kubectl
    drain`` does; once none is left the node is uncordoned and the next one is drained.

    Hand-written around the Eviction API rather than ``chaosk8s.node.actions.drain_nodes``:
    that evicts every namespace's pods from every selected node at once and uncordons nothing,
    where an upgrade takes the nodes one at a time and touches only the shop.
    """
    ns = namespace(configuration)
    api = core(secrets)
    pods: list[Any] = api.list_namespaced_pod(ns).items
    nodes = sorted({p.spec.node_name for p in pods if p.spec and p.spec.node_name})
    drained: dict[str, list[str]] = {}
    for node in nodes:
        api.patch_node(
            node, {"metadata": {"labels": {DRAIN_LABEL: "true"}}, "spec": {"unschedulable": True}}
        )
        deadline = time.monotonic() + float(timeout_s)
        drained[node] = [p for p in _pods_on(node, ns, secrets) if _evict(p, ns, deadline, secrets)]
        while left := _pods_on(node, ns, secrets):  # evicted pods terminate gracefully
            if time.monotonic() >= deadline:
                raise ActivityFailed(f"node {node} not drained within {timeout_s} s: {left}")
            time.sleep(POLL_S)
        api.patch_node(
            node, {"metadata": {"labels": {DRAIN_LABEL: None}}, "spec": {"unschedulable": False}}
        )
    return {"drained": drained}


def uncordon_drained_nodes(configuration: Conf = None, secrets: Conf = None) -> dict[str, Any]:
    """Undo :func:`drain_nodes_in_turn` after an abort: uncordon the nodes it left labelled."""
    api = core(secrets)
    found: list[Any] = api.list_node(label_selector=DRAIN_LABEL).items
    nodes = sorted(n.metadata.name for n in found)
    for node in nodes:
        api.patch_node(
            node, {"metadata": {"labels": {DRAIN_LABEL: None}}, "spec": {"unschedulable": False}}
        )
    return {"uncordoned": nodes}
