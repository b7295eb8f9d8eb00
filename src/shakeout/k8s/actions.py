"""Chaos Toolkit actions for the Kubernetes target that chaostoolkit-kubernetes does not offer.

chaosk8s kills pods, scales, cordons, drains and drives Chaos Mesh; it has no action to
change a Deployment's environment and put it back, to run a canary beside a Deployment, to
remember a replica count for the rollback, to rotate or hide the shared-key Secret, or to
delete a Chaos Mesh object idempotently. These do, each revert idempotent (a rollback may run
after the method already reverted, or after a run that never got that far): the state needed
to revert is kept on the object itself (a ``shakeout.io/*`` annotation) or in a side object,
never in this process, so ``shakeout cleanup`` from another process can still undo it.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import secrets as secrets_module
import time
from typing import Any

from kubernetes import client

from shakeout.k8s._api import ActivityFailed, ApiException, apps, core, custom, namespace, not_found

__all__ = [
    "delete_canary",
    "delete_custom_object_if_present",
    "deploy_canary",
    "remember_replicas",
    "restore_deployment_env",
    "restore_replicas",
    "rotate_shared_key",
    "secret_store_down",
    "secret_store_up",
    "set_deployment_env",
]

SAVED_ENV = "shakeout.io/saved-env"
SAVED_REPLICAS = "shakeout.io/replicas-before"
VERSION_LABEL = "app.kubernetes.io/version"
TRACK_LABEL = "shakeout.io/track"
SAVED_SECRET_SUFFIX = "-shakeout-saved"
SECRET_KEY = "shakeout_shared_key_secret"
SECRET_FILE_KEY = "shakeout_shared_key_file"
OVERLAP_KEY = "shakeout_key_overlap_s"

Conf = dict[str, Any] | None


def _deployment(name: str, ns: str, secrets: Conf) -> Any:
    try:
        return apps(secrets).read_namespaced_deployment(name, ns)
    except ApiException as exc:
        raise ActivityFailed(f"deployment {ns}/{name}: {exc.status} {exc.reason}") from None


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
    dep = _deployment(service, ns, secrets)
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
    dep = _deployment(service, ns, secrets)
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
    stable = _deployment(service, ns, secrets)
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
    dep = _deployment(service, ns, secrets)
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
    dep = _deployment(service, ns, secrets)
    annotations = dep.metadata.annotations or {}
    if SAVED_REPLICAS not in annotations:
        return {"deployment": service, "restored": False}
    replicas = int(annotations[SAVED_REPLICAS])
    body = {"metadata": {"annotations": {SAVED_REPLICAS: None}}, "spec": {"replicas": replicas}}
    apps(secrets).patch_namespaced_deployment(service, ns, body)
    return {"deployment": service, "restored": True, "replicas": replicas}


def _secret_name(configuration: Conf) -> tuple[str, str]:
    conf = configuration or {}
    return str(conf.get(SECRET_KEY) or "shakeout-shared-key"), str(
        conf.get(SECRET_FILE_KEY) or "key.json"
    )


def rotate_shared_key(configuration: Conf = None, secrets: Conf = None) -> dict[str, Any]:
    """Rotate the shared key in its Secret: a new ``current``, the old one ``previous``.

    The services read the Secret as a mounted file and re-read it when it changes; the kubelet
    refreshes mounted Secrets within its sync period (about a minute), so ``overlap_s``
    (configuration ``shakeout_key_overlap_s``, default 120) must be longer than that. Rotation is
    forward-only: there is nothing to roll back.
    """
    ns = namespace(configuration)
    name, key = _secret_name(configuration)
    try:
        secret = core(secrets).read_namespaced_secret(name, ns)
    except ApiException as exc:
        raise ActivityFailed(f"secret {ns}/{name}: {exc.status} {exc.reason}") from None
    raw = (secret.data or {}).get(key)
    if raw is None:
        raise ActivityFailed(f"secret {ns}/{name} has no key {key!r}")
    old = json.loads(base64.b64decode(raw))
    overlap = float((configuration or {}).get(OVERLAP_KEY) or 120.0)
    new = {
        "current": secrets_module.token_urlsafe(32),
        "previous": old["current"],
        "rotated_at": time.time(),
        "overlap_s": overlap,
    }
    encoded = base64.b64encode(json.dumps(new).encode()).decode()
    core(secrets).patch_namespaced_secret(name, ns, {"data": {key: encoded}})
    return {"secret": name, "rotated_at": new["rotated_at"], "overlap_s": overlap}


def secret_store_down(configuration: Conf = None, secrets: Conf = None) -> dict[str, Any]:
    """Make the secret store unreachable: the shared-key Secret is moved aside.

    A copy is created as ``<name>-shakeout-saved`` first, then the Secret is deleted. Running
    pods keep the file they have (the kubelet keeps the last content); a pod started now cannot
    mount it and stays in ContainerCreating, as with an unreachable external store.
    """
    ns = namespace(configuration)
    name, _ = _secret_name(configuration)
    api = core(secrets)
    try:
        secret: Any = api.read_namespaced_secret(name, ns)
    except ApiException as exc:
        if not_found(exc):
            return {"secret": name, "moved": False}
        raise ActivityFailed(f"secret {ns}/{name}: {exc.status} {exc.reason}") from None
    saved: Any = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name + SAVED_SECRET_SUFFIX, "labels": secret.metadata.labels or {}},
        "type": secret.type,
        "data": secret.data,
    }
    try:
        api.create_namespaced_secret(ns, saved)
    except ApiException as exc:
        if exc.status != 409:
            raise ActivityFailed(
                f"cannot save secret {ns}/{name}: {exc.status} {exc.reason}"
            ) from None
    api.delete_namespaced_secret(name, ns)
    return {"secret": name, "moved": True}


def secret_store_up(configuration: Conf = None, secrets: Conf = None) -> dict[str, Any]:
    """Bring the shared-key Secret back from its saved copy; idempotent."""
    ns = namespace(configuration)
    name, _ = _secret_name(configuration)
    api = core(secrets)
    try:
        saved: Any = api.read_namespaced_secret(name + SAVED_SECRET_SUFFIX, ns)
    except ApiException as exc:
        if not_found(exc):
            return {"secret": name, "restored": False}
        raise ActivityFailed(f"secret {ns}/{name}: {exc.status} {exc.reason}") from None
    body: Any = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": saved.metadata.labels or {}},
        "type": saved.type,
        "data": saved.data,
    }
    try:
        api.create_namespaced_secret(ns, body)
    except ApiException as exc:
        if exc.status != 409:  # 409: the Secret is back already (a rollback after the revert)
            raise ActivityFailed(
                f"cannot restore secret {ns}/{name}: {exc.status} {exc.reason}"
            ) from None
    api.delete_namespaced_secret(name + SAVED_SECRET_SUFFIX, ns)
    return {"secret": name, "restored": True}


def delete_custom_object_if_present(
    group: str,
    version: str,
    plural: str,
    name: str,
    configuration: Conf = None,
    secrets: Conf = None,
) -> dict[str, Any]:
    """Delete a namespaced custom object (a Chaos Mesh fault); absent or no CRD is fine.

    ``chaosk8s.crd.actions.delete_custom_object`` fails on a 404, which would make a rollback
    after the method's own revert fail; this one does not.
    """
    ns = namespace(configuration)
    try:
        custom(secrets).delete_namespaced_custom_object(group, version, ns, plural, name)
    except ApiException as exc:
        if not_found(exc):
            return {"object": f"{plural}.{group}/{name}", "deleted": False}
        raise ActivityFailed(f"{plural}.{group} {ns}/{name}: {exc.status} {exc.reason}") from None
    return {"object": f"{plural}.{group}/{name}", "deleted": True}
