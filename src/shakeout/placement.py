"""Where a target's replicas are, by name and zone: one naming rule for platform and plan.

The embedded platform names and places replicas with :func:`replica_id` and
:func:`next_zone`; ``shakeout plan`` and the fault units (:mod:`shakeout.faults`) read the same
rule through :class:`Placement`, so the replica ids a plan shows are the ids the platform
creates. A Kubernetes target declares the same counts (``services``, ``zones``), so the same
blast-radius cap applies to it. This module imports nothing else from ShakeOut but its errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shakeout.errors import ConfigError


def replica_id(service: str, index: int, version: str | None = None) -> str:
    """A replica's id: ``catalog-0`` for the stable version (``version`` None: the caller
    passes None for it), ``catalog-v2-canary-0`` for another version."""
    return f"{service}-{index}" if version is None else f"{service}-{version}-{index}"


def next_zone(zones: Sequence[str], held: Iterable[str]) -> str:
    """The zone for a new replica: the one of ``zones`` (the ready ones, in the target's order)
    holding the fewest of ``held`` (the zones of the replicas already there), the first such
    on a tie. From nothing this goes round the zones in order."""
    count = dict.fromkeys(zones, 0)
    for zone in held:
        if zone in count:
            count[zone] += 1
    return min(zones, key=lambda zone: count[zone])


@dataclass(frozen=True)
class Placement:
    """A target's expected replicas: how many per service and over which zones.

    ``config_first_zones`` are the zones whose replicas read a changed flag first (staged
    config rollout; empty: all at once); ``migration`` says how the orders store is migrated.
    Both only shape the words of a fault's reach.
    """

    zones: tuple[str, ...]
    replicas: Mapping[str, int]
    config_first_zones: tuple[str, ...] = ()
    migration: str = ""

    def service(self, name: str) -> list[tuple[str, str]]:
        """Replica ids and zones of a service's stable version; ConfigError for an unknown
        service, naming the known ones."""
        if name not in self.replicas:
            known = ", ".join(self.replicas)
            raise ConfigError(f"service {name!r} resolves to nothing (services: {known})")
        return self.version(name, None, self.replicas[name])

    def version(self, service: str, version: str | None, count: int) -> list[tuple[str, str]]:
        """Ids and zones of ``count`` replicas of a service's ``version``, placed as the
        platform places them (see :func:`next_zone`)."""
        placed: list[tuple[str, str]] = []
        for index in range(count):
            zone = next_zone(self.zones, (z for _, z in placed))
            placed.append((replica_id(service, index, version), zone))
        return placed

    def every(self) -> list[tuple[str, str]]:
        """Every replica of every service."""
        return [r for name in self.replicas for r in self.service(name)]

    def zone(self, zone: str) -> list[str]:
        """Ids of the replicas in a zone; ConfigError for an unknown zone."""
        if zone not in self.zones:
            known = ", ".join(self.zones)
            raise ConfigError(f"zone {zone!r} resolves to nothing (zones: {known})")
        return [rid for rid, z in self.every() if z == zone]
