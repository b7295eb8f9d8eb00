"""Chaos Toolkit actions against the embedded platform (``shakeout.chaos.local.actions``)."""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed

from shakeout.chaos.local import client

__all__ = [
    "deploy_next_version",
    "deploy_version",
    "drain_nodes_in_turn",
    "evict_replicas",
    "freeze_zone",
    "kill_replica",
    "kill_replicas",
    "kill_zone",
    "lose_zone_packets",
    "migrate_orders",
    "promote_version",
    "registry_down",
    "registry_up",
    "restore_capacity",
    "resume_zone",
    "revert_config",
    "rollback_version",
    "rotate_shared_key",
    "scale_service",
    "secret_store_down",
    "secret_store_up",
    "set_flag",
    "uncordon_every_node",
]

DRAIN_POLL_S = 0.2
"""How often a drain asks again for evictions its disruption budgets refused."""


def _env(env: dict[str, str | float | int] | None) -> dict[str, str]:
    """Environment values as a process gets them: typed experiment variables (an error rate
    as a float) become their text."""
    return {key: str(value) for key, value in (env or {}).items()}


def deploy_version(
    service: str,
    version: str,
    weight: float = 0.5,
    env: dict[str, str | float | int] | None = None,
    replicas: int | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Roll out ``version`` of ``service`` beside the stable one, taking ``weight`` of traffic.

    ``env`` is added to the new replicas' environment (the reference services read fault knobs
    from it, such as ``SHAKEOUT_CRASH_ON_START=1``).
    """
    with client(configuration) as platform:
        return platform.deploy(service, version, weight, _env(env), replicas)


def next_version(stable: str) -> str:
    """The version after ``stable``: ``v1`` -> ``v2``, anything else gets ``-next``."""
    if stable.startswith("v") and stable[1:].isdigit():
        return f"v{int(stable[1:]) + 1}"
    return f"{stable}-next"


def deploy_next_version(
    service: str,
    weight: float = 0.2,
    env: dict[str, str | float | int] | None = None,
    replicas: int | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Roll out the next version of ``service`` (``v1`` -> ``v2``) as a canary with ``weight``.

    The name follows the current stable version, so the same experiment can run again after
    a promotion.
    """
    with client(configuration) as platform:
        stable = platform.status()["services"][service]["stable_version"]
        return platform.deploy(service, next_version(stable), weight, _env(env), replicas)


