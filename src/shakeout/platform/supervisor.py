"""The supervisor: runs every replica as a process, probes it, restarts it, rolls versions.

It is the embedded platform's stand-in for a kubelet plus a deployment controller:

* a replica is one process on a loopback port, placed in a simulated zone;
* a crashed replica is restarted with a doubling back-off and its restarts are counted, so a
  crash loop looks like Kubernetes' ``CrashLoopBackOff``;
* readiness probes decide which replicas the router may use (when health checks are on);
* ``deploy`` starts replicas of a new version beside the stable one with a traffic weight; a
  rollout that does not become ready within its progress deadline, or whose replicas keep
  crashing, is rolled back automatically when the topology says so.

Everything runs on one asyncio loop in the platform daemon; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from shakeout._process import die_with_parent
from shakeout.errors import PlatformError
from shakeout.platform.analysis import CanaryAnalysis
from shakeout.platform.autoscaler import Autoscaler
from shakeout.platform.cgroups import Cgroups
from shakeout.platform.config import ConfigManager
from shakeout.platform.migration import MigrationJob
from shakeout.platform.nodes import NodeController
from shakeout.platform.secrets import audit, watch_outage
from shakeout.platform.traffic import TrafficStats
from shakeout.platform.world import NodeDown, World
from shakeout.services._common import key_id
from shakeout.topology import LocalTarget, ServiceSpec, expand, python_executable

ReplicaState = Literal["starting", "running", "backoff", "pending", "stopped"]
"""What the control plane knows of a replica: a frozen one is still ``running`` to it (a fault
is never announced; see ``shakeout.platform.world``) until its probes fail; ``pending``: its
zone's node could not start it, it starts when the zone is ready again."""


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


MAX_PARALLEL_STARTS = 2
"""Replicas the autoscaler or a returning zone start at the same time (see _start_in_turn)."""
START_SLOT_S = 10.0
"""How long one start may hold its slot waiting to be ready."""


START_NICE = 10
"""Where the platform may restore it (root): a replica that is not needed to serve yet starts at
this nice value and gets the normal CPU priority back once ready. Every zone of this platform
shares the machine's cores, while on a cluster each start would have a node of its own: so a
crash-looping release restarting every second (0.5 s of CPU for the gateway's imports each
time), or a canary's replicas starting beside the stable version that serves, must not take the
CPU from the replicas serving traffic (measured under one busy core: three crash-looping
replicas starting at once held checkout p95 at 426 ms for a second). That is a restart after a
crash, and every replica of a version rolled out beside the stable one with a share of the
traffic (0 < weight < 1): the stable version serves meanwhile, and the router sends nothing to
a replica before it is ready. New capacity (a first start, a scale-up, a version deployed with
all the traffic) starts at normal priority: under a busy core a niced start took so long that a
spike overran the replicas already serving. Without the privilege to restore it (an
unprivileged process may raise its nice value, never lower it) every start is at normal
priority."""
_CAN_RENICE = hasattr(os, "setpriority") and os.geteuid() == 0


def _start_low(then: Callable[[], None] | None) -> Callable[[], None] | None:
    """A ``preexec_fn``: lower the child's CPU priority (when it can be restored), then
    ``then``."""
    if not _CAN_RENICE:
        return then

    def _set() -> None:  # pragma: no cover - runs in the child between fork and exec
        os.nice(START_NICE)
        if then is not None:
            then()

    return _set


def _restore_priority(pid: int | None) -> None:
    """Normal CPU priority for a replica that became ready (see ``START_NICE``)."""
    if _CAN_RENICE and pid is not None:
        with contextlib.suppress(OSError):  # it may have exited meanwhile
            os.setpriority(os.PRIO_PROCESS, pid, 0)


class NotFound(PlatformError):
    """A replica, service or zone named in a request does not exist."""


