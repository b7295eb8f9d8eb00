"""ConfigMap actions: config change, a feature flag in the shakeout-config ConfigMap."""

from __future__ import annotations

import json
from typing import Any

from shakeout.k8s._api import ActivityFailed, ApiException, core, namespace
from shakeout.k8s.actions._common import Conf
from shakeout.services.flags import parse_config, validate_flags

__all__ = ["restore_config", "set_config_flag"]

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
