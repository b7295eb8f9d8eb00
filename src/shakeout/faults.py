"""Fault phrases: the words features use for faults, their fault word, and their blast radius.

One table serves both the step definitions (``steps/drill_steps.py`` builds its ``When``
steps from it) and ``shakeout plan``, so what a plan shows is what a drill will do. A phrase
parses the step text into arguments, turns them into the experiment's configuration, and
describes which replicas of the topology the fault reaches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import parse

from shakeout.errors import ConfigError
from shakeout.topology import LocalTarget

Variables = dict[str, str | float | int]


@dataclass(frozen=True)
class Reach:
    """The blast radius of one fault: which replicas it touches, in words."""

    replicas: list[str]
    description: str


@dataclass(frozen=True)
class FaultPhrase:
    """A step phrase naming a fault in plain words."""

    word: str
    text: str
    variables: Callable[[dict[str, Any]], Variables]
    reach: Callable[[LocalTarget, dict[str, Any]], Reach]

    def match(self, step: str) -> dict[str, Any] | None:
        """Arguments parsed from a step's text, or None when the step is not this phrase."""
        found = parse.parse(self.text, step)
        return dict(found.named) if isinstance(found, parse.Result) else None


def placement(target: LocalTarget) -> dict[str, list[tuple[str, str]]]:
    """Replica ids and zones per service, as the embedded platform places them."""
    zones = target.platform.zones
    return {
        name: [(f"{name}-{i}", zones[i % len(zones)]) for i in range(spec.replicas)]
        for name, spec in target.services.items()
    }


def _service(target: LocalTarget, args: dict[str, Any]) -> list[tuple[str, str]]:
    service = args["service"]
    if service not in target.services:
        known = ", ".join(target.services)
        raise ConfigError(f"service {service!r} resolves to nothing (services: {known})")
    return placement(target)[service]


def _zone(target: LocalTarget, args: dict[str, Any]) -> Reach:
    zone = args["zone"]
    if zone not in target.platform.zones:
        known = ", ".join(target.platform.zones)
        raise ConfigError(f"zone {zone!r} resolves to nothing (zones: {known})")
    hit = [rid for replicas in placement(target).values() for rid, z in replicas if z == zone]
    total = sum(len(r) for r in placement(target).values())
    return Reach(hit, f"{len(hit)} of {total} replicas, every service's share in zone {zone}")


def _whole(what: str) -> Callable[[LocalTarget, dict[str, Any]], Reach]:
    def reach(target: LocalTarget, args: dict[str, Any]) -> Reach:
        replicas = _service(target, args)
        return Reach(
            [r for r, _ in replicas],
            f"all {len(replicas)} replicas of {args['service']} ({what})",
        )

    return reach


def _canary(target: LocalTarget, args: dict[str, Any]) -> Reach:
    replicas = _service(target, args)
    return Reach(
        [f"{args['service']}-canary-{i}" for i in range(len(replicas))],
        f"{len(replicas)} new replicas of {args['service']} taking {args['weight']}% of its "
        "traffic",
    )


def _killed(target: LocalTarget, args: dict[str, Any]) -> Reach:
    replicas = _service(target, args)
    count = min(args["count"], len(replicas))
    return Reach(
        [r for r, _ in replicas[:count]],
        f"{count} of {len(replicas)} replicas of {args['service']} (killed, then restarted)",
    )


def _everyone(what: str) -> Callable[[LocalTarget, dict[str, Any]], Reach]:
    def reach(target: LocalTarget, args: dict[str, Any]) -> Reach:
        replicas = [r for rs in placement(target).values() for r, _ in rs]
        return Reach(replicas, f"every service ({what}); no replica is stopped")

    return reach


def _scaled(target: LocalTarget, args: dict[str, Any]) -> Reach:
    replicas = _service(target, args)
    gone = replicas[args["replicas"] :]
    return Reach(
        [r for r, _ in gone],
        f"{args['service']} from {len(replicas)} to {args['replicas']} replicas "
        f"({len(gone)} stopped)",
    )


def _flag(target: LocalTarget, args: dict[str, Any]) -> Reach:
    # A flag is named after the service that reads it ("catalog.pricing" -> catalog).
    service = str(args["flag"]).split(".", 1)[0]
    replicas = _service(target, {"service": service})
    canary = target.platform.zones[: target.platform.config.canary_zones]
    how = (
        f"first the replicas in zone {', '.join(canary)}, then the others"
        if target.platform.config.staged
        else "all at once"
    )
    return Reach(
        [r for r, _ in replicas],
        f"all {len(replicas)} replicas of {service} read the new flag value ({how})",
    )


def _orders_store(target: LocalTarget, args: dict[str, Any]) -> Reach:
    replicas = _service(target, {"service": "orders"})
    return Reach(
        [r for r, _ in replicas],
        f"the orders store shared by all {len(replicas)} orders replicas "
        f"({target.platform.migration.mode} schema migration); no replica is stopped",
    )


def _evicted(target: LocalTarget, args: dict[str, Any]) -> Reach:
    replicas = _service(target, args)
    count = min(args["count"], len(replicas))
    return Reach(
        [r for r, _ in replicas[len(replicas) - count :]],
        f"{count} of {len(replicas)} replicas of {args['service']} (evicted with their nodes "
        "taken; the embedded platform reschedules none until the fault ends, a cluster may "
        "place them on other nodes)",
    )


