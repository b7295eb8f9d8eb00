"""The kubelet: runs each replica as a process on its zone's node, restarts it, stops it.

* a replica is one process group (and, as root on a cgroup v2 hierarchy, one cgroup) started
  through the world (``shakeout.platform.world``) on its zone's node; a node that is down
  starts nothing, and the replica waits (``pending``) for its zone to be ready again;
* its version is pulled into the node's image cache first (``shakeout.platform.registry``); a
  pull that fails leaves it ``pending`` and is retried with a doubling back-off
  (``ImagePullBackOff``);
* a crashed replica is restarted with a doubling back-off and its restarts are counted, so a
  crash loop looks like Kubernetes' ``CrashLoopBackOff``;
* starts the autoscaler or a returning zone ask for go at most ``MAX_PARALLEL_STARTS`` at a
  time, and a replica not needed to serve yet starts at low CPU priority (``START_NICE``).

Its probes are in ``shakeout.platform.probes``. Everything runs on the daemon's asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from shakeout._process import die_with_parent
from shakeout.errors import PlatformError
from shakeout.platform.registry import ImagePuller
from shakeout.platform.replicas import Replica, Service
from shakeout.platform.world import NodeDown, World
from shakeout.topology import BackoffSpec

MAX_PARALLEL_STARTS = 2
"""Replicas the autoscaler or a returning zone start at the same time (see
``Kubelet.start_in_turn``)."""
START_SLOT_S = 10.0
"""How long one start may hold its slot waiting to be ready."""
PULL_BACKOFF_S = (0.5, 4.0)
"""A failed image pull is retried after 0.5 s, doubling up to 4 s (Kubernetes: 10 s to 5 min)."""


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


def start_low(then: Callable[[], None] | None) -> Callable[[], None] | None:
    """A ``preexec_fn``: lower the child's CPU priority (when it can be restored), then
    ``then``."""
    if not _CAN_RENICE:
        return then

    def _set() -> None:  # pragma: no cover - runs in the child between fork and exec
        os.nice(START_NICE)
        if then is not None:
            then()

    return _set


def restore_priority(pid: int | None) -> None:
    """Normal CPU priority for a replica that became ready (see ``START_NICE``)."""
    if _CAN_RENICE and pid is not None:
        with contextlib.suppress(OSError):  # it may have exited meanwhile
            os.setpriority(os.PRIO_PROCESS, pid, 0)


class Kubelet:
    """Starts, watches, restarts and stops the processes of the replicas of ``services``."""

    def __init__(
        self,
        world: World,
        services: Mapping[str, Service],
        backoff: BackoffSpec,
        log_dir: Path,
        environment: Callable[[Replica], dict[str, str]],
        event: Callable[..., None],
        changed: Callable[[], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        images: ImagePuller,
    ) -> None:
        """Run replicas in ``world`` with the command and variables ``environment`` gives
        (``_SHAKEOUT_COMMAND``: the command, as JSON), each logging to ``log_dir``; record
        ``event``s, call ``changed`` when the endpoints may have changed, run background work
        with ``spawn``; pull each version into its node's cache with ``images``."""
        self.world = world
        self.services = services
        self.backoff = backoff
        self.log_dir = log_dir
        self._environment = environment
        self._event = event
        self._changed = changed
        self._spawn = spawn
        self.stopping = False  # set once the platform stops: nothing is started or restarted
        self._start_slots = asyncio.Semaphore(MAX_PARALLEL_STARTS)
        self.images = images
        self._pull_failures: dict[str, int] = {}  # replica id -> failed pulls in a row

    def start_soon(self, replica: Replica) -> None:
        """Start ``replica`` in the background, in turn (see ``start_in_turn``)."""
        self._spawn(self.start_in_turn(replica))

    async def start_in_turn(self, replica: Replica) -> None:
        """Launch a replica when a start slot is free and hold the slot until it is ready (or
        exited, or ``START_SLOT_S`` passed).

        Every replica of this platform shares the machine's cores, so replicas started all at
        once (an autoscaler adding four, a zone coming back with six) starve the ones serving
        traffic for seconds while their interpreters start: measured under one busy core, a 6
        to 10 gateway scale-up held checkout p95 at 900 ms for three seconds. On a cluster each
        would start on its own node; here at most ``MAX_PARALLEL_STARTS`` start together.
        """
        async with self._start_slots:
            if (
                self.stopping
                or replica.state == "stopped"
                or replica not in self.services[replica.service].replicas
            ):
                return  # stopped, or scaled away while it waited
            await self.launch(replica)
            deadline = time.monotonic() + START_SLOT_S
            process = replica.process
            while (
                not replica.ready
                and process is not None
                and process.returncode is None
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)  # poll readiness under the deadline above

    def can_wait(self, replica: Replica) -> bool:
        """Whether ``replica`` may start at low priority (see ``START_NICE``)."""
        if replica.consecutive_crashes:
            return True
        svc = self.services[replica.service]
        return (
            replica.version != svc.stable_version
            and 0.0 < svc.weights.get(replica.version, 1.0) < 1.0
        )

    async def launch(self, replica: Replica) -> None:
        """Start ``replica``'s process on its zone's node (``pending`` if the node is down) and
        watch it: an exit is restarted after the back-off, unless the replica was stopped."""
        running = replica.process
        if running is not None and running.returncode is None:
            # Already started (a zone that came back twice while it waited for a start slot):
            # a second process would fail to bind its port, crash-loop, and leave the first
            # one serving untracked (seen in a fresh-clone run under a busy core).
            return
        failure = await self.images.pull(replica.zone, replica.service, replica.version)
        if failure is not None:
            self._pull_failed(replica, failure)
            return
        self._pull_failures.pop(replica.id, None)
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
                start_low(died) if self.can_wait(replica) else died,
                replica.zone,
                replica.id,
            )
        except NodeDown as exc:
            # Its zone's node cannot start it: it waits for the zone to be ready again.
            replica.process, replica.pid = None, None
            replica.mark(False)
            replica.state = "pending"
            self._event("replica_pending", replica=replica.id, zone=replica.zone, reason=str(exc))
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

    def _pull_failed(self, replica: Replica, failure: str) -> None:
        """``ImagePullBackOff``: the replica waits (``pending``), the pull is tried again after
        the back-off. One event per streak of failures."""
        replica.process, replica.pid = None, None
        replica.mark(False)
        replica.state = "pending"
        tries = self._pull_failures[replica.id] = self._pull_failures.get(replica.id, 0) + 1
        if tries == 1:
            self._event("image_pull_failed", replica=replica.id, zone=replica.zone, reason=failure)
        self._changed()
        first, most = PULL_BACKOFF_S
        self._spawn(self._pull_again(replica, min(first * 2 ** (tries - 1), most)))

    async def _pull_again(self, replica: Replica, delay: float) -> None:
        await asyncio.sleep(delay)  # the back-off itself, not a wait for a condition
        wanted = replica in self.services[replica.service].replicas
        if wanted and replica.state == "pending" and not self.stopping:
            await self.start_in_turn(replica)

    async def _watch(self, replica: Replica, process: asyncio.subprocess.Process) -> None:
        """Wait for ``process`` to exit; then, unless ``replica`` was stopped, restart it after
        the back-off."""
        code = await process.wait()
        await self.world.reap(process.pid)  # workers its leader left behind
        if replica.process is not process or self.stopping:
            return
        replica.process = None
        replica.pid = None
        replica.mark(False)
        replica.last_exit_code = code
        if replica.state == "stopped":
            self._changed()
            return
        ran_s = time.monotonic() - replica.started_at
        backoff = self.backoff
        if ran_s >= backoff.reset_after_s:
            replica.consecutive_crashes = 0
        replica.consecutive_crashes += 1
        delay = min(backoff.initial_s * 2 ** (replica.consecutive_crashes - 1), backoff.max_s)
        replica.state = "backoff"
        self._event("replica_exited", replica=replica.id, exit_code=code, restart_in_s=delay)
        self._changed()
        await asyncio.sleep(delay)  # the back-off itself, not a wait for a condition
        if replica.state != "backoff" or self.stopping:
            return
        replica.restarts += 1
        self._event("replica_restarted", replica=replica.id, restarts=replica.restarts)
        # In turn, like any start: three crash-looping replicas restarting at once starved the
        # serving ones (a crash-loop drill's checkout p95 went over 300 ms under a busy core).
        await self.start_in_turn(replica)

    async def stop(self, replica: Replica, grace_s: float = 3.0) -> None:
        """Stop ``replica`` for good: its process group is terminated (killed after
        ``grace_s``) and it is not restarted."""
        replica.state = "stopped"
        replica.mark(False)
        process = replica.process
        if process is None or process.returncode is not None:
            return
        await self.world.stop(process, grace_s)
        replica.pid = None
        self._changed()
