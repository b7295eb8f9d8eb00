"""Chaos Toolkit probes of the embedded platform (``shakeout.chaos.local.probes``)."""

from __future__ import annotations

import time
from typing import Any

from shakeout.chaos.hold import hold_fault
from shakeout.chaos.local import client

__all__ = [
    "all_replicas_ready",
    "config_status",
    "key_status",
    "observe",
    "old_key_refused",
    "orders_schema",
    "replicas",
    "rollout_status",
    "wait_for_current_key",
    "wait_for_rollout",
    "wait_for_rollout_decision",
    "wait_until_ready",
]


def all_replicas_ready(within_s: float = 0.0, configuration: dict[str, Any] | None = None) -> bool:
    """True when every replica of every service answers its readiness probe, now or within
    ``within_s`` seconds (a replica the autoscaler just added needs a moment to be ready)."""
    deadline = time.monotonic() + within_s
    with client(configuration) as platform:
        while True:
            if all(r["ready"] for r in platform.replicas()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)  # poll the control API under the deadline above


def replicas(
    service: str | None = None, configuration: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Replicas (of one service, or all) with zone, version, state, readiness and restarts."""
    with client(configuration) as platform:
        found = platform.replicas()
    return [r for r in found if service is None or r["service"] == service]


def rollout_status(service: str, configuration: dict[str, Any] | None = None) -> str:
    """Status of the service's latest rollout: progressing, available, rolled_back, promoted."""
    with client(configuration) as platform:
        rollout = platform.status()["services"][service]["rollout"]
    return "none" if rollout is None else str(rollout["status"])


def wait_for_rollout(
    service: str, timeout_s: float = 30.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until the service's rollout is no longer progressing, or ``timeout_s`` passes.

    Returns the rollout record with ``waited_s``; a rollout still ``progressing`` after the
    timeout is returned as it is, so a tolerance on ``status`` can judge it.
    """
    started = time.monotonic()
    with client(configuration) as platform:
        while True:
            rollout = platform.status()["services"][service]["rollout"] or {"status": "none"}
            waited = time.monotonic() - started
            if rollout["status"] != "progressing" or waited >= timeout_s:
                return {**rollout, "waited_s": round(waited, 3)}
            time.sleep(0.1)  # poll the control API under the timeout above


def wait_for_rollout_decision(
    service: str, timeout_s: float = 30.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until the service's rollout is promoted or rolled back, or ``timeout_s`` passes.

    Unlike ``wait_for_rollout`` an ``available`` rollout is still waited on: this is how an
    experiment holds a canary while the platform's analysis decides. Returns the rollout record
    with ``waited_s``.
    """
    started = time.monotonic()
    with client(configuration) as platform:
        while True:
            rollout = platform.status()["services"][service]["rollout"] or {"status": "none"}
            waited = time.monotonic() - started
            if rollout["status"] not in ("progressing", "available") or waited >= timeout_s:
                return {**rollout, "waited_s": round(waited, 3)}
            time.sleep(0.1)  # poll the control API under the timeout above


def observe(seconds: float, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hold the fault for ``seconds`` (longer when a game day holds it, see
    :mod:`shakeout.chaos.hold`), then report how many replicas were ready at the end.

    The fault window of an experiment is this probe's run in the journal.
    """
    held = hold_fault(seconds)  # a game day's facilitator may hold it longer
    with client(configuration) as platform:
        found = platform.replicas()
    return {"held_s": held, "ready": sum(1 for r in found if r["ready"]), "total": len(found)}


def wait_until_ready(
    timeout_s: float = 30.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until every replica is ready again (recovery), or ``timeout_s`` passes."""
    started = time.monotonic()
    with client(configuration) as platform:
        while True:
            found = platform.replicas()
            ready = all(r["ready"] for r in found)
            waited = time.monotonic() - started
            if ready or waited >= timeout_s:
                return {"ready": ready, "waited_s": round(waited, 3)}
            time.sleep(0.1)  # poll the control API under the timeout above


def config_status(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The live config: version, flags, any canary stage and the last change's outcome."""
    with client(configuration) as platform:
        return platform.config()


def orders_schema(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The orders store's schema state: schema, target, phase, tables, last migration."""
    with client(configuration) as platform:
        return platform.migration_status()


def key_status(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The secret store's key id and every replica's key id and source (store or cache)."""
    with client(configuration) as platform:
        return platform.secrets_status()


def wait_for_current_key(
    timeout_s: float = 10.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until every live replica uses the store's current key, or ``timeout_s`` passes.

    Returns the key status with ``waited_s``; ``all_current`` says whether they all did.
    """
    started = time.monotonic()
    with client(configuration) as platform:
        while True:
            status = platform.secrets_status()
            waited = time.monotonic() - started
            if status["all_current"] or waited >= timeout_s:
                return {**status, "waited_s": round(waited, 3)}
            time.sleep(0.2)  # poll the control API under the timeout above


def old_key_refused(
    service: str = "catalog", timeout_s: float = 60.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wait until a replica of ``service`` refuses the previous key (401), or ``timeout_s``.

    Returns the last check with ``waited_s``; ``refused`` says whether the old key is refused,
    which it must be once the platform's key overlap is over.
    """
    started = time.monotonic()
    with client(configuration) as platform:
        while True:
            check = platform.old_key_check(service)
            waited = time.monotonic() - started
            if check["refused"] or waited >= timeout_s:
                return {**check, "waited_s": round(waited, 3)}
            time.sleep(0.5)  # poll under the timeout above