PHRASES: dict[str, FaultPhrase] = {
    p.word: p
    for p in (
        FaultPhrase(
            "crash-loop",
            'a release of "{service}" that crashes on start takes {weight:d}% of traffic',
            lambda a: {"service": a["service"], "weight": a["weight"] / 100.0},
            _canary,
        ),
        FaultPhrase(
            "replica-kill",
            '{count:d} replicas of "{service}" are killed',
            lambda a: {"service": a["service"], "count": a["count"]},
            _killed,
        ),
        FaultPhrase(
            "zone-outage",
            'zone "{zone}" goes down for {seconds:d} seconds',
            lambda a: {"zone": a["zone"], "duration_s": float(a["seconds"])},
            _zone,
        ),
        FaultPhrase(
            "zone-freeze",
            'zone "{zone}" freezes for {seconds:d} seconds',
            lambda a: {"zone": a["zone"], "duration_s": float(a["seconds"])},
            _zone,
        ),
        FaultPhrase(
            "dependency-errors",
            '"{service}" answers {percent:d}% errors for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "error_rate": str(a["percent"] / 100.0),
                "duration_s": float(a["seconds"]),
            },
            _whole("replaced by a version failing a share of requests"),
        ),
        FaultPhrase(
            "dependency-latency",
            '"{service}" answers {ms:d} ms slower for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "latency_ms": str(a["ms"]),
                "duration_s": float(a["seconds"]),
            },
            _whole("replaced by a slower version"),
        ),
        FaultPhrase(
            "bad-canary",
            'a canary of "{service}" failing {percent:d}% of requests takes {weight:d}% of '
            "traffic for {seconds:d} seconds",
            lambda a: {
                "service": a["service"],
                "error_rate": str(a["percent"] / 100.0),
                "weight": a["weight"] / 100.0,
                "duration_s": float(a["seconds"]),
            },
            _canary,
        ),
        FaultPhrase(
            "good-canary",
            'a canary of "{service}" takes {weight:d}% of traffic',
            lambda a: {"service": a["service"], "weight": a["weight"] / 100.0},
            _canary,
        ),
        FaultPhrase(
            "bad-canary-latency",
            'a canary of "{service}" answering {ms:d} ms slower takes {weight:d}% of '
            "traffic for {seconds:d} seconds",
            lambda a: {
                "service": a["service"],
                "latency_ms": str(a["ms"]),
                "weight": a["weight"] / 100.0,
                "duration_s": float(a["seconds"]),
            },
            _canary,
        ),
        FaultPhrase(
            "capacity-loss",
            '{count:d} replicas of "{service}" lose their node for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "count": a["count"],
                "duration_s": float(a["seconds"]),
            },
            _evicted,
        ),
        FaultPhrase(
            "key-rotation",
            "the shared key is rotated",
            lambda a: {},
            _everyone("its internal credential is rotated"),
        ),
        FaultPhrase(
            "secret-store-outage",
            "the secret store is unreachable for {seconds:d} seconds",
            lambda a: {"duration_s": float(a["seconds"])},
            _everyone("the secret store goes away"),
        ),
        FaultPhrase(
            "scale",
            '"{service}" is scaled to {replicas:d} replicas for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "replicas": a["replicas"],
                "duration_s": float(a["seconds"]),
            },
            _scaled,
        ),
        FaultPhrase(
            "config-change",
            'the "{flag}" flag is set to "{value}"',
            lambda a: {"flag": a["flag"], "value": a["value"]},
            _flag,
        ),
        # Cluster faults (Chaos Mesh on the Kubernetes target; no embedded-platform experiment).
        FaultPhrase(
            "network-latency",
            '"{service}" gets {ms:d} ms of network latency for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "latency_ms": a["ms"],
                "duration_s": float(a["seconds"]),
            },
            _whole("its pods' network delayed"),
        ),
        FaultPhrase(
            "packet-loss",
            '"{service}" loses {percent:d}% of its packets for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "loss_percent": a["percent"],
                "duration_s": float(a["seconds"]),
            },
            _whole("its pods' packets dropped"),
        ),
        FaultPhrase(
            "cpu-stress",
            '"{service}" is under {percent:d}% CPU stress for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "load_percent": a["percent"],
                "duration_s": float(a["seconds"]),
            },
            _whole("CPU stress beside each pod's process"),
        ),
        FaultPhrase(
            "memory-stress",
            '"{service}" is under {mb:d} MB of memory pressure for {seconds:d} seconds',
            lambda a: {
                "service": a["service"],
                "size_mb": a["mb"],
                "duration_s": float(a["seconds"]),
            },
            _whole("memory pressure in each pod"),
        ),
        FaultPhrase(
            "schema-migration",
            "the orders store is migrated online",
            lambda a: {},
            _orders_store,
        ),
    )
}


CLUSTER_ONLY = frozenset({"network-latency", "packet-loss", "cpu-stress", "memory-stress"})
"""Fault words only cluster targets implement (the embedded platform has no network or
resource-pressure faults); a local target refuses them in the plan, before anything runs."""


def find(step: str) -> tuple[FaultPhrase, dict[str, Any]] | None:
    """The fault phrase a step's text names, with its arguments; None for other steps."""
    for phrase in PHRASES.values():
        args = phrase.match(step)
        if args is not None:
            return phrase, args
    return None
