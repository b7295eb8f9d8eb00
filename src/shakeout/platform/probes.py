"""The probes: each replica's readiness (and, when its service has one, liveness) probe.

As a kubelet runs them: every ``period_s`` (the shortest of the services') each replica's
health endpoints are called with a ``timeout_s``; ``failure_threshold`` failures in a row take
a ready replica out of the endpoints, ``success_threshold`` successes bring it back (only while
its zone is ready), and ``liveness_failure_threshold`` failed liveness probes kill a replica that
was ready since its start (its exit is then seen and it is restarted, see
``shakeout.platform.kubelet``). A probe waiting for its
timeout (a frozen replica) holds back only that replica's next probe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import aiohttp

from shakeout.platform.kubelet import restore_priority
from shakeout.platform.replicas import Replica, Service


async def get_ok(client: aiohttp.ClientSession, url: str, timeout_s: float) -> bool:
    """Whether a GET of ``url`` answers below 400 within ``timeout_s``."""
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with client.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            return response.status < 400
    return False


class Probes:
    """Probes the replicas of ``services`` and marks them ready or not."""

    def __init__(
        self,
        services: Mapping[str, Service],
        zone_ready: Callable[[str], bool],
        kill: Callable[[int], object],
        event: Callable[..., None],
        changed: Callable[[], None],
    ) -> None:
        """Probe the replicas of ``services``: a replica turns ready only while
        ``zone_ready(zone)``; ``kill(pid)`` ends one failing its liveness probe; ``event``
        records, ``changed`` is called when a readiness changed."""
        self.services = services
        self._zone_ready = zone_ready
        self._kill = kill
        self._event = event
        self._changed = changed

    async def probe(self, client: aiohttp.ClientSession, replica: Replica) -> None:
        """One round of a replica's probes: readiness (in or out of the endpoints after
        ``failure_threshold`` failures or ``success_threshold`` successes in a row) and, when
        the service has one, liveness (killed and restarted after
        ``liveness_failure_threshold`` failures in a row, as a kubelet does)."""
        health = self.services[replica.service].spec.health
        checks = [get_ok(client, replica.url + health.ready, health.timeout_s)]
        if health.liveness_failure_threshold:
            checks.append(get_ok(client, replica.url + health.live, health.timeout_s))
        ok, *live = await asyncio.gather(*checks)
        if replica.process is None or replica.state in ("stopped", "backoff"):
            return
        if live and not live[0] and replica.state == "running":
            # Only once the replica was ready after its (re)start, as a kubelet holds liveness
            # back behind a startup probe: a slow start is not a hung process. Killing it then
            # restarted it over and over on a busy machine.
            replica.live_failures += 1
            if replica.live_failures >= health.liveness_failure_threshold:
                self._event("replica_liveness_failed", replica=replica.id)
                replica.live_failures = 0
                self._kill(replica.process.pid)  # seen as an exit: the kubelet restarts it
                return
        elif live:
            replica.live_failures = 0
        if ok:
            replica.probe_failures = 0
            replica.probe_successes += 1
            if (
                not replica.ready
                and replica.probe_successes >= health.success_threshold
                and self._zone_ready(replica.zone)
            ):
                restore_priority(replica.pid)
                replica.mark(True)
                if replica.state == "starting":
                    replica.state = "running"
                self._event("replica_ready", replica=replica.id)
                self._changed()
        else:
            replica.probe_successes = 0
            replica.probe_failures += 1
            threshold = health.failure_threshold
            if replica.ready and replica.probe_failures >= threshold:
                replica.mark(False)
                self._event("replica_not_ready", replica=replica.id)
                self._changed()

    async def run(self, client: aiohttp.ClientSession) -> None:
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
                        probing[replica.id] = asyncio.ensure_future(self.probe(client, replica))
                live = {r.id for r in replicas}
                for ident in [i for i, t in probing.items() if t.done() and i not in live]:
                    del probing[ident]
                await asyncio.sleep(period)  # probe period
        finally:
            for task in probing.values():
                task.cancel()