@dataclass
class Replica:
    """One running (or restarting) instance of a service version."""

    id: str
    service: str
    version: str
    zone: str
    port: int
    env: dict[str, str]
    state: ReplicaState = "starting"
    ready: bool = False
    restarts: int = 0
    consecutive_crashes: int = 0
    last_exit_code: int | None = None
    started_at: float = 0.0
    pid: int | None = None
    probe_failures: int = 0
    probe_successes: int = 0
    live_failures: int = 0
    ready_changed_at: float = 0.0  # monotonic time of the last change of ``ready``
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    def mark(self, ready: bool) -> None:
        """Set the readiness the control plane decided, remembering when it changed (the
        endpoints follow it after ``platform.endpoints_delay_s``)."""
        if ready != self.ready:
            self.ready = ready
            self.ready_changed_at = time.monotonic()

    @property
    def url(self) -> str:
        """Base URL of this replica."""
        return f"http://127.0.0.1:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        """JSON view for the control API."""
        return {
            "id": self.id,
            "service": self.service,
            "version": self.version,
            "zone": self.zone,
            "port": self.port,
            "pid": self.pid,
            "state": {"backoff": "CrashLoopBackOff", "pending": "Pending"}.get(
                self.state, self.state
            ),
            "ready": self.ready,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
        }


@dataclass
class Rollout:
    """A version being rolled out beside the stable one."""

    version: str
    weight: float
    started_at: float
    status: Literal["progressing", "available", "rolled_back", "promoted"] = "progressing"
    reason: str = ""
    ended_at: float | None = None
    analysis: dict[str, Any] | None = None  # canary analysis figures and decision

    def as_dict(self) -> dict[str, Any]:
        """JSON view for the control API."""
        return {
            "version": self.version,
            "weight": self.weight,
            "status": self.status,
            "reason": self.reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "analysis": self.analysis,
        }


@dataclass
class Service:
    """Desired and observed state of one service."""

    name: str
    spec: ServiceSpec
    port: int
    stable_version: str
    replicas: list[Replica] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    rollout: Rollout | None = None
    desired_replicas: int = 0
    pinned: bool = False  # an explicit scale holds the count: the autoscaler leaves it alone
    evicted: int = 0  # replicas removed by a capacity-loss fault, brought back by restore

    def versions(self) -> dict[str, float]:
        """Traffic weight per version."""
        return dict(self.weights)


class Supervisor:
    """Starts, probes, restarts and rolls the replicas of a topology."""

    def __init__(self, target: LocalTarget, state_dir: Path, service_ports: dict[str, int]):
        self.target = target
        self.spec = target.platform
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.data_dir = state_dir / "data"
        self.secret_file = state_dir / "shared-key.json"
        self.config = ConfigManager(self)  # live config (feature flags), staged rollout
        self.migrations = MigrationJob(self)  # orders store schema migrations
        self.events: deque[dict[str, Any]] = deque(maxlen=5000)
        self._events_file = state_dir / "events.jsonl"
        self._seq = itertools.count(1)
        self.world = World()  # the processes; faults act there, this class only observes them
        self.nodes = NodeController(  # the zones' health, from the world's heartbeats
            list(self.spec.zones),
            self.world.heartbeat,
            self._zone_changed,
            self.spec.nodes.heartbeat_s,
            self.spec.nodes.grace_s,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._probe_client: aiohttp.ClientSession | None = None
        self._stopping = False
        self._start_slots = asyncio.Semaphore(MAX_PARALLEL_STARTS)
        self.on_change: list[Any] = []
        self.traffic = TrafficStats()  # filled by the router, read by the controllers below
        self.autoscaler = Autoscaler(self)
        self.analysis = CanaryAnalysis(self)
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

    # -- events ------------------------------------------------------------------------------

    def event(self, kind: str, **detail: Any) -> None:
        """Record a platform event (restarts, ejections, rollouts, faults) with a timestamp."""
        record = {"seq": next(self._seq), "t": time.time(), "kind": kind, **detail}
        self.events.append(record)
        with self._events_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the secret file, start every replica and the probe and rollout loops."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.spec.freezer == "auto":  # a cgroup per replica where the machine allows it
            self.world.cgroups = Cgroups.create(f"shakeout-{os.getpid()}")
        self.write_secret(secrets.token_urlsafe(24), previous=None)
        self.config.start()
        self._probe_client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), trust_env=False
        )
        for svc in self.services.values():
            for _ in range(svc.spec.replicas):
                await self._add_replica(svc, svc.stable_version, dict(svc.spec.env))
        self._spawn(self._probe_loop())
        self._spawn(self.nodes.run())
        self._spawn(self._rollout_loop())
        if self.autoscaler.enabled:
            self._spawn(self.autoscaler.run())
        if self.analysis.enabled:
            self._spawn(self.analysis.run())
        self.event("platform_started", target=self.target.name)

    async def stop(self) -> None:
        """Stop every replica's process group (continued first), then the background loops."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        replicas = [r for svc in self.services.values() for r in svc.replicas]
        await asyncio.gather(*(self._stop_replica(r) for r in replicas))
        await self.world.close()
        if self._probe_client is not None:
            await self._probe_client.close()

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

    # -- replicas ----------------------------------------------------------------------------

    def _next_zone(self, svc: Service, version: str) -> str:
        """Placement: the ready zone holding the fewest replicas of this version (the first
        such in the target's order), so replicas spread over the zones and none is placed in
        a zone the node controller found not ready. With no zone ready, any zone."""
        zones = self.nodes.ready_zones() or list(self.spec.zones)
        held = dict.fromkeys(zones, 0)
        for replica in svc.replicas:
            if replica.version == version and replica.zone in held:
                held[replica.zone] += 1
        return min(zones, key=lambda zone: held[zone])

    def _spread_victims(self, replicas: list[Replica], count: int) -> list[Replica]:
        """Which ``count`` replicas a scale-down removes: those not ready first (as a
        ReplicaSet does), then from the zone holding the most, newest first, so the spread
        over the zones stays even."""
        left = list(replicas)
        doomed: list[Replica] = []
        for _ in range(min(count, len(left))):
            held: dict[str, int] = {}
            for replica in left:
                held[replica.zone] = held.get(replica.zone, 0) + 1
            victim = max(
                reversed(left), key=lambda r: (not r.ready, held[r.zone])
            )  # reversed: among equals, the newest
            left.remove(victim)
            doomed.append(victim)
        return doomed

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
                    self._spawn(self._start_in_turn(replica))
        self._changed()

    async def _start_in_turn(self, replica: Replica) -> None:
        """Launch a replica when a start slot is free and hold the slot until it is ready (or
        exited, or ``START_SLOT_S`` passed).

        Every replica of this platform shares the machine's cores, so replicas started all at
        once (an autoscaler adding four, a zone coming back with six) starve the ones serving
        traffic for seconds while their interpreters start: measured under one busy core, a 6
        to 10 gateway scale-up held checkout p95 at 900 ms for three seconds. On a cluster each
        would start on its own node; here at most ``MAX_PARALLEL_STARTS`` start together.
        """
        async with self._start_slots:
            if self._stopping or replica not in self.services[replica.service].replicas:
                return  # stopped, or scaled away while it waited
            await self._launch(replica)
            deadline = time.monotonic() + START_SLOT_S
            process = replica.process
            while (
                not replica.ready
                and process is not None
                and process.returncode is None
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)  # poll readiness under the deadline above

    async def _add_replica(
        self, svc: Service, version: str, env: dict[str, str], *, in_turn: bool = False
    ) -> Replica:
        index = sum(1 for r in svc.replicas if r.version == version)
        suffix = "" if version == svc.stable_version else f"-{version}"
        replica = Replica(
            id=f"{svc.name}{suffix}-{index}",
            service=svc.name,
            version=version,
            zone=self._next_zone(svc, version),
            port=free_port(),
            env=env,
        )
        while any(r.id == replica.id for r in svc.replicas):
            index += 1
            replica.id = f"{svc.name}{suffix}-{index}"
        svc.replicas.append(replica)
        if in_turn:  # in the background: the caller (a controller) carries on meanwhile
            self._spawn(self._start_in_turn(replica))
        else:
            await self._launch(replica)
        return replica

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
        env = dict(os.environ)
        env.update(
            {
                "SHAKEOUT_SERVICE": replica.service,
                "SHAKEOUT_VERSION": replica.version,
                "SHAKEOUT_ZONE": replica.zone,
                "SHAKEOUT_REPLICA": replica.id,
                "SHAKEOUT_SECRET_FILE": str(self.secret_file),
                "SHAKEOUT_DATA_DIR": str(self.data_dir),
                "SHAKEOUT_CONFIG_FILE": str(self.config.path),
                "SHAKEOUT_KEY_REFRESH_S": str(self.spec.secrets.refresh_s),
                "SHAKEOUT_KEY_CACHE_TTL_S": str(self.spec.secrets.cache_ttl_s),
                "SHAKEOUT_KEY_REFETCH_ON_UNKNOWN": (
                    "1" if self.spec.secrets.refetch_on_unknown_key else "0"
                ),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name, svc in self.services.items():
            env[f"{name.upper().replace('-', '_')}_URL"] = f"http://127.0.0.1:{svc.port}"
        if replica.service == self.spec.gateway:  # platform.dependencies: timeouts, breaker
            env.update(self.spec.dependencies.gateway_env())
        env.update({k: expand(v, values) for k, v in replica.env.items()})
        env["_SHAKEOUT_COMMAND"] = json.dumps(
            [expand(p, values) for p in self.services[replica.service].spec.command]
        )
        return env

    def _can_wait(self, replica: Replica) -> bool:
        """Whether ``replica`` may start at low priority (see ``START_NICE``)."""
        if replica.consecutive_crashes:
            return True
        svc = self.services[replica.service]
        return (
            replica.version != svc.stable_version
            and 0.0 < svc.weights.get(replica.version, 1.0) < 1.0
        )

    async def _launch(self, replica: Replica) -> None:
        running = replica.process
        if running is not None and running.returncode is None:
            # Already started (a zone that came back twice while it waited for a start slot):
            # a second process would fail to bind its port, crash-loop, and leave the first
            # one serving untracked (seen in a fresh-clone run under a busy core).
            return
        env = self._environment(replica)
        command = json.loads(env.pop("_SHAKEOUT_COMMAND"))
        # SIGKILL when the daemon dies outright: a frozen replica would hold a SIGTERM pending
        # for ever (a stopped process only acts on SIGKILL).
        died = die_with_parent(signal.SIGKILL)
        try:
            # A replica not needed to serve yet starts at low priority (see START_NICE); new
            # capacity at normal priority, to serve at once.
            process = await self.world.spawn(
                command,
                env,
                self.log_dir / f"{replica.id}.log",
                _start_low(died) if self._can_wait(replica) else died,
                replica.zone,
                replica.id,
            )
        except NodeDown as exc:
            # Its zone's node cannot start it: it waits for the zone to be ready again.
            replica.process, replica.pid = None, None
            replica.mark(False)
            replica.state = "pending"
            self.event("replica_pending", replica=replica.id, zone=replica.zone, reason=str(exc))
            self._changed()
            return
        except (OSError, subprocess.SubprocessError) as exc:  # the latter: preexec failed
            raise PlatformError(
                f"service {replica.service!r}: cannot start command {command[0]!r}: {exc}"
            ) from exc
        replica.process = process
        replica.pid = process.pid
        replica.state = "starting"
        replica.mark(False)
        replica.probe_failures = replica.probe_successes = replica.live_failures = 0
        replica.started_at = time.monotonic()
        self._spawn(self._watch(replica, process))
        self._changed()

    async def _watch(self, replica: Replica, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        await self.world.reap(process.pid)  # workers its leader left behind
        if replica.process is not process or self._stopping:
            return
        replica.process = None
        replica.pid = None
        replica.mark(False)
        replica.last_exit_code = code
        if replica.state == "stopped":
            self._changed()
            return
        ran_s = time.monotonic() - replica.started_at
        backoff = self.spec.restart_backoff
        if ran_s >= backoff.reset_after_s:
            replica.consecutive_crashes = 0
        replica.consecutive_crashes += 1
        delay = min(backoff.initial_s * 2 ** (replica.consecutive_crashes - 1), backoff.max_s)
        replica.state = "backoff"
        self.event("replica_exited", replica=replica.id, exit_code=code, restart_in_s=delay)
        self._changed()
        await asyncio.sleep(delay)  # the back-off itself, not a wait for a condition
        if replica.state != "backoff" or self._stopping:
            return
        replica.restarts += 1
        self.event("replica_restarted", replica=replica.id, restarts=replica.restarts)
        await self._launch(replica)

    async def _stop_replica(self, replica: Replica, grace_s: float = 3.0) -> None:
        replica.state = "stopped"
        replica.mark(False)
        process = replica.process
        if process is None or process.returncode is not None:
            return
        await self.world.stop(process, grace_s)
        replica.pid = None
        self._changed()

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
        """Kill a replica's process group; the supervisor sees the exit and restarts it."""
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

    # -- rollouts ----------------------------------------------------------------------------

    async def deploy(
        self, name: str, version: str, weight: float, env: dict[str, str], replicas: int | None
    ) -> Rollout:
        """Start replicas of a new version beside the stable one and give it a traffic weight."""
        svc = self.find_service(name)
        if not 0.0 <= weight <= 1.0:
            raise PlatformError(f"weight must be between 0 and 1, got {weight}")
        if version == svc.stable_version:
            raise PlatformError(f"{name}: version {version!r} is already the stable version")
        if svc.rollout is not None and svc.rollout.status in ("progressing", "available"):
            raise PlatformError(
                f"{name}: version {svc.rollout.version!r} is still rolling out;"
                " promote or roll it back first"
            )
        count = replicas or svc.desired_replicas
        svc.rollout = Rollout(version=version, weight=weight, started_at=time.time())
        svc.weights = {svc.stable_version: 1.0 - weight, version: weight}
        self.event("rollout_started", service=name, version=version, weight=weight, env=env)
        merged = {**svc.spec.env, **env}
        for _ in range(count):
            await self._add_replica(svc, version, merged)
        return svc.rollout

    async def rollback(self, name: str, reason: str = "requested") -> Rollout | None:
        """Stop the new version's replicas and send all traffic back to the stable version."""
        svc = self.find_service(name)
        rollout = svc.rollout
        if rollout is None or rollout.status in ("rolled_back", "promoted"):
            return rollout
        svc.weights = {svc.stable_version: 1.0}
        doomed = [r for r in svc.replicas if r.version == rollout.version]
        svc.replicas = [r for r in svc.replicas if r.version != rollout.version]
        rollout.status, rollout.reason, rollout.ended_at = "rolled_back", reason, time.time()
        self.event("rollout_rolled_back", service=name, version=rollout.version, reason=reason)
        await asyncio.gather(*(self._stop_replica(r, grace_s=1.0) for r in doomed))
        self._changed()
        return rollout

    async def promote(self, name: str) -> Rollout:
        """Make the new version stable: it takes all traffic and the old replicas stop."""
        svc = self.find_service(name)
        rollout = svc.rollout
        if rollout is None or rollout.status not in ("progressing", "available"):
            raise PlatformError(f"{name}: no rollout in progress to promote")
        old = [r for r in svc.replicas if r.version != rollout.version]
        svc.replicas = [r for r in svc.replicas if r.version == rollout.version]
        svc.stable_version = rollout.version
        svc.weights = {rollout.version: 1.0}
        rollout.status, rollout.ended_at = "promoted", time.time()
        self.event("rollout_promoted", service=name, version=rollout.version)
        await asyncio.gather(*(self._stop_replica(r, grace_s=1.0) for r in old))
        self._changed()
        return rollout

    async def scale(self, name: str, replicas: int | None, *, autoscaled: bool = False) -> int:
        """Set the number of replicas of the stable version (None: the topology's count).

        An explicit count pins the service (the autoscaler leaves it alone) until a scale to
        the topology's count (None) unpins it; the autoscaler's own calls pass ``autoscaled``.
        """
        svc = self.find_service(name)
        if not autoscaled:
            svc.pinned = replicas is not None
        if replicas is None:
            replicas = svc.spec.replicas
        if not 0 <= replicas <= 50:
            raise PlatformError(f"replicas must be between 0 and 50, got {replicas}")
        stable = [r for r in svc.replicas if r.version == svc.stable_version]
        svc.desired_replicas = replicas
        added = max(0, replicas - len(stable))
        await asyncio.gather(
            *(
                self._add_replica(svc, svc.stable_version, dict(svc.spec.env), in_turn=autoscaled)
                for _ in range(added)
            )
        )
        doomed = self._spread_victims(stable, len(stable) - replicas)
        svc.replicas = [r for r in svc.replicas if r not in doomed]
        await asyncio.gather(*(self._stop_replica(r, grace_s=1.0) for r in doomed))
        if not autoscaled:
            self.event("scaled", service=name, replicas=replicas)
        self._changed()
        return replicas

    async def evict(self, name: str, count: int) -> list[str]:
        """Capacity loss: ``count`` stable replicas lose their node and are not rescheduled.

        They stay gone until ``restore_capacity``; only the autoscaler (when on) adds replicas
        meanwhile, from the load it sees.
        """
        svc = self.find_service(name)
        if count < 1:
            raise PlatformError(f"count must be at least 1, got {count}")
        stable = [r for r in svc.replicas if r.version == svc.stable_version]
        doomed = stable[len(stable) - min(count, len(stable)) :]
        svc.replicas = [r for r in svc.replicas if r not in doomed]
        svc.evicted += len(doomed)
        await asyncio.gather(*(self._stop_replica(r, grace_s=0.1) for r in doomed))
        self.event("capacity_removed", service=name, replicas=[r.id for r in doomed])
        self._changed()
        return [r.id for r in doomed]

    async def restore_capacity(self, name: str) -> int:
        """Bring back the replicas a capacity loss evicted (idempotent); how many came back."""
        svc = self.find_service(name)
        count, svc.evicted = svc.evicted, 0
        for _ in range(count):
            await self._add_replica(svc, svc.stable_version, dict(svc.spec.env))
        if count:
            self.event("capacity_restored", service=name, replicas=count)
        self._changed()
        return count

    async def _rollout_loop(self) -> None:
        policy = self.spec.rollout
        while True:
            for svc in self.services.values():
                rollout = svc.rollout
                if rollout is None or rollout.status != "progressing":
                    continue
                new = [r for r in svc.replicas if r.version == rollout.version]
                if new and all(r.ready for r in new):
                    rollout.status = "available"
                    self.event("rollout_available", service=svc.name, version=rollout.version)
                    continue
                if not policy.auto_rollback:
                    continue
                restarts = max((r.restarts for r in new), default=0)
                overdue = time.time() - rollout.started_at > policy.progress_deadline_s
                if restarts >= policy.max_restarts:
                    await self.rollback(svc.name, f"replicas restarted {restarts} times")
                elif overdue:
                    deadline = policy.progress_deadline_s
                    await self.rollback(svc.name, f"not ready within {deadline:g} s deadline")
            await asyncio.sleep(0.2)  # controller resync period

    # -- probes ------------------------------------------------------------------------------

    async def _get_ok(self, url: str, timeout_s: float) -> bool:
        assert self._probe_client is not None
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with self._probe_client.get(
                url, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                return response.status < 400
        return False

    async def _probe(self, replica: Replica) -> None:
        """One round of a replica's probes: readiness (in or out of the endpoints after
        ``failure_threshold`` failures or ``success_threshold`` successes in a row) and, when
        the service has one, liveness (killed and restarted after
        ``liveness_failure_threshold`` failures in a row, as a kubelet does)."""
        health = self.services[replica.service].spec.health
        checks = [self._get_ok(replica.url + health.ready, health.timeout_s)]
        if health.liveness_failure_threshold:
            checks.append(self._get_ok(replica.url + health.live, health.timeout_s))
        ok, *live = await asyncio.gather(*checks)
        if replica.process is None or replica.state in ("stopped", "backoff"):
            return
        if live and not live[0]:
            replica.live_failures += 1
            if replica.live_failures >= health.liveness_failure_threshold:
                self.event("replica_liveness_failed", replica=replica.id)
                replica.live_failures = 0
                self.world.kill(replica.process.pid)  # seen as an exit: restarted by _watch
                return
        elif live:
            replica.live_failures = 0
        if ok:
            replica.probe_failures = 0
            replica.probe_successes += 1
            if (
                not replica.ready
                and replica.probe_successes >= health.success_threshold
                and self.nodes.ready(replica.zone)
            ):
                _restore_priority(replica.pid)
                replica.mark(True)
                if replica.state == "starting":
                    replica.state = "running"
                self.event("replica_ready", replica=replica.id)
                self._changed()
        else:
            replica.probe_successes = 0
            replica.probe_failures += 1
            threshold = health.failure_threshold
            if replica.ready and replica.probe_failures >= threshold:
                replica.mark(False)
                self.event("replica_not_ready", replica=replica.id)
                self._changed()

    async def _probe_loop(self) -> None:
        """Probe every replica each period, as a kubelet does: a probe still waiting for its
        timeout (a frozen replica) holds back only that replica's next probe, never the
        others', so one frozen replica cannot slow the detection of another."""
        period = min(s.spec.health.period_s for s in self.services.values())
        probing: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                replicas = [
                    r
                    for svc in self.services.values()
                    for r in svc.replicas
                    if r.process is not None and r.state not in ("stopped", "backoff")
                ]
                for replica in replicas:
                    task = probing.get(replica.id)
                    if task is None or task.done():
                        probing[replica.id] = asyncio.ensure_future(self._probe(replica))
                live = {r.id for r in replicas}
                for ident in [i for i, t in probing.items() if t.done() and i not in live]:
                    del probing[ident]
                await asyncio.sleep(period)  # probe period
        finally:
            for task in probing.values():
                task.cancel()

    # -- secrets -----------------------------------------------------------------------------

    def write_secret(self, current: str, previous: str | None) -> float:
        """Write the shared-key file atomically; services reload it when it changes."""
        rotated_at = time.time()
        payload = {
            "current": current,
            "previous": previous,
            "rotated_at": rotated_at,
            "overlap_s": self.spec.key_overlap_s,
        }
        tmp = self.secret_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.chmod(0o600)
        os.replace(tmp, self.secret_file)
        return rotated_at

    def rotate_key(self) -> float:
        """Rotate the shared key; the previous key stays valid for the overlap window."""
        if not self.secret_file.exists():
            raise PlatformError("the secret store is down: bring it back before rotating")
        current = json.loads(self.secret_file.read_text(encoding="utf-8"))["current"]
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
                zone: {"ready": self.nodes.ready(zone), "world": self.world.zone_state(zone)}
                for zone in self.spec.zones
            },
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
