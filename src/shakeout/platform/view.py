"""The control plane's view of the platform: all that its controllers may read and ask.

The router, the autoscaler, the canary analysis, the config rollout, the secret store's
observers and the migration job depend on :class:`ClusterView`, never on the supervisor
itself: what they read was observed (readiness and state from the probes and process exits,
zone conditions from node heartbeats, traffic figures from the router's own outcomes), and
what they ask changes desired state (scale, roll back, promote) or restarts a replica. Nothing
here reaches the world (``shakeout.platform.world``), where faults act.

``shakeout.platform.supervisor.Supervisor`` satisfies it structurally and is handed over as a
``ClusterView`` where the controllers are built (``Supervisor.__init__``; the daemon builds the
router). This module imports no other module of the platform at run time.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

    from shakeout.platform.replicas import Replica, Rollout, Service
    from shakeout.platform.traffic import TrafficStats
    from shakeout.topology import PlatformSpec


class ZoneConditions(Protocol):
    """The node controller's verdict on the zones (from their heartbeats)."""

    def ready(self, zone: str) -> bool:
        """Whether the control plane considers ``zone`` ready."""
        ...


class ClusterView(Protocol):
    """What the controllers and the router read of the platform and may ask of it."""

    @property
    def spec(self) -> PlatformSpec:
        """The target's ``platform`` section: every controller's policy."""
        ...

    @property
    def state_dir(self) -> Path:
        """The platform's state directory (config file, audit log)."""
        ...

    @property
    def data_dir(self) -> Path:
        """The services' data directory (the orders store)."""
        ...

    @property
    def secret_file(self) -> Path:
        """The secret store: the shared-key file."""
        ...

    @property
    def services(self) -> Mapping[str, Service]:
        """Every service's desired and observed state, its replicas with it."""
        ...

    @property
    def nodes(self) -> ZoneConditions:
        """Which zones are ready."""
        ...

    @property
    def traffic(self) -> TrafficStats:
        """The router's arrivals and outcomes (the router records, the controllers read)."""
        ...

    @property
    def http_client(self) -> aiohttp.ClientSession | None:
        """The HTTP session of the probes (``/statusz`` and key checks use it too); None
        before the platform started."""
        ...

    def routable(self, name: str) -> list[Replica]:
        """Replicas the router may send ``name``'s traffic to."""
        ...

    def find_service(self, name: str) -> Service:
        """The service with this name, or a NotFound naming the known ones."""
        ...

    def event(self, kind: str, **detail: Any) -> None:
        """Record a platform event."""
        ...

    def kill(self, replica: Replica, sig: int = signal.SIGKILL) -> None:
        """Signal a replica's process group (it is restarted after its exit)."""
        ...

    async def scale(self, name: str, replicas: int | None, *, autoscaled: bool = False) -> int:
        """Set the stable version's replica count (None: the topology's)."""
        ...

    async def rollback(self, name: str, reason: str = "requested") -> Rollout | None:
        """Roll the version being rolled out back."""
        ...

    async def promote(self, name: str) -> Rollout:
        """Make the version being rolled out the stable one."""
        ...