def evict_replicas(
    service: str, count: int = 1, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Capacity loss: ``count`` replicas of a service lose their node and are not rescheduled."""
    with client(configuration) as platform:
        return platform.evict(service, count)


def restore_capacity(service: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Undo ``evict_replicas`` (idempotent)."""
    with client(configuration) as platform:
        return platform.restore(service)


def rollback_version(service: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Roll back the version being rolled out; does nothing when there is none."""
    with client(configuration) as platform:
        return platform.rollback(service)


def promote_version(service: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Make the version being rolled out the stable one."""
    with client(configuration) as platform:
        return platform.promote(service)


def kill_replica(replica: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGKILL one replica; the platform restarts it with back-off."""
    with client(configuration) as platform:
        return platform.replica_action(replica, "kill")


def kill_zone(zone: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Take a zone down: its replicas stop and stay stopped until ``resume_zone``."""
    with client(configuration) as platform:
        return platform.zone_action(zone, "kill")


def freeze_zone(zone: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGSTOP every replica of a zone: they keep their ports but answer nothing."""
    with client(configuration) as platform:
        return platform.zone_action(zone, "freeze")


def resume_zone(zone: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Undo ``kill_zone`` or ``freeze_zone``."""
    with client(configuration) as platform:
        return platform.zone_action(zone, "resume")


def lose_zone_packets(
    zone: str, loss_percent: int, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The kernel drops ``loss_percent``% of the TCP segments to and from a zone's replicas
    (0: none again); nothing in the platform is told."""
    with client(configuration) as platform:
        return platform.zone_packet_loss(zone, int(loss_percent))


def rotate_shared_key(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rotate the services' shared internal key (the previous one stays valid for a while)."""
    with client(configuration) as platform:
        return platform.rotate_key()


def secret_store_down(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Make the secret store unreachable; running services keep their cached keys."""
    with client(configuration) as platform:
        return platform.secret_store(reachable=False)


def secret_store_up(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bring the secret store back."""
    with client(configuration) as platform:
        return platform.secret_store(reachable=True)


def registry_down(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """A registry outage: the image registry's process ends; nodes cannot pull new versions."""
    with client(configuration) as platform:
        return platform.registry(reachable=False)


def registry_up(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bring the image registry back (idempotent)."""
    with client(configuration) as platform:
        return platform.registry(reachable=True)


def kill_replicas(
    service: str, count: int = 1, configuration: dict[str, Any] | None = None
) -> list[str]:
    """SIGKILL ``count`` running replicas of a service (the platform restarts them)."""
    with client(configuration) as platform:
        victims = [r["id"] for r in platform.replicas() if r["service"] == service and r["pid"]][
            :count
        ]
        for replica in victims:
            platform.replica_action(replica, "kill")
    return victims


def scale_service(
    service: str, replicas: int | None = None, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Set the replica count of a service's stable version (None: the topology's count)."""
    with client(configuration) as platform:
        return platform.scale(service, replicas)


def set_flag(flag: str, value: str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Change one feature flag the way the platform rolls config out; returns the outcome.

    The outcome's ``status`` is ``applied``, ``rejected`` (invalid, nothing changed),
    ``rolled_back`` (the canary zones went unhealthy) or ``canary_failed`` (no auto-rollback).
    """
    with client(configuration) as platform:
        return platform.set_flags({flag: value})


def revert_config(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore the config in force before the last change (idempotent)."""
    with client(configuration) as platform:
        return platform.revert_config()


def migrate_orders(to: str = "v2", configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Migrate the orders store's schema to ``to`` (``v2``, or ``v1`` to go back), under load.

    Returns once done, with the outcome; the steps are ``migration_step`` platform events.
    """
    with client(configuration) as platform:
        return platform.migrate_orders(to)


def drain_nodes_in_turn(
    timeout_s: float = 30.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A rolling node upgrade, ``kubectl drain`` on each zone's node in turn.

    The node is cordoned (nothing new placed there); every replica on it is evicted through the
    platform's Eviction API, and an eviction a disruption budget refuses is asked again every
    0.2 s, as ``kubectl drain`` does; once no replica is left the node is uncordoned (upgraded
    and back) and the next one is drained. Fails, naming what is left, when a node is not empty
    within ``timeout_s``; ``uncordon_every_node`` (the rollback) undoes the cordon then.
    """
    drained: dict[str, list[str]] = {}
    with client(configuration) as platform:
        for zone in platform.status()["zones"]:
            platform.zone_action(zone, "cordon")
            deadline = time.monotonic() + float(timeout_s)
            evicted: list[str] = []
            while left := [r["id"] for r in platform.replicas() if r["zone"] == zone]:
                refused = [replica for replica in left if not platform.evict_replica(replica)]
                evicted += [replica for replica in left if replica not in refused]
                if refused and time.monotonic() >= deadline:
                    raise ActivityFailed(
                        f"node of zone {zone} not drained within {timeout_s:g} s: the disruption"
                        f" budgets still refuse the eviction of {', '.join(sorted(refused))}"
                    )
                if refused:
                    time.sleep(DRAIN_POLL_S)  # ask again, under the deadline above
            platform.zone_action(zone, "uncordon")
            drained[zone] = evicted
    return {"drained": drained}


def uncordon_every_node(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Undo a drain's cordons (idempotent): every zone's node is schedulable again."""
    with client(configuration) as platform:
        zones = platform.status()["zones"]
        for zone in zones:
            platform.zone_action(zone, "uncordon")
    return {"uncordoned": zones}
