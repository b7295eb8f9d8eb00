"""What the control plane knows of each service and replica: plain values, no behaviour.

``Service`` holds a service's desired state (stable version, weights, replica count, a rollout
in progress) and its replicas; ``Replica`` what was observed of one (state, readiness, restarts,
process). The supervisor and its parts (``kubelet``, ``probes``, ``deployments``) change them;
the controllers and the router read them through ``shakeout.platform.view.ClusterView``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from shakeout.errors import PlatformError
from shakeout.topology import ServiceSpec

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
