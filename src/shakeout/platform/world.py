"""The world: the replicas' processes, where faults act.

The embedded platform has two sides, kept apart as on a real cluster:

* **the world** (this module): each replica is a process group on a simulated node, one node
  per zone. Faults act here and only here: a freeze stops every process of the group
  (``SIGSTOP`` to the group, so the workers of a multi-process server stop with their parent),
  a kill ends the group; a zone that goes down kills its groups and its node starts nothing
  until it is back, and a zone that freezes stops its groups. Either way its node stops
  sending heartbeats. A zone that loses packets has the kernel drop a share of its replicas'
  TCP segments (``shakeout.platform.network``).
* **the control plane** (the supervisor's readiness probes and restarts, the node controller
  and placement, the router's endpoints, retries and ejections, the autoscaler, rollouts,
  canary analysis): it learns about the world only by observing it, through probe results,
  process exits, node heartbeats and the router's own request outcomes. Nothing a fault does
  is written into its state, so a freeze applied through the control API and the same
  ``SIGSTOP`` sent by anyone else look the same to it, and it has to detect either
  (``tests/platform/test_world.py`` proves the parity).

The world keeps what it did (which groups and zones it froze or took down) to undo it, to
show it in ``status`` and to answer for its nodes (a heartbeat, a start); no controller reads
it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from shakeout.platform.cgroups import Cgroups
from shakeout.platform.network import TABLE_PREFIX, PacketLoss


class NodeDown(Exception):
    """A zone's node is down or frozen: nothing can start there."""


class World:
    """Starts replicas as process groups on zone nodes and applies faults to them.

    With ``cgroups`` (a writable cgroup v2 hierarchy, see ``shakeout.platform.cgroups``) each
    replica also gets its own cgroup, and a freeze uses the cgroup freezer as a container
    runtime does; without, ``SIGSTOP`` to the process group stops the same processes.
    """

    def __init__(self, cgroups: Cgroups | None = None) -> None:
        self.cgroups = cgroups
        self._frozen: set[int] = set()  # process groups this world stopped (by leader pid)
        self._zone_of: dict[int, str] = {}  # every live group's zone
        self._down: set[str] = set()  # zones whose node is down
        self._frozen_zones: set[str] = set()  # zones whose node is frozen
        self.packet_loss = PacketLoss(f"{TABLE_PREFIX}{os.getpid()}")  # the kernel drops them

    async def spawn(
        self,
        command: list[str],
        env: dict[str, str],
        log: Path,
        preexec_fn: Callable[[], None] | None,
        zone: str,
        name: str = "replica",
    ) -> asyncio.subprocess.Process:
        """Start a replica's command on ``zone``'s node as the leader of a new process group
        (its own session), so that a fault or a stop reaches every process it starts.
        Raises NodeDown when that node is down or frozen."""
        if not self.heartbeat(zone):
            raise NodeDown(f"zone {zone!r} is unreachable: nothing starts there")
        cgroup = self.cgroups.make(name) if self.cgroups is not None else None
        setup = preexec_fn
        if cgroup is not None:
            join, then = Cgroups.join(cgroup), preexec_fn

            def setup() -> None:  # pragma: no cover - runs in the child between fork and exec
                join()
                if then is not None:
                    then()

        try:
            with log.open("ab") as out:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    env=env,
                    start_new_session=True,
                    preexec_fn=setup,
                )
        except BaseException:
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
            raise
        if cgroup is not None and self.cgroups is not None:
            self.cgroups.adopt(process.pid, cgroup)
        self._zone_of[process.pid] = zone
        return process

    @property
    def freezer(self) -> str:
        """How this world freezes a replica."""
        return "cgroup v2 freezer" if self.cgroups is not None else "SIGSTOP to the process group"

    def heartbeat(self, zone: str) -> bool:
        """Whether ``zone``'s node answers (what its node agent would report)."""
        return zone not in self._down and zone not in self._frozen_zones

    def zone_down(self, zone: str) -> list[int]:
        """The zone's node goes down: every group on it is killed, nothing starts there."""
        self._down.add(zone)
        killed = [pid for pid, where in self._zone_of.items() if where == zone]
        for pid in killed:
            self.kill(pid)
        return killed

    def zone_freeze(self, zone: str) -> list[int]:
        """The zone's node freezes: every group on it stops, and so do its heartbeats."""
        self._frozen_zones.add(zone)
        frozen = [pid for pid, where in self._zone_of.items() if where == zone]
        for pid in frozen:
            self.freeze(pid)
        return frozen

    def zone_up(self, zone: str) -> list[int]:
        """Undo a zone fault: its frozen groups continue and its node takes starts again."""
        thawed = [pid for pid, where in self._zone_of.items() if where == zone and self.thaw(pid)]
        self._down.discard(zone)
        self._frozen_zones.discard(zone)
        return thawed

    def zone_state(self, zone: str) -> str:
        """``up``, ``down``, ``frozen`` or ``losing N% of packets`` (for ``status``;
        controllers never ask)."""
        if zone in self._down:
            return "down"
        if zone in self._frozen_zones:
            return "frozen"
        loss = self.packet_loss.zones.get(zone)
        return f"losing {loss[1]}% of packets" if loss else "up"

    @staticmethod
    def send(pid: int, sig: int) -> bool:
        """Send ``sig`` to the process group led by ``pid``; False when it is gone."""
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def freeze(self, pid: int) -> bool:
        """Stop every process of the replica (its cgroup, else its process group): its
        sockets stay open, nothing answers."""
        if self.cgroups is not None and self.cgroups.has(pid):
            done = self.cgroups.freeze(pid, frozen=True)
        else:
            done = self.send(pid, signal.SIGSTOP)
        if done:
            self._frozen.add(pid)
        return done

    def thaw(self, pid: int) -> bool:
        """Undo a freeze; False when it was not frozen here."""
        if pid not in self._frozen:
            return False
        self._frozen.discard(pid)
        if self.cgroups is not None and self.cgroups.has(pid):
            return self.cgroups.freeze(pid, frozen=False)
        return self.send(pid, signal.SIGCONT)

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> bool:
        """End the replica with ``sig`` (thawed first, so a frozen one gets it too)."""
        self.thaw(pid)
        self.send(pid, signal.SIGCONT)  # also undoes a SIGSTOP someone else sent
        if sig == signal.SIGKILL and self.cgroups is not None and self.cgroups.has(pid):
            self.cgroups.kill(pid)
        return self.send(pid, sig)

    def frozen(self, pid: int | None) -> bool:
        """Whether this world froze the group (for ``status``; controllers never ask)."""
        return pid is not None and pid in self._frozen

    async def reap(self, pid: int) -> None:
        """The replica's leader exited: end whatever it left (workers) and forget it, for its
        pid may be reused."""
        self.send(pid, signal.SIGKILL)
        self._frozen.discard(pid)
        self._zone_of.pop(pid, None)
        if self.cgroups is not None:
            await self.cgroups.release(pid)

    async def close(self) -> None:
        """Every replica is stopped: remove what the world made (packet loss, cgroups)."""
        self.packet_loss.clear()
        if self.cgroups is not None:
            await self.cgroups.close()

    async def stop(self, process: asyncio.subprocess.Process, grace_s: float) -> None:
        """Stop a replica's group: ``SIGTERM`` (continued first), ``SIGKILL`` after the grace."""
        pid = process.pid
        if process.returncode is None:
            self.kill(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                self.send(pid, signal.SIGKILL)
                await process.wait()
        await self.reap(pid)  # the leader is gone; any worker it left goes too
