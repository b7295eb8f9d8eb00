"""Deployment actions: a faulty environment, a canary beside it, a replica count to restore, a
release whose image comes from a registry that cannot be reached."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from kubernetes import client

from shakeout.k8s._api import ActivityFailed, ApiException, apps, namespace, not_found
from shakeout.k8s.actions._common import Conf, read_deployment

__all__ = [
    "delete_canary",
    "deploy_canary",
    "remember_replicas",
    "restore_deployment_env",
    "restore_deployment_image",
    "restore_replicas",
    "set_deployment_env",
    "set_deployment_image",
]

SAVED_ENV = "shakeout.io/saved-env"
SAVED_REPLICAS = "shakeout.io/replicas-before"
SAVED_IMAGE = "shakeout.io/image-before"
VERSION_LABEL = "app.kubernetes.io/version"
TRACK_LABEL = "shakeout.io/track"


def _container_env(deployment: Any) -> dict[str, str | None]:
    container = deployment.spec.template.spec.containers[0]
    return {e.name: e.value for e in container.env or []}


def set_deployment_env(
    service: str,
    env: dict[str, Any],
    version: str | None = None,
    configuration: Conf = None,
    secrets: Conf = None,
) -> dict[str, Any]:
    """Patch environment variables (and the version label) of a Deployment's first container.

    The reference services read their fault knobs from the environment
    (``SHAKEOUT_CRASH_ON_START``, ``SHAKEOUT_ERROR_RATE``, ``SHAKEOUT_EXTRA_LATENCY_MS``), so
    this is a new rollout of the Deployment with a faulty configuration. The values it replaces
    are saved in the ``shakeout.io/saved-env`` annotation (only the first time, so applying
    twice still restores the original) for :func:`restore_deployment_env`.
    """
    ns = namespace(configuration)
    dep = read_deployment(service, ns, secrets)
    current = _container_env(dep)
    labels = dep.spec.template.metadata.labels or {}
    annotations = dep.metadata.annotations or {}
    saved: Any = json.loads(annotations[SAVED_ENV]) if SAVED_ENV in annotations else None
    if saved is None:
        saved = {
            "env": {k: current.get(k) for k in env},
            "version": labels.get(VERSION_LABEL),
        }
    container = dep.spec.template.spec.containers[0].name
    template: dict[str, Any] = {
        "spec": {
            "containers": [
                {"name": container, "env": [{"name": k, "value": str(v)} for k, v in env.items()]}
            ]
        }
    }
    if version is not None:
        template["metadata"] = {"labels": {VERSION_LABEL: version}}
        template["spec"]["containers"][0]["env"].append(
            {"name": "SHAKEOUT_VERSION", "value": version}
        )
        saved["env"].setdefault("SHAKEOUT_VERSION", current.get("SHAKEOUT_VERSION"))
    body = {
        "metadata": {"annotations": {SAVED_ENV: json.dumps(saved, sort_keys=True)}},
        "spec": {"template": template},
    }
    apps(secrets).patch_namespaced_deployment(service, ns, body)
    return {"deployment": service, "namespace": ns, "env": {k: str(v) for k, v in env.items()}}


def restore_deployment_env(
    service: str, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """Undo :func:`set_deployment_env`: put the saved values back; nothing saved, nothing done."""
    ns = namespace(configuration)
    dep = read_deployment(service, ns, secrets)
    annotations = dep.metadata.annotations or {}
    if SAVED_ENV not in annotations:
        return {"deployment": service, "restored": False}
    saved = json.loads(annotations[SAVED_ENV])
    container = dep.spec.template.spec.containers[0].name
    env: list[dict[str, Any]] = []
    for name, value in saved["env"].items():
        if value is None:
            # The variable did not exist before: delete it (strategic merge directive).
            env.append({"name": name, "$patch": "delete"})
        else:
            env.append({"name": name, "value": value})
    template: dict[str, Any] = {"spec": {"containers": [{"name": container, "env": env}]}}
    template["metadata"] = {"labels": {VERSION_LABEL: saved.get("version")}}
    body = {"metadata": {"annotations": {SAVED_ENV: None}}, "spec": {"template": template}}
    apps(secrets).patch_namespaced_deployment(service, ns, body)
    return {"deployment": service, "restored": True, "env": saved["env"]}


def deploy_canary(
    service: str,
    version: str,
    weight: float = 0.2,
    env: dict[str, Any] | None = None,
    configuration: Conf = None,
    secrets: Conf = None,
) -> dict[str, Any]:
    """Run a canary Deployment ``<service>-canary`` beside the stable one.

    It is a copy of the stable Deployment's pod template on the ``canary`` track with the
    version label and ``env`` changed. The service's Service selects both tracks, so the canary
    takes traffic by replica count: ``replicas = ceil(stable * weight / (1 - weight))`` (at
    least one) gives it about ``weight`` of the requests.
    """
    if not 0 < float(weight) < 1:
        raise ActivityFailed(f"canary weight must be within (0, 1), got {weight}")
    ns = namespace(configuration)
    stable = read_deployment(service, ns, secrets)
    stable_replicas = stable.spec.replicas or 1
    replicas = max(1, math.ceil(stable_replicas * float(weight) / (1 - float(weight))))
    api_client = client.ApiClient()
    template = api_client.sanitize_for_serialization(  # type: ignore[no-untyped-call]
        copy.deepcopy(stable.spec.template)
    )
    labels = {
        **template["metadata"].get("labels", {}),
        TRACK_LABEL: "canary",
        VERSION_LABEL: version,
    }
    template["metadata"]["labels"] = labels
    container = template["spec"]["containers"][0]
    overrides = {"SHAKEOUT_VERSION": version, **{k: str(v) for k, v in (env or {}).items()}}
    container["env"] = [e for e in container.get("env", []) if e["name"] not in overrides] + [
        {"name": k, "value": v} for k, v in overrides.items()
    ]
    selector: dict[str, str] = {
        "app.kubernetes.io/name": labels.get("app.kubernetes.io/name", service),
        TRACK_LABEL: "canary",
    }
    body: Any = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{service}-canary",
            "labels": {**(stable.metadata.labels or {}), TRACK_LABEL: "canary"},
            "annotations": {"shakeout.io/canary-of": service},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "progressDeadlineSeconds": stable.spec.progress_deadline_seconds or 60,
            "template": template,
        },
    }
    try:
        apps(secrets).create_namespaced_deployment(ns, body)
    except ApiException as exc:
        if exc.status != 409:
            raise ActivityFailed(f"canary of {ns}/{service}: {exc.status} {exc.reason}") from None
    return {"deployment": f"{service}-canary", "replicas": replicas, "version": version}


def delete_canary(service: str, configuration: Conf = None, secrets: Conf = None) -> dict[str, Any]:
    """Delete ``<service>-canary`` (the rollback of :func:`deploy_canary`); absent is fine."""
    ns = namespace(configuration)
    try:
        apps(secrets).delete_namespaced_deployment(f"{service}-canary", ns)
    except ApiException as exc:
        if not_found(exc):
            return {"deployment": f"{service}-canary", "deleted": False}
        raise ActivityFailed(f"canary of {ns}/{service}: {exc.status} {exc.reason}") from None
    return {"deployment": f"{service}-canary", "deleted": True}


def remember_replicas(service: str, configuration: Conf = None, secrets: Conf = None) -> int:
    """Save the Deployment's replica count in an annotation (once) before a scale fault."""
    ns = namespace(configuration)
    dep = read_deployment(service, ns, secrets)
    annotations = dep.metadata.annotations or {}
    if SAVED_REPLICAS in annotations:
        return int(annotations[SAVED_REPLICAS])
    replicas = int(dep.spec.replicas or 1)
    body = {"metadata": {"annotations": {SAVED_REPLICAS: str(replicas)}}}
    apps(secrets).patch_namespaced_deployment(service, ns, body)
    return replicas


