"""The supervisor: the embedded platform's control plane, wired together, and its API.

A kubelet plus a deployment controller, in parts that share the services' state
(``replicas``) and the event journal: ``kubelet`` runs each replica as a process in a zone and
restarts it with a back-off (``CrashLoopBackOff``); ``probes`` decide which replicas the router
may use; ``deployments`` roll versions out with a traffic weight (rolled back automatically
when they do not become ready or keep crashing), scale, and name and place replicas (by
``shakeout.placement``, the rule ``shakeout plan`` reads); ``nodes`` judges the zones from
their heartbeats. The controllers (``autoscaler``, ``analysis``, ``config``, ``migration``,
``secrets``) and the router see the supervisor only as a ``shakeout.platform.view.ClusterView``,
handed to them here. Faults act on the world (``shakeout.platform.world``) and are announced to
none of these.

Everything runs on one asyncio loop in the platform daemon; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp

from shakeout.contracts import ServiceSettings, SharedKeyDocument, key_id
from shakeout.errors import PlatformError
from shakeout.platform.analysis import CanaryAnalysis
from shakeout.platform.autoscaler import Autoscaler
from shakeout.platform.cgroups import Cgroups
from shakeout.platform.config import ConfigManager
from shakeout.platform.deployments import DeploymentController
from shakeout.platform.drain import NodeDrain
from shakeout.platform.kubelet import Kubelet
from shakeout.platform.migration import MigrationJob
from shakeout.platform.nodes import NodeController
from shakeout.platform.probes import Probes
from shakeout.platform.registry import ImagePuller, Registry
from shakeout.platform.replicas import NotFound, Replica, Rollout, Service
from shakeout.platform.secrets import (
    SECRET_FILENAME,
    audit,
    open_store,
    remove_store,
    store_dir,
    watch_outage,
)
from shakeout.platform.state import write_private
from shakeout.platform.traffic import TrafficStats
from shakeout.platform.view import ClusterView
from shakeout.platform.world import World
from shakeout.topology import LocalTarget, expand, python_executable


class Supervisor:
    """Starts, probes, restarts and rolls the replicas of a topology."""

    def __init__(self, target: LocalTarget, state_dir: Path, service_ports: dict[str, int]):
        self.target = target
        self.spec = target.platform
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.data_dir = state_dir / "data"
        self.secret_file = store_dir(state_dir) / SECRET_FILENAME  # private, outside reports
        self.events: deque[dict[str, Any]] = deque(maxlen=5000)
        self._events_file = state_dir / "events.jsonl"
        self._seq = itertools.count(1)
        self.services: dict[str, Service] = {
            name: Service(
                name=name,
                spec=spec,
                port=service_ports[name],
                stable_version=spec.version,
                weights={spec.version: 1.0},
                desired_replicas=spec.replicas,
            )
            for name, spec in target.services.items()
        }
        self.world = World()  # the processes; faults act there, this class only observes them
        self.registry = Registry(state_dir / "registry", self.log_dir / "registry.log")  # world's
        self.nodes = NodeController(  # the zones' health, from the world's heartbeats
            list(self.spec.zones),
            self.world.heartbeat,
            self._zone_changed,
            self.spec.nodes.heartbeat_s,
            self.spec.nodes.grace_s,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.http_client: aiohttp.ClientSession | None = None
        self.on_change: list[Any] = []
        self.on_event: list[Any] = []  # called with each event record (the metrics count them)
        self.traffic = TrafficStats()  # filled by the router, read by the controllers below
        self.kubelet = Kubelet(
            self.world,
            self.services,
            self.spec.restart_backoff,
            self.log_dir,
            self._environment,
            self.event,
            self._changed,
            self._spawn,
            ImagePuller(self.registry.url),
        )
        self.probes = Probes(
            self.services, self.nodes.ready, self.world.kill, self.event, self._changed
        )
        self.deployments = DeploymentController(
            self.services,
            self.spec.zones,
            self.nodes.schedulable_zones,
            self.spec.rollout,
            self.kubelet,
            self.find_service,
            self.event,
            self._changed,
        )
        self.drain = NodeDrain(  # cordons, and evictions within the disruption budgets
            self.services, self.nodes, self.spec.disruption_budgets, self.deployments,
            self.kubelet, self.event, self._changed, self._spawn,
        )  # fmt: skip
        # The controllers: each sees the platform only through the view (never the world).
        view: ClusterView = self
        self.config = ConfigManager(view)  # live config (feature flags), staged rollout
        self.migrations = MigrationJob(view)  # orders store schema migrations
        self.autoscaler = Autoscaler(view)
        self.analysis = CanaryAnalysis(view)

    # -- events ------------------------------------------------------------------------------

    def event(self, kind: str, **detail: Any) -> None:
        """Record a platform event (restarts, ejections, rollouts, faults) with a timestamp."""
        record = {"seq": next(self._seq), "t": time.time(), "kind": kind, **detail}
        self.events.append(record)
        with self._events_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        for callback in self.on_event:
            callback(record)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the secret file, start every replica and the probe and rollout loops."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.spec.freezer == "auto":  # a cgroup per replica where the machine allows it
            self.world.cgroups = Cgroups.create(f"shakeout-{os.getpid()}")
        self.secret_file = open_store(self.state_dir)
        self.write_secret(secrets.token_urlsafe(24), previous=None)
        self.config.start()
        self.http_client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), trust_env=False
        )
        await self.registry.start()
        for svc in self.services.values():
            self.registry.push(svc.name, svc.stable_version)
            for _ in range(svc.spec.replicas):
                await self.deployments.add_replica(svc, svc.stable_version, dict(svc.spec.env))
        self._spawn(self.probes.run(self.http_client))
        self._spawn(self.nodes.run())
        self._spawn(self.deployments.run())
        if self.autoscaler.enabled:
            self._spawn(self.autoscaler.run())
        if self.analysis.enabled:
            self._spawn(self.analysis.run())
        self.event("platform_started", target=self.target.name)

    async def stop(self) -> None:
        """Stop every replica's process group (continued first), then the background loops;
        the secret store goes last, however the rest went."""
        try:
            self.kubelet.stopping = True
            for task in list(self._tasks):
                task.cancel()
            replicas = [r for svc in self.services.values() for r in svc.replicas]
            await asyncio.gather(*(self.kubelet.stop(r) for r in replicas))
            await self.world.close()
            await self.registry.stop()
            await self.kubelet.images.close()
            if self.http_client is not None:
                await self.http_client.close()
        finally:
            remove_store(self.state_dir)

    def all_ready(self) -> bool:
        """True when every replica of a ready zone answers its readiness probe."""
        return all(
            r.ready
            for svc in self.services.values()
            for r in svc.replicas
            if self.nodes.ready(r.zone)
        )

    def pids(self) -> list[int]:
        """Process ids of every live replica (for the state file)."""
        return [r.pid for svc in self.services.values() for r in svc.replicas if r.pid]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    # -- zones and replicas ------------------------------------------------------------------

    def _zone_changed(self, zone: str, ready: bool) -> None:
        """The node controller's verdict on a zone changed (from its heartbeats)."""
        replicas = [r for s in self.services.values() for r in s.replicas if r.zone == zone]
        if not ready:
            self.event("zone_not_ready", zone=zone)
            for replica in replicas:  # out of the endpoints, as a NotReady node's pods are
                if replica.ready:
                    replica.mark(False)
                    self.event("replica_not_ready", replica=replica.id, reason="zone not ready")
        else:
            self.event("zone_ready", zone=zone)
            for replica in replicas:
                if replica.state == "pending":
                    replica.state = "starting"  # scheduled once, however often the zone returns
                    self.kubelet.start_soon(replica)
        self._changed()

    def _environment(self, replica: Replica) -> dict[str, str]:
        values = {
            "python": python_executable(),
            "port": str(replica.port),
            "service": replica.service,
            "version": replica.version,
            "zone": replica.zone,
            "replica": replica.id,
            "data_dir": str(self.data_dir),
        }
        settings = ServiceSettings(
            service=replica.service,
            version=replica.version,
            zone=replica.zone,
            replica=replica.id,
            secret_file=self.secret_file,
            data_dir=self.data_dir,
            config_file=self.config.path,
            urls={name: f"http://127.0.0.1:{svc.port}" for name, svc in self.services.items()},
            key_refresh_s=self.spec.secrets.refresh_s,
            key_cache_ttl_s=self.spec.secrets.cache_ttl_s,
            key_refetch_on_unknown=self.spec.secrets.refetch_on_unknown_key,
        )
        env = dict(os.environ)
        env.update(settings.to_env())  # the schema the services read (shakeout.contracts)
        env["PYTHONUNBUFFERED"] = "1"
        if replica.service == self.spec.gateway:  # platform.dependencies: timeouts, breaker
            env.update(self.spec.dependencies.payments.to_env())
        env.update({k: expand(v, values) for k, v in replica.env.items()})
        env["_SHAKEOUT_COMMAND"] = json.dumps(
            [expand(p, values) for p in self.services[replica.service].spec.command]
        )
        return env

    def find_replica(self, replica_id: str) -> Replica:
        """The replica with this id, or a PlatformError naming the known ones."""
        for svc in self.services.values():
            for replica in svc.replicas:
                if replica.id == replica_id:
                    return replica
        known = ", ".join(r.id for s in self.services.values() for r in s.replicas)
        raise NotFound(f"no replica {replica_id!r} (known: {known})")

    def find_service(self, name: str) -> Service:
        """The service with this name, or a PlatformError naming the known ones."""
        if name not in self.services:
            raise NotFound(f"no service {name!r} (known: {', '.join(self.services)})")
        return self.services[name]

    def zone_replicas(self, zone: str) -> list[Replica]:
        """Every replica placed in a zone."""
        if zone not in self.spec.zones:
            raise NotFound(f"no zone {zone!r} (known: {', '.join(self.spec.zones)})")
        return [r for s in self.services.values() for r in s.replicas if r.zone == zone]

    # -- faults (they act on the world only: see shakeout.platform.world) --------------------

    def kill(self, replica: Replica, sig: int = signal.SIGKILL) -> None:
        """Kill a replica's process group; the kubelet sees the exit and restarts it."""
        if replica.process is not None and replica.process.returncode is None:
            self.world.kill(replica.process.pid, sig)
            self.event("replica_killed", replica=replica.id, signal=int(sig))

    def freeze(self, replica: Replica) -> None:
        """Stop every process of a replica (SIGSTOP to its group). Nothing in the control plane
        is told: readiness probes and the router's timeouts have to find out."""
        process = replica.process
        if process is not None and process.returncode is None and self.world.freeze(process.pid):
            self.event("replica_frozen", replica=replica.id)

    def resume(self, replica: Replica) -> None:
        """Undo a freeze (SIGCONT to the group); probes see the replica answer again."""
        if replica.process is not None and self.world.thaw(replica.process.pid):
            self.event("replica_resumed", replica=replica.id)

    def _by_pid(self, pids: list[int]) -> list[Replica]:
        wanted = set(pids)
        return [r for s in self.services.values() for r in s.replicas if r.pid in wanted]

    def zone_down(self, zone: str) -> list[str]:
        """A whole zone goes down: the world kills its replicas and its node starts nothing.
        The supervisor sees the exits; the node controller sees the heartbeats stop."""
        replicas = self.zone_replicas(zone)
        self.world.zone_down(zone)
        self.event("zone_down", zone=zone, replicas=[r.id for r in replicas])
        return [r.id for r in replicas]

    def zone_freeze(self, zone: str) -> list[str]:
        """A whole zone freezes: every replica stops answering, and so does its node."""
        self.zone_replicas(zone)  # an unknown zone is named
        frozen = self._by_pid(self.world.zone_freeze(zone))
        for replica in frozen:
            self.event("replica_frozen", replica=replica.id)
        return [r.id for r in frozen]

    def zone_up(self, zone: str) -> list[str]:
        """Undo a zone fault: frozen replicas continue; the node takes starts again, and the
        replicas that wait for it start once the node controller sees it ready."""
        replicas = self.zone_replicas(zone)
        for replica in self._by_pid(self.world.zone_up(zone)):
            self.event("replica_resumed", replica=replica.id)
        self.event("zone_up", zone=zone, replicas=[r.id for r in replicas])
        return [r.id for r in replicas]

    # -- rollouts and scaling (see shakeout.platform.deployments) ---------------------------

    async def deploy(
        self, name: str, version: str, weight: float, env: dict[str, str], replicas: int | None
    ) -> Rollout:
        """Push a new version (as a release pipeline does), then start replicas of it beside
        the stable one and give it a traffic weight."""
        self.registry.push(self.find_service(name).name, version)
        return await self.deployments.deploy(name, version, weight, env, replicas)

    async def registry_reachable(self, reachable: bool) -> bool:
        """A registry outage (the world ends its process: pulls fail, nothing else is told),
        or its return."""
        await (self.registry.start() if reachable else self.registry.stop())
        self.event("registry_up" if reachable else "registry_down")
        return self.registry.reachable

    async def rollback(self, name: str, reason: str = "requested") -> Rollout | None:
        """Stop the new version's replicas and send all traffic back to the stable version."""
        return await self.deployments.rollback(name, reason)

    async def promote(self, name: str) -> Rollout:
        """Make the new version stable: it takes all traffic and the old replicas stop."""
        return await self.deployments.promote(name)

    async def scale(self, name: str, replicas: int | None, *, autoscaled: bool = False) -> int:
        """Set the number of replicas of the stable version (None: the topology's count)."""
        return await self.deployments.scale(name, replicas, autoscaled=autoscaled)

    # -- secrets -----------------------------------------------------------------------------

    def write_secret(self, current: str, previous: str | None) -> float:
        """Write the shared-key file atomically; services reload it when it changes."""
        document = SharedKeyDocument(current, previous, time.time(), self.spec.key_overlap_s)
        write_private(self.secret_file, document.dumps())  # 0600, in the store's 0700 folder
        return document.rotated_at

    def rotate_key(self) -> float:
        """Rotate the shared key; the previous key stays valid for the overlap window."""
        if not self.secret_file.exists():
            raise PlatformError("the secret store is down: bring it back before rotating")
        current = SharedKeyDocument.loads(self.secret_file.read_text(encoding="utf-8")).current
        new = secrets.token_urlsafe(24)
        rotated_at = self.write_secret(new, previous=current)
        ids = {"key_id": key_id(new), "previous_key_id": key_id(current)}
        self.event("key_rotated", overlap_s=self.spec.key_overlap_s, **ids)
        audit(self, "key_rotated", rotated_at=rotated_at, overlap_s=self.spec.key_overlap_s, **ids)
        return rotated_at

    def secret_store(self, reachable: bool) -> bool:
        """Take the secret store (the shared-key file) away, or bring it back.

        Running services keep the keys they loaded (cached credentials); a replica that starts
        during the outage finds no key and never becomes ready.
        """
        offline = self.secret_file.with_suffix(".offline")
        if not reachable and self.secret_file.exists():
            os.replace(self.secret_file, offline)
            self.event("secret_store_down")
            audit(self, "secret_store_down")
            self._spawn(watch_outage(self))  # records which replicas serve from their cache
        elif reachable and offline.exists():
            os.replace(offline, self.secret_file)
            self.event("secret_store_up")
            audit(self, "secret_store_up")
        return self.secret_file.exists()

    # -- views -------------------------------------------------------------------------------

    def routable(self, name: str) -> list[Replica]:
        """Replicas the router may send traffic to."""
        svc = self.services[name]
        if self.spec.health_checks:
            return [r for r in svc.replicas if self._endpoint(r) and r.state == "running"]
        # No readiness gate: every replica that is meant to run stays an endpoint, whether it
        # is starting, crashed and backing off, frozen, or in a zone that went down.
        return [r for r in svc.replicas if r.state != "stopped"]

    def _endpoint(self, replica: Replica) -> bool:
        """Whether the router sees ``replica`` as ready: a change of readiness reaches it
        ``platform.endpoints_delay_s`` after the control plane decided it (as endpoint updates
        take time to reach every proxy of a cluster)."""
        delay = self.spec.endpoints_delay_s
        if delay <= 0 or time.monotonic() - replica.ready_changed_at >= delay:
            return replica.ready
        return not replica.ready

    def snapshot(self) -> dict[str, Any]:
        """Whole-platform view for ``status`` and the control API."""
        return {
            "target": self.target.name,
            "zones": list(self.spec.zones),
            "zone_health": {  # the control plane's view, and what the world did
                zone: {
                    "ready": self.nodes.ready(zone),
                    "cordoned": zone in self.nodes.cordoned,
                    "world": self.world.zone_state(zone),
                }
                for zone in self.spec.zones
            },
            "registry": {"url": self.registry.url, "reachable": self.registry.reachable},
            "health_checks": self.spec.health_checks,
            "freezer": self.world.freezer,
            "services": {
                name: {
                    "url": f"http://127.0.0.1:{svc.port}",
                    "stable_version": svc.stable_version,
                    "weights": svc.versions(),
                    "rollout": svc.rollout.as_dict() if svc.rollout else None,
                    "replicas": [
                        {**r.as_dict(), "frozen": self.world.frozen(r.pid)} for r in svc.replicas
                    ],
                }
                for name, svc in self.services.items()
            },
        }
