"""What the drill engine needs from a target, whichever kind it is.

The engine talks to a target only through its public HTTP surface (the gateway), its fault
catalogue (Chaos Toolkit experiments, given :meth:`TargetSession.chaos_configuration`), its
load workers, its data check and this small read-only view: events, rollouts and steady state.
``LocalSession`` reads them from the embedded platform's control API; the Kubernetes target
provides the same from the cluster (``shakeout.k8s.session``). Sessions are opened by
:func:`shakeout.target.open_session`; the engine never asks which kind it has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shakeout.datacheck import OrderStore, ShopOrders
from shakeout.errors import ConfigError, PlatformError
from shakeout.observability.alerts import AlertSource
from shakeout.platform import network
from shakeout.platform.lifecycle import PlatformClient
from shakeout.platform.state import PlatformState
from shakeout.topology import LocalTarget

if TYPE_CHECKING:
    from shakeout.load import LoadSpec as LoadRunSpec


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

    @property
    def kind(self) -> str:
        """The target's kind (``local``, ``kubernetes``): which experiment of a fault runs."""
        ...

    @property
    def fault_experiments(self) -> dict[str, str]:
        """Experiments the target file puts in place of the fault units' own (``faults``)."""
        ...

    @property
    def slo_file(self) -> Path | None:
        """The target's SLO file, None when it names none."""
        ...

    @property
    def remote_workers(self) -> int:
        """How many load workers run on the target itself (0: all load from this machine)."""
        ...

    def start_workers(self, spec: LoadRunSpec) -> None:
        """Start the target's own load workers for ``spec`` (only when ``remote_workers``)."""
        ...

    def stop_workers(self) -> None:
        """Remove the target's load workers; idempotent, a no-op when it runs none."""
        ...

    def chaos_configuration(self) -> dict[str, Any]:
        """Chaos Toolkit configuration every experiment of this target gets."""
        ...

    def fault_skip_reason(self, experiment: Path) -> str | None:
        """Why an experiment cannot run on this target as it is (a missing operator), or None."""
        ...

    def orders(self) -> OrderStore | None:
        """The target's order store for the data check, None when it has none."""
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

    def alerting(self) -> AlertSource | str:
        """Where the target's alerts are read, or why they cannot be (the alert steps skip
        with that reason)."""
        ...


def _slo_path(target_file: str | Path, slo: str | None) -> Path | None:
    return Path(target_file).parent / slo if slo else None


class LocalSession:
    """The embedded platform as a :class:`TargetSession`."""

    remote_workers = 0

    def __init__(self, state: PlatformState, spec: LocalTarget) -> None:
        self.state = state
        self.spec = spec

    @property
    def kind(self) -> str:
        """``local``."""
        return self.spec.kind

    @property
    def fault_experiments(self) -> dict[str, str]:
        """The target file's ``faults`` entries."""
        return dict(self.spec.faults)

    @property
    def slo_file(self) -> Path | None:
        """The SLO file, relative to the target file."""
        return _slo_path(self.state.target_file, self.spec.slo)

    def start_workers(self, spec: LoadRunSpec) -> None:
        """All load comes from this machine: nothing to start."""

    def stop_workers(self) -> None:
        """Nothing to stop."""

    def fault_skip_reason(self, experiment: Path) -> str | None:
        """Why the embedded platform cannot run an experiment here (packet loss without
        nftables or root), or None when it can."""
        tags = json.loads(Path(experiment).read_text(encoding="utf-8")).get("tags", [])
        reason = network.unavailable() if "nftables" in tags else None
        return f"{experiment}: {reason}" if reason else None

    def orders(self) -> OrderStore | None:
        """The shop's order store through the gateway (None without an ``orders`` service)."""
        return ShopOrders(self.gateway_url) if "orders" in self.spec.services else None

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

    def alerting(self) -> AlertSource | str:
        """The platform's own Prometheus and Alertmanager, with its recording receiver."""
        state = self.state
        if state.prometheus_url is None:
            return state.monitoring_absent or "the platform runs no Prometheus"

        def notifications(since: float) -> list[dict[str, Any]]:
            with PlatformClient(state) as client:
                return client.notifications(since)

        return AlertSource(
            state.prometheus_url,
            state.alertmanager_url,
            self.spec.platform.observability.evaluation_interval_s,
            notifications,
        )

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
