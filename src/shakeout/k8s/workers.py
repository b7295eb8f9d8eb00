"""The in-cluster Locust worker objects: created (replacing leftovers) and deleted for good.

A run killed before it cleaned up leaves its ``locust-master`` Service, EndpointSlice and worker
Deployment behind; the next run deletes each, waits until the API no longer has it, and
creates it afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from shakeout.errors import PlatformError

# How long a replaced worker object (left by a killed run) may take to disappear.
WORKER_DELETE_TIMEOUT_S = 30.0
# The objects ``render_locust_manifests`` creates, in the order they are deleted (workers
# first, so no pod is left reconnecting to a master address that is gone). Named here so that
# ``stop_workers`` needs no load spec; tests/k8s/test_remote_load.py proves they match.
WORKER_OBJECTS = (
    ("Deployment", "locust-worker"),
    ("EndpointSlice", "locust-master-harness"),
    ("Service", "locust-master"),
)

_Verb = Callable[..., Any]


def _verbs(api: client.ApiClient, kind: str) -> tuple[_Verb, _Verb, _Verb]:
    """The client's create, read and delete calls for one of the worker objects' kinds."""
    if kind == "Service":
        core = client.CoreV1Api(api)
        return (
            core.create_namespaced_service,
            core.read_namespaced_service,
            core.delete_namespaced_service,
        )
    if kind == "EndpointSlice":
        discovery = client.DiscoveryV1Api(api)
        return (
            discovery.create_namespaced_endpoint_slice,
            discovery.read_namespaced_endpoint_slice,
            discovery.delete_namespaced_endpoint_slice,
        )
    if kind == "Deployment":
        apps = client.AppsV1Api(api)
        return (
            apps.create_namespaced_deployment,
            apps.read_namespaced_deployment,
            apps.delete_namespaced_deployment,
        )
    raise ValueError(f"no worker object of kind {kind!r}")


def create_or_replace(api: client.ApiClient, ns: str, body: dict[str, Any]) -> None:
    """Create a worker object; one left by a killed run is deleted and created afresh."""
    kind, name = body["kind"], body["metadata"]["name"]
    create, _, _ = _verbs(api, kind)
    try:
        create(ns, body)
        return
    except ApiException as exc:
        if exc.status != 409:
            raise PlatformError(
                f"creating {kind} {ns}/{name} failed: {exc.status} {exc.reason}"
            ) from None
    # Left behind by a run that was killed before it cleaned up: delete it, wait until
    # the API no longer has it, create it afresh (a PUT would keep the old pods' spec
    # and cannot drop a Service's immutable fields).
    delete_and_wait(api, ns, kind, name)
    try:
        create(ns, body)
    except ApiException as exc:
        raise PlatformError(
            f"creating {kind} {ns}/{name} after removing the old one failed: "
            f"{exc.status} {exc.reason}"
        ) from None


def delete_and_wait(api: client.ApiClient, ns: str, kind: str, name: str) -> None:
    """Delete one object and wait until it is gone (404 at any point is success)."""
    _, read, delete = _verbs(api, kind)
    try:
        # Background: the Deployment disappears at once, its pods are collected after.
        delete(name, ns, propagation_policy="Background")
    except ApiException as exc:
        if exc.status == 404:
            return
        raise PlatformError(
            f"deleting {kind} {ns}/{name} failed: {exc.status} {exc.reason}"
        ) from None
    deadline = time.monotonic() + WORKER_DELETE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            read(name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise PlatformError(
                f"reading {kind} {ns}/{name} failed: {exc.status} {exc.reason}"
            ) from None
        time.sleep(0.2)  # finalizers still running: poll until gone, under the deadline
    raise PlatformError(
        f"{kind} {ns}/{name} was still present {WORKER_DELETE_TIMEOUT_S:g}s after its deletion"
    )
