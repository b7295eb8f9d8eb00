"""What the drill engine needs from a target, whichever kind it is.

The engine talks to a target only through its public HTTP surface (the gateway), its fault
catalogue (Chaos Toolkit experiments, given :meth:`TargetSession.chaos_configuration`) and
this small read-only view: events, rollouts and steady state. ``LocalSession`` reads them
from the embedded platform's control API; the Kubernetes target provides the same from the
cluster (``shakeout.k8s.session``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from shakeout.errors import ConfigError, PlatformError
from shakeout.platform.lifecycle import PlatformClient
from shakeout.platform.state import PlatformState


class TargetSession(Protocol):
    """A running target as a drill sees it."""

    @property
    def target(self) -> str:
        """The target's name."""
        ...

    @property
    def target_file(self) -> str | Path:
        """The target file it was started from."""
        ...

    @property
    def gateway_url(self) -> str:
        """Where load and order reconciliation go."""
        ...

    def chaos_configuration(self) -> dict[str, Any]:
        """Chaos Toolkit configuration every experiment of this target gets."""
        ...

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Target events (``seq``, ``t``, ``kind``, ...) after sequence number ``since``."""
        ...

    def rollout(self, service: str) -> dict[str, Any] | None:
        """The service's latest rollout (``version``, ``status``, ``reason``, ``started_at``,
        ``ended_at``), None when there was none; ConfigError for an unknown service."""
        ...

    def steady_state(self) -> tuple[bool, str]:
        """Whether the target is in its steady state, and what is not when it is not."""
        ...


class LocalSession:
    """The embedded platform as a :class:`TargetSession`."""

    def __init__(self, state: PlatformState) -> None:
        self.state = state

    @property
    def target(self) -> str:
        """The target's name."""
        return self.state.target

    @property
    def target_file(self) -> str:
        """The target file the platform was started from."""
        return self.state.target_file

    @property
    def gateway_url(self) -> str:
        """The router's address for the gateway."""
        return self.state.gateway_url

    def chaos_configuration(self) -> dict[str, Any]:
        """The local actions and probes find the platform by target name."""
        return {"shakeout_target": self.state.target}

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Platform events (restarts, ejections, rollouts, ...) after ``since``."""
        with PlatformClient(self.state) as client:
            return client.events(since)

    def rollout(self, service: str) -> dict[str, Any] | None:
        """The service's latest rollout record."""
        with PlatformClient(self.state) as client:
            services = client.status()["services"]
        if service not in services:
            raise ConfigError(f"no service {service!r} on target {self.state.target!r}")
        rollout: dict[str, Any] | None = services[service]["rollout"]
        return rollout

    def steady_state(self) -> tuple[bool, str]:
        """Every replica ready and no rollout still progressing."""
        try:
            with PlatformClient(self.state) as client:
                services = client.status()["services"]
        except PlatformError as exc:
            return False, str(exc)
        waiting = [r["id"] for svc in services.values() for r in svc["replicas"] if not r["ready"]]
        moving = [
            name
            for name, svc in services.items()
            if svc["rollout"] and svc["rollout"]["status"] == "progressing"
        ]
        problems = []
        if waiting:
            problems.append(f"not ready: {', '.join(waiting)}")
        if moving:
            problems.append(f"rollout still progressing: {', '.join(moving)}")
        return not problems, "; ".join(problems)
