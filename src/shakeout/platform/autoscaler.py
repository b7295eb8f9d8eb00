"""The autoscaler: the stable version's replica count follows the service's load.

It plays the part of a Kubernetes HorizontalPodAutoscaler (with the cluster autoscaler's
"there is always a node" folded in), compressed to seconds:

* the load is the rate of client requests the router received for the service over
  ``window_s``; a replica's capacity is ``platform.capacity.<service>`` requests per second;
* desired = ceil(rate / (capacity x target_utilization)), clamped to the service's min and max;
* scale-up is immediate, then waits ``scale_up_cooldown_s`` (replicas still starting count, so
  one surge does not add replicas twice);
* scale-down goes to the highest recommendation of the last ``scale_down_delay_s`` seconds (the
  HPA's stabilisation window), so capacity is not dropped in a dip between two bursts.

Rules with the other controllers:

* an explicit scale (a drill's ``scale`` fault, ``shakeout platform scale``) pins the count: the
  autoscaler leaves that service alone until a scale back to the topology's count unpins it;
* while a rollout of the service is in progress the autoscaler waits, so the canary's
  comparison and the promotion see a stable replica set;
* replicas evicted by a capacity-loss fault are gone: the autoscaler replaces them when the load
  needs it; when they come back, the slow scale-down removes the surplus.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shakeout.platform.view import ClusterView


@dataclass
class _History:
    """Recommendations of one service (for the scale-down stabilisation window)."""

    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    last_up: float = float("-inf")
    last_change: float = float("-inf")


class Autoscaler:
    """Scales the autoscaled services of a supervisor from the router's traffic figures."""

    def __init__(self, supervisor: ClusterView) -> None:
        """Watch ``supervisor``'s services named in ``platform.autoscaler.services``."""
        self.supervisor = supervisor
        self.spec = supervisor.spec.autoscaler
        self._history: dict[str, _History] = {}

    @property
    def enabled(self) -> bool:
        """Whether the target file turns the autoscaler on for at least one service."""
        return self.spec.enabled and bool(self.spec.services)

    async def run(self) -> None:
        """Evaluate every ``interval_s`` until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self.spec.interval_s)  # the controller's resync period

    def recommend(self, service: str) -> tuple[int, float]:
        """Desired replicas of ``service`` for its current load, and that load (req/s)."""
        bounds = self.spec.services[service]
        capacity = self.supervisor.spec.capacity[service]
        rate = self.supervisor.traffic.rate(service, self.spec.window_s)
        wanted = math.ceil(rate / (capacity * self.spec.target_utilization))
        return max(bounds.min, min(bounds.max, wanted)), rate

    async def tick(self) -> None:
        """One evaluation of every autoscaled service."""
        sup = self.supervisor
        now = sup.traffic.now()
        for name in self.spec.services:
            svc = sup.services[name]
            # The count the service starts with holds a full window before any scale-down.
            history = self._history.setdefault(name, _History(last_change=now))
            desired, rate = self.recommend(name)
            history.recommendations.append((now, desired))
            while history.recommendations[0][0] < now - self.spec.scale_down_delay_s:
                history.recommendations.popleft()
            if svc.pinned or (
                svc.rollout is not None and svc.rollout.status in ("progressing", "available")
            ):
                continue
            stable = [r for r in svc.replicas if r.version == svc.stable_version]
            # Capacity is what can serve: a replica in a zone not ready, crash-looping, or
            # running but failing its readiness probe (frozen, as far as the probes can tell)
            # serves nothing, so it is not counted (a new one is added beside it).
            current = sum(
                1
                for r in stable
                if (r.state == "starting" or (r.state == "running" and r.ready))
                and sup.nodes.ready(r.zone)
            )
            absent = len(stable) - current
            capacity = sup.spec.capacity[name]
            if desired > current:
                if now - history.last_up < self.spec.scale_up_cooldown_s:
                    continue
                target = desired
                history.last_up = now
            elif desired < current:
                # Stabilisation: the highest recommendation of the window, and only once the
                # count has held that long.
                stable_for = now - history.last_change
                if stable_for < self.spec.scale_down_delay_s:
                    continue
                target = max(d for _, d in history.recommendations)
                if target >= current:
                    continue
            else:
                continue
            history.last_change = now
            await sup.scale(name, target + absent, autoscaled=True)
            sup.event(
                "autoscaled",
                service=name,
                replicas_from=current,
                replicas_to=target,
                rate_rps=round(rate, 1),
                capacity_rps=round(current * capacity, 1),
                utilization=round(rate / (current * capacity), 2) if current else None,
            )
