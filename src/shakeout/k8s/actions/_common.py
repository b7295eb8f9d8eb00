"""What the action modules share: the configuration type, labels, polling, a Deployment read."""

from __future__ import annotations

from typing import Any

from shakeout.k8s._api import ActivityFailed, ApiException, apps

__all__ = ["APP_LABEL", "POLL_S", "Conf", "read_deployment"]

APP_LABEL = "app.kubernetes.io/name"
POLL_S = 1.0

Conf = dict[str, Any] | None


def read_deployment(name: str, ns: str, secrets: Conf) -> Any:
    try:
        return apps(secrets).read_namespaced_deployment(name, ns)
    except ApiException as exc:
        raise ActivityFailed(f"deployment {ns}/{name}: {exc.status} {exc.reason}") from None
