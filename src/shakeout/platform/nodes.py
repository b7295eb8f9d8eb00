"""The node controller: the control plane's view of the zones, learned from heartbeats only.

Kubernetes' node lifecycle controller, compressed: every zone's node sends a heartbeat (here:
the world's node agent answers a poll every ``heartbeat_s``); a zone that has sent none for
``grace_s`` is *not ready*: placement puts no new replica there and its replicas are taken out
of the endpoints; when heartbeats come back it is *ready* again and the replicas waiting for it
start. Nothing tells this controller that a fault happened: a zone that goes down or freezes
simply stops answering, and a zone that is merely slow to answer one poll is not failed.

A *cordoned* zone (its node being drained, ``shakeout.platform.drain``) stays ready and keeps
its replicas, but placement puts nothing new there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class NodeController:
    """Which zones are ready, from the heartbeats seen (``clock`` injectable for tests)."""

    def __init__(
        self,
        zones: list[str],
        heartbeat: Callable[[str], bool],
        on_change: Callable[[str, bool], None],
        heartbeat_s: float,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._heartbeat = heartbeat
        self._on_change = on_change
        self.heartbeat_s = heartbeat_s
        self.grace_s = grace_s
        self._clock = clock
        now = clock()
        self._last_seen = dict.fromkeys(zones, now)
        self._ready = dict.fromkeys(zones, True)
        self.cordoned: set[str] = set()  # unschedulable: being drained

    def ready(self, zone: str) -> bool:
        """Whether the control plane considers ``zone`` ready."""
        return self._ready.get(zone, False)

    def ready_zones(self) -> list[str]:
        """Every ready zone, in the target's order."""
        return [zone for zone, ready in self._ready.items() if ready]

    def schedulable_zones(self) -> list[str]:
        """Every ready zone that is not cordoned: where placement may put a new replica."""
        return [zone for zone in self.ready_zones() if zone not in self.cordoned]

    def tick(self) -> None:
        """Take this round's heartbeats and update each zone's condition."""
        now = self._clock()
        for zone in self._ready:
            if self._heartbeat(zone):
                self._last_seen[zone] = now
            ready = now - self._last_seen[zone] < self.grace_s
            if ready != self._ready[zone]:
                self._ready[zone] = ready
                self._on_change(zone, ready)

    async def run(self) -> None:
        """Poll the heartbeats for ever."""
        while True:
            self.tick()
            await asyncio.sleep(self.heartbeat_s)  # the heartbeat period
