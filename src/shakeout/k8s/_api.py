"""The Kubernetes API clients the ShakeOut activities use, built the way chaosk8s builds its own.

Activities get their cluster the same way the chaosk8s activities in the same experiment do
(``chaosk8s.create_k8s_api_client``: ``$KUBECONFIG`` and ``KUBERNETES_CONTEXT`` from the
environment or the experiment's secrets), so one experiment never talks to two clusters. The
namespace comes from the ``shakeout_namespace`` configuration key.
"""

from __future__ import annotations

import os
from typing import Any

from chaosk8s import create_k8s_api_client, get_config_path, has_local_config_file
from chaoslib.exceptions import ActivityFailed
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

__all__ = ["ActivityFailed", "ApiException", "apps", "core", "custom", "namespace", "not_found"]

NAMESPACE_KEY = "shakeout_namespace"


def namespace(configuration: dict[str, Any] | None) -> str:
    """The target namespace from the experiment's configuration (required: no silent default)."""
    ns = (configuration or {}).get(NAMESPACE_KEY)
    if not isinstance(ns, str) or not ns:
        raise ActivityFailed(
            f"configuration key {NAMESPACE_KEY!r} is missing: run this experiment through "
            "ShakeOut's Kubernetes target, or pass --var shakeout_namespace=<namespace>"
        )
    return ns


def _api(secrets: dict[str, Any] | None) -> client.ApiClient:
    # With a kubeconfig file, read it now from $KUBECONFIG: chaosk8s's own loader uses the
    # client's default path, fixed when `kubernetes` was imported, and sets the process-wide
    # default configuration. Same file and context rules, without either quirk.
    path = get_config_path()
    if has_local_config_file(path):
        context = (secrets or {}).get("KUBERNETES_CONTEXT") or os.environ.get("KUBERNETES_CONTEXT")
        # the loader is untyped; it returns an ApiClient
        loaded: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context
        )
        return loaded
    api: client.ApiClient = create_k8s_api_client(secrets)
    return api


def core(secrets: dict[str, Any] | None = None) -> client.CoreV1Api:
    """The core/v1 API."""
    return client.CoreV1Api(_api(secrets))


def apps(secrets: dict[str, Any] | None = None) -> client.AppsV1Api:
    """The apps/v1 API."""
    return client.AppsV1Api(_api(secrets))


def custom(secrets: dict[str, Any] | None = None) -> client.CustomObjectsApi:
    """The custom objects API (Chaos Mesh resources)."""
    return client.CustomObjectsApi(_api(secrets))


def extensions(secrets: dict[str, Any] | None = None) -> client.ApiextensionsV1Api:
    """The apiextensions/v1 API (is a CRD installed?)."""
    return client.ApiextensionsV1Api(_api(secrets))


def not_found(exc: ApiException) -> bool:
    """Whether an API error is a 404 (what idempotent rollbacks ignore)."""
    return bool(exc.status == 404)
