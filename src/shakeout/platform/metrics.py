"""The platform's own metrics in the Prometheus exposition format (``prometheus_client``).

What a cluster's proxies and kube-state-metrics would export, for the embedded platform: the
router's answers, attempts, retries and ejections (as Envoy's upstream stats), and the control
plane's state (zones, replicas, rollouts, config, keys), read at scrape time by a collector.
Served on the control port at ``/metrics`` (read-only, loopback); Prometheus scrapes it as the
job ``platform``. The replicas export their own request metrics (``shakeout.services``).

Counters of things that happened (restarts, rollbacks, config canaries, key rotations) are
counted from the platform's event journal, the one place every controller reports to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shakeout.platform.replicas import Replica
from shakeout.platform.view import ClusterView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StateCollector(Collector):
    """Gauges of the control plane's state, read at scrape time (kube-state-metrics' role)."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self.view
        zones = GaugeMetricFamily(
            "shakeout_zone_ready",
            "1 while the zone's node heartbeats (the node controller's view)",
            labels=["zone"],
        )
        for zone in view.spec.zones:
            zones.add_metric([zone], 1.0 if view.nodes.ready(zone) else 0.0)
        yield zones
        ready = GaugeMetricFamily(
            "shakeout_replicas_ready", "replicas passing readiness", labels=["service", "version"]
        )
        looping = GaugeMetricFamily(
            "shakeout_replicas_crashlooping",
            "replicas crashed twice or more in a row and not ready (CrashLoopBackOff)",
            labels=["service", "version"],
        )
        weight = GaugeMetricFamily(
            "shakeout_rollout_weight", "traffic weight per version", labels=["service", "version"]
        )
        for name, svc in view.services.items():
            counts: dict[str, list[int]] = {}
            for replica in svc.replicas:
                entry = counts.setdefault(replica.version, [0, 0])
                entry[0] += replica.ready
                # One crash is a replica that died (a node lost, a kill); a loop is two or
                # more without running the back-off's reset time in between.
                entry[1] += replica.consecutive_crashes >= 2 and not replica.ready
            for version, (n_ready, n_looping) in counts.items():
                ready.add_metric([name, version], n_ready)
                looping.add_metric([name, version], n_looping)
            for version, share in svc.versions().items():
                weight.add_metric([name, version], share)
        yield ready
        yield looping
        yield weight
        store = GaugeMetricFamily("shakeout_secret_store_up", "1 while the secret store is there")
        store.add_metric([], 1.0 if view.secret_file.exists() else 0.0)
        yield store


class PlatformMetrics:
    """The platform daemon's registry: router counters, event counters, state gauges."""

    def __init__(self, view: ClusterView) -> None:
        """Register every metric."""
        self.view = view
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.responses = Counter(
            "shakeout_router_responses", "answers the router gave its clients",
            ["service", "code"], registry=r,
        )  # fmt: skip
        self.attempts = Counter(
            "shakeout_router_attempts", "upstream attempts by outcome",
            ["service", "version", "zone", "outcome"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "shakeout_router_retries", "retried attempts", ["service"], registry=r
        )
        self.ejections = Counter(
            "shakeout_router_ejections", "replicas ejected for failures", ["service"], registry=r
        )
        self.events = Counter(
            "shakeout_platform_events", "platform events by kind", ["kind"], registry=r
        )
        self.restarts = Counter(
            "shakeout_replica_restarts", "replica restarts", ["service", "version"], registry=r
        )
        self.rollbacks = Counter(
            "shakeout_rollbacks", "releases rolled back", ["service"], registry=r
        )
        self.config_canary_failures = Counter(
            "shakeout_config_canary_failures", "config changes failed in their canary zone",
            registry=r,
        )  # fmt: skip
        self.config_rollbacks = Counter(
            "shakeout_config_rollbacks", "config changes rolled back", registry=r
        )
        self.key_rotations = Counter("shakeout_key_rotations", "shared-key rotations", registry=r)
        r.register(_StateCollector(view))

    def start_at_zero(self) -> None:
        """Create each service's counters at 0: ``increase()`` misses a counter's first
        increment when its series starts at 1."""
        for name, svc in self.view.services.items():
            self.rollbacks.labels(name)
            self.restarts.labels(name, svc.stable_version)

    def on_event(self, record: Mapping[str, Any]) -> None:
        """Count a platform event (called by the supervisor for every event it records)."""
        kind = str(record["kind"])
        self.events.labels(kind).inc()
        if kind == "replica_restarted":
            service, version = self._replica(str(record.get("replica", "")))
            self.restarts.labels(service, version).inc()
        elif kind == "rollout_rolled_back":
            self.rollbacks.labels(str(record.get("service", ""))).inc()
        elif kind == "config_canary_failed":
            self.config_canary_failures.inc()
        elif kind == "config_rolled_back":
            self.config_rollbacks.inc()
        elif kind == "key_rotated":
            self.key_rotations.inc()

    def _replica(self, replica_id: str) -> tuple[str, str]:
        for name, svc in self.view.services.items():
            for replica in svc.replicas:
                if replica.id == replica_id:
                    return name, replica.version
        return replica_id.rpartition("-")[0], ""

    def attempt(self, replica: Replica, *, retried: bool) -> Callable[[str], None]:
        """Count a retry now; return what counts the attempt's outcome once it is known."""
        if retried:
            self.retries.labels(replica.service).inc()

        def outcome(name: str) -> None:
            self.attempts.labels(replica.service, replica.version, replica.zone, name).inc()

        return outcome

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
