"""Secret actions: rotate the shared key, or move its Secret aside (a secret-store outage)."""

from __future__ import annotations

import base64
import secrets as secrets_module
import time
from typing import Any

from shakeout.contracts import SharedKeyDocument, key_id
from shakeout.k8s._api import ActivityFailed, ApiException, core, namespace, not_found
from shakeout.k8s.actions._common import Conf

__all__ = ["rotate_shared_key", "secret_store_down", "secret_store_up"]

SAVED_SECRET_SUFFIX = "-shakeout-saved"
SECRET_KEY = "shakeout_shared_key_secret"
SECRET_FILE_KEY = "shakeout_shared_key_file"
OVERLAP_KEY = "shakeout_key_overlap_s"


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
    forward-only: there is nothing to roll back. What it returns (and so the Chaos Toolkit
    journal) names the keys by id only (``shakeout.contracts.key_id``); an API error keeps
    status and reason only, never a body that could echo the Secret.
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
    try:
        old = SharedKeyDocument.loads(base64.b64decode(raw))
    except ValueError as exc:  # a bad document, its JSON, or its encoding
        raise ActivityFailed(f"secret {ns}/{name}: key {key!r}: {exc}") from None
    overlap = float((configuration or {}).get(OVERLAP_KEY) or 120.0)
    new = SharedKeyDocument(secrets_module.token_urlsafe(32), old.current, time.time(), overlap)
    encoded = base64.b64encode(new.dumps().encode()).decode()
    try:
        core(secrets).patch_namespaced_secret(name, ns, {"data": {key: encoded}})
    except ApiException as exc:
        raise ActivityFailed(f"secret {ns}/{name}: {exc.status} {exc.reason}") from None
    return {
        "secret": name,
        "rotated_at": new.rotated_at,
        "overlap_s": overlap,
        "key_id": key_id(new.current),
        "previous_key_id": key_id(old.current),
    }


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