def restore_replicas(
    service: str, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """Scale back to the count :func:`remember_replicas` saved; nothing saved, nothing done."""
    ns = namespace(configuration)
    dep = read_deployment(service, ns, secrets)
    annotations = dep.metadata.annotations or {}
    if SAVED_REPLICAS not in annotations:
        return {"deployment": service, "restored": False}
    replicas = int(annotations[SAVED_REPLICAS])
    body = {"metadata": {"annotations": {SAVED_REPLICAS: None}}, "spec": {"replicas": replicas}}
    apps(secrets).patch_namespaced_deployment(service, ns, body)
    return {"deployment": service, "restored": True, "replicas": replicas}


def set_deployment_image(
    service: str,
    registry: str,
    version: str = "v2",
    configuration: Conf = None,
    secrets: Conf = None,
) -> dict[str, Any]:
    """Release ``version`` of a Deployment from ``registry``: its first container's image
    becomes ``<registry>/<repository name>:<version>``, a rolling update like any release.

    With a registry the nodes cannot reach (``registry.invalid``: RFC 2606 names never resolve)
    the new pods stay in ``ImagePullBackOff``, as in a registry outage during a release; a
    Deployment with ``maxUnavailable: 0`` keeps its old pods serving until the progress
    deadline. The image it replaces is kept in ``shakeout.io/image-before`` (the first time
    only) for :func:`restore_deployment_image`.
    """
    ns = namespace(configuration)
    dep = read_deployment(service, ns, secrets)
    container = dep.spec.template.spec.containers[0]
    annotations = dep.metadata.annotations or {}
    before = annotations.get(SAVED_IMAGE, container.image)
    name = before.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    image = f"{registry}/{name}:{version}"
    body = {
        "metadata": {"annotations": {SAVED_IMAGE: before}},
        "spec": {"template": {"spec": {"containers": [{"name": container.name, "image": image}]}}},
    }
    apps(secrets).patch_namespaced_deployment(service, ns, body)
    return {"deployment": service, "namespace": ns, "image": image, "before": before}


def restore_deployment_image(
    service: str, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """Undo :func:`set_deployment_image` (idempotent: nothing saved, nothing done)."""
    ns = namespace(configuration)
    dep = read_deployment(service, ns, secrets)
    before = (dep.metadata.annotations or {}).get(SAVED_IMAGE)
    if before is None:
        return {"deployment": service, "restored": False}
    container = dep.spec.template.spec.containers[0].name
    body = {
        "metadata": {"annotations": {SAVED_IMAGE: None}},
        "spec": {"template": {"spec": {"containers": [{"name": container, "image": before}]}}},
    }
    apps(secrets).patch_namespaced_deployment(service, ns, body)
    return {"deployment": service, "restored": True, "image": before}
