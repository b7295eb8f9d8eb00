"""Job actions: schema migration, a Job on the orders store."""

from __future__ import annotations

import copy
import time
from typing import Any

from kubernetes import client

from shakeout.k8s._api import ActivityFailed, ApiException, core, namespace, not_found
from shakeout.k8s.actions._common import APP_LABEL, POLL_S, Conf, read_deployment
from shakeout.services.migration import SCHEMAS
from shakeout.services.orders import DB_FILENAME

__all__ = ["migration_job", "run_migration_job"]

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
    orders = read_deployment(ORDERS, ns, secrets)
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
