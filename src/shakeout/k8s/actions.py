"""Chaos Toolkit actions for the Kubernetes target that chaostoolkit-kubernetes does not offer.

chaosk8s kills pods, scales, cordons, drains and drives Chaos Mesh; it has no action to
change a Deployment's environment and put it back, to run a canary beside a Deployment, to
remember a replica count for the rollback, to rotate or hide the shared-key Secret, to
delete a Chaos Mesh object idempotently, to take the nodes of one service's pods away, to
change a feature flag in the config ConfigMap, or to run the orders store's schema migration
as a Job. These do, each revert idempotent (a rollback may run
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
from shakeout.services.flags import parse_config, validate_flags
from shakeout.services.migration import SCHEMAS
from shakeout.services.orders import DB_FILENAME

__all__ = [
    "delete_canary",
    "delete_custom_object_if_present",
    "deploy_canary",
    "migration_job",
    "remember_replicas",
    "restore_config",
    "restore_deployment_env",
    "restore_replicas",
    "return_nodes_of_service",
    "rotate_shared_key",
    "run_migration_job",
    "secret_store_down",
    "secret_store_up",
    "set_config_flag",
    "set_deployment_env",
    "take_nodes_of_service",
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


# --- capacity loss: the nodes of some of a service's pods go away ---------------------------

LOST_NODE_LABEL = "shakeout.io/capacity-loss"
LOST_NODE_NAMESPACE = "shakeout.io/capacity-loss-namespace"
APP_LABEL = "app.kubernetes.io/name"
POLL_S = 1.0


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


# --- config change: a feature flag in the shakeout-config ConfigMap --------------------------

CONFIG_MAP_KEY = "shakeout_config_map"
CONFIG_FILE = "config.json"
SAVED_CONFIG = "shakeout.io/config-before"


def _config_map(configuration: Conf, secrets: Conf) -> tuple[str, str, dict[str, Any], Any]:
    """(namespace, name, parsed config.json, the ConfigMap), failing with a clear reason."""
    ns = namespace(configuration)
    name = str((configuration or {}).get(CONFIG_MAP_KEY) or "shakeout-config")
    try:
        cm = core(secrets).read_namespaced_config_map(name, ns)
    except ApiException as exc:
        raise ActivityFailed(
            f"configmap {ns}/{name}: {exc.status} {exc.reason} (apply targets/kubernetes/base)"
        ) from None
    raw = (cm.data or {}).get(CONFIG_FILE)
    if raw is None:
        raise ActivityFailed(f"configmap {ns}/{name} has no key {CONFIG_FILE!r}")
    try:
        config = json.loads(raw)
        parse_config(config, zone="")  # the structure the services accept
    except ValueError as exc:
        raise ActivityFailed(f"configmap {ns}/{name} {CONFIG_FILE}: {exc}") from None
    return ns, name, config, cm


def set_config_flag(
    flag: str, value: str, configuration: Conf = None, secrets: Conf = None
) -> dict[str, Any]:
    """Set one feature flag in the config ConfigMap; the outcome, as the local platform's.

    The change is validated against ``shakeout.services.flags`` first: an unknown flag or a
    value outside the flag's list is ``rejected`` and nothing changes. Otherwise config.json
    gets the value under the next version number, and the content it replaces is kept in the
    ``shakeout.io/config-before`` annotation (only the first time: applying twice still
    restores the original) for :func:`restore_config`. Kubernetes has no staged config
    rollout: every pod sees the change when the kubelet refreshes the mounted ConfigMap.
    """
    changes = {flag: value}
    problems = validate_flags(changes)
    if problems:
        return {"status": "rejected", "reason": "; ".join(problems), "flags": changes}
    ns, name, config, cm = _config_map(configuration, secrets)
    annotations = cm.metadata.annotations or {}
    saved = annotations.get(SAVED_CONFIG) or cm.data[CONFIG_FILE]
    version = int(config["version"]) + 1
    new = {"version": version, "flags": {**config["flags"], **changes}, "canary": None}
    body = {
        "metadata": {"annotations": {SAVED_CONFIG: saved}},
        "data": {CONFIG_FILE: json.dumps(new, sort_keys=True)},
    }
    core(secrets).patch_namespaced_config_map(name, ns, body)
    return {"status": "applied", "version": version, "flags": changes, "staged": False}


def restore_config(configuration: Conf = None, secrets: Conf = None) -> dict[str, Any]:
    """Undo :func:`set_config_flag`: the saved flags, under the next version number.

    A new version (rather than the old number) makes every replica see a change and reset its
    per-version counters, as the local platform's revert does. Nothing saved: ``unchanged``.
    """
    ns, name, config, cm = _config_map(configuration, secrets)
    annotations = cm.metadata.annotations or {}
    if SAVED_CONFIG not in annotations:
        return {"status": "unchanged", "version": config["version"], "flags": config["flags"]}
    before = json.loads(annotations[SAVED_CONFIG])
    version = int(config["version"]) + 1
    restored = {**before, "version": version}
    body = {
        "metadata": {"annotations": {SAVED_CONFIG: None}},
        "data": {CONFIG_FILE: json.dumps(restored, sort_keys=True)},
    }
    core(secrets).patch_namespaced_config_map(name, ns, body)
    return {"status": "reverted", "version": version, "flags": before["flags"]}


# --- schema migration: a Job on the orders store ---------------------------------------------

MIGRATION_JOB = "shakeout-migrate-orders"
ORDERS = "orders"


def migration_job(
    orders: dict[str, Any],
    to: str,
    *,
    name: str = MIGRATION_JOB,
    step_pause_s: float = 1.0,
    batch_rows: int = 200,
    deadline_s: int = 600,
) -> dict[str, Any]:
    """The Job that migrates the orders store to schema ``to``, from the orders Deployment.

    ``orders`` is the Deployment as a dict (API field names). The Job runs the Deployment's
    image with ``python -m shakeout.services.migration`` (online mode) on the volume mounted
    where the orders pods keep their store (``SHAKEOUT_DATA_DIR``), with the same pod and
    container security context, so it opens the same SQLite file. Its pods do not carry the
    orders label: the orders Service and disruption budget do not count them.
    """
    if to not in SCHEMAS:
        raise ActivityFailed(f"unknown schema {to!r} (known: {', '.join(SCHEMAS)})")
    pod = orders["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    data_dir = env.get("SHAKEOUT_DATA_DIR")
    if not data_dir:
        raise ActivityFailed("deployment orders: its container sets no SHAKEOUT_DATA_DIR")
    mounts = [
        m
        for m in container.get("volumeMounts") or []
        if data_dir.rstrip("/") == m["mountPath"].rstrip("/")
        or data_dir.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    if not mounts:
        raise ActivityFailed(f"deployment orders: no volume is mounted at {data_dir}")
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volume = next((v for v in pod.get("volumes") or [] if v["name"] == mount["name"]), None)
    if volume is None:
        raise ActivityFailed(f"deployment orders: volume {mount['name']!r} is not declared")
    labels = {
        APP_LABEL: "orders-migration",
        "app.kubernetes.io/part-of": "shakeout",
        "shakeout.io/migration-to": to,
    }
    job_container: dict[str, Any] = {
        "name": "migrate",
        "image": container["image"],
        "command": ["python", "-m", "shakeout.services.migration"],
        "args": [
            "--db",
            f"{data_dir.rstrip('/')}/{DB_FILENAME}",
            "--to",
            to,
            "--mode",
            "online",
            "--step-pause-s",
            str(float(step_pause_s)),
            "--batch-rows",
            str(int(batch_rows)),
        ],
        "volumeMounts": [{"name": mount["name"], "mountPath": mount["mountPath"]}],
    }
    for key in ("imagePullPolicy", "resources", "securityContext"):
        if key in container:
            job_container[key] = copy.deepcopy(container[key])
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [job_container],
        "volumes": [copy.deepcopy(volume)],
    }
    if "securityContext" in pod:
        pod_spec["securityContext"] = copy.deepcopy(pod["securityContext"])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,  # a failed migration is reported, not retried behind our back
            "activeDeadlineSeconds": int(deadline_s),
            "ttlSecondsAfterFinished": 3600,  # a failed Job is kept for its logs, then removed
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _job_outcome(job: Any) -> str | None:
    """``succeeded``/``failed`` once the Job has finished, else None."""
    status = job.status
    if status is None:
        return None
    for condition in status.conditions or []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return "succeeded" if condition.type == "Complete" else "failed"
    if status.succeeded:
        return "succeeded"
    if status.failed:
        return "failed"
    return None


def _delete_job(batch: client.BatchV1Api, name: str, ns: str, wait_s: float) -> bool:
    """Delete a Job and its pods (foreground: the Job goes once its pods are gone)."""
    try:
        batch.delete_namespaced_job(name, ns, propagation_policy="Foreground")
    except ApiException as exc:
        if not_found(exc):
            return False
        raise ActivityFailed(f"job {ns}/{name}: {exc.status} {exc.reason}") from None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            batch.read_namespaced_job(name, ns)
        except ApiException as exc:
            if not_found(exc):
                return True
            raise ActivityFailed(f"job {ns}/{name}: {exc.status} {exc.reason}") from None
        time.sleep(POLL_S)  # foreground deletion: wait for the pods to go, under the deadline
    raise ActivityFailed(f"job {ns}/{name} still exists {wait_s}s after its deletion")


def run_migration_job(
    to: str = "v2",
    timeout_s: float = 600.0,
    step_pause_s: float = 1.0,
    batch_rows: int = 200,
    configuration: Conf = None,
    secrets: Conf = None,
) -> dict[str, Any]:
    """Migrate the orders store to schema ``to`` with a Job (:func:`migration_job`); wait; delete.

    A Job of the same name left by an earlier run (killed, or failed and kept) is deleted first,
    its pod included: a migration stopped half-way is safe, the next one finishes or aborts it
    (``shakeout.services.migration.migrate``). Migrating to the schema the store already has
    is a no-op Job, so the revert (``to: v1``) is idempotent. A failed Job is left for
    ``kubectl logs`` and the action fails; a successful one is deleted.
    """
    ns = namespace(configuration)
    orders = _deployment(ORDERS, ns, secrets)
    api_client = client.ApiClient()
    as_dict = api_client.sanitize_for_serialization(orders)  # type: ignore[no-untyped-call]
    body: Any = migration_job(
        as_dict, to, step_pause_s=step_pause_s, batch_rows=batch_rows, deadline_s=int(timeout_s)
    )
    name = body["metadata"]["name"]
    batch = client.BatchV1Api(core(secrets).api_client)
    _delete_job(batch, name, ns, wait_s=60.0)
    started = time.monotonic()
    try:
        batch.create_namespaced_job(ns, body)
    except ApiException as exc:
        raise ActivityFailed(f"cannot create job {ns}/{name}: {exc.status} {exc.reason}") from None
    while True:
        outcome = _job_outcome(batch.read_namespaced_job(name, ns))
        waited = round(time.monotonic() - started, 3)
        if outcome == "failed":
            raise ActivityFailed(f"migration to {to} failed: see `kubectl logs -n {ns} job/{name}`")
        if outcome == "succeeded":
            break
        if waited >= float(timeout_s):
            raise ActivityFailed(f"migration job {ns}/{name} not finished after {timeout_s}s")
        time.sleep(POLL_S)  # poll the Job under the timeout above
    _delete_job(batch, name, ns, wait_s=60.0)
    return {"job": name, "to": to, "status": "completed", "took_s": waited}
