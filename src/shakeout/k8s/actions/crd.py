"""Custom object actions: delete a Chaos Mesh fault, absent or not."""

from __future__ import annotations

from typing import Any

from shakeout.k8s._api import ActivityFailed, ApiException, custom, namespace, not_found
from shakeout.k8s.actions._common import Conf

__all__ = ["delete_custom_object_if_present"]


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
