"""Chaos Toolkit probes of the Kubernetes target (``shakeout.k8s.probes``).

The steady state of a Kubernetes target is "every Deployment of the namespace has its desired
replicas updated and available"; the waits poll the API under a timeout (there is no event to
wait on that covers every case, and the experiment must end by itself).
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from shakeout.chaos.hold import hold_fault
from shakeout.k8s._api import ActivityFailed, ApiException, apps, extensions, namespace, not_found

__all__ = [
    "chaos_mesh_installed",
    "deployments_available",
    "observe",
    "rollout_state",
    "wait_for_rollout",
    "wait_until_available",
]

Conf = dict[str, Any] | None
POLL_S = 1.0
CHAOS_MESH_GROUP = "chaos-mesh.org"


def _unavailable(deployments: list[Any]) -> list[str]:
    problems = []
    for dep in deployments:
        want = dep.spec.replicas if dep.spec.replicas is not None else 1
        status = dep.status or client.V1DeploymentStatus()
        available = status.available_replicas or 0
        updated = status.updated_replicas or 0
        total = status.replicas or 0
        # More pods than desired: old ones kept because the new ones are not ready (a rollout
        # in progress or stuck), even when enough pods are available.
        if available < want or updated < want or total > want:
            problems.append(
                f"{dep.metadata.name}: {available}/{want} available, {updated}/{want} updated, "
                f"{total} pods"
            )
    return problems


def unavailable_deployments(configuration: Conf = None, secrets: Conf = None) -> list[str]:
    """Deployments of the namespace short of their desired replicas (name and counts)."""
    ns = namespace(configuration)
    found = apps(secrets).list_namespaced_deployment(ns).items
    return _unavailable(found)


def deployments_available(configuration: Conf = None, secrets: Conf = None) -> bool:
    """True when every Deployment of the namespace has its desired replicas, all available."""
    return not unavailable_deployments(configuration, secrets)


def wait_until_available(
    timeout_s: float = 180.0, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """Wait until :func:`deployments_available`; after ``timeout_s`` fail naming what is short."""
    started = time.monotonic()
    while True:
        problems = unavailable_deployments(configuration, secrets)
        waited = round(time.monotonic() - started, 3)
        if not problems:
            return {"available": True, "waited_s": waited}
        if waited >= float(timeout_s):
            raise ActivityFailed(f"not available after {timeout_s}s: " + "; ".join(problems))
        time.sleep(POLL_S)  # poll the API under the timeout above


def observe(seconds: float, configuration: Conf = None) -> dict[str, Any]:
    """Hold the fault for ``seconds`` (the harness measures; this only waits), longer when a
    game day holds it (:mod:`shakeout.chaos.hold`)."""
    return {"observed_s": hold_fault(float(seconds))}


def rollout_state(deployment: Any) -> dict[str, Any]:
    """A Deployment's rollout as ``status`` (progressing/available/failed), ``reason``, version."""
    status = deployment.status or client.V1DeploymentStatus()
    want = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    labels = deployment.spec.template.metadata.labels or {}
    state = "progressing"
    reason = progressing.reason if progressing else None
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        state = "failed"
    elif (
        (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
        and (status.updated_replicas or 0) >= want
        and (status.available_replicas or 0) >= want
        and (status.replicas or 0) <= want
    ):
        state = "available"
    changed = progressing.last_transition_time if progressing else None
    return {
        "version": labels.get("app.kubernetes.io/version"),
        "status": state,
        "reason": reason,
        "started_at": changed.timestamp() if changed is not None else None,
        "ended_at": changed.timestamp() if changed is not None and state != "progressing" else None,
    }


def wait_for_rollout(
    service: str, timeout_s: float = 120.0, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """Wait until the service's rollout is complete or has failed its progress deadline.

    Returns the rollout state with ``waited_s``; one still progressing after ``timeout_s`` is
    returned as it is, so a tolerance on ``status`` can judge it.
    """
    ns = namespace(configuration)
    started = time.monotonic()
    while True:
        state = rollout_state(apps(secrets).read_namespaced_deployment(service, ns))
        waited = time.monotonic() - started
        if state["status"] != "progressing" or waited >= float(timeout_s):
            return {**state, "waited_s": round(waited, 3)}
        time.sleep(POLL_S)  # poll the API under the timeout above


def chaos_mesh_installed(
    kinds: list[str] | None = None, configuration: Conf = None, secrets: Conf = None
) -> bool:
    """True when Chaos Mesh's CRDs (``networkchaos`` and ``stresschaos`` by default) exist.

    Used in the steady-state hypothesis of the Chaos Mesh experiments, so that on a cluster
    without Chaos Mesh the experiment stops before its method, with this reason in the journal.
    """
    api = extensions(secrets)
    for kind in kinds or ["networkchaos", "stresschaos"]:
        try:
            api.read_custom_resource_definition(f"{kind}.{CHAOS_MESH_GROUP}")
        except ApiException as exc:
            if not_found(exc):
                return False
            raise ActivityFailed(
                f"cannot read CRD {kind}.{CHAOS_MESH_GROUP}: {exc.status}"
            ) from None
    return True
