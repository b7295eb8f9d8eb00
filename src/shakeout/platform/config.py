"""Live config (feature flags) rolled out like a release: validate, canary zones, watch, apply.

The config lives in one JSON file in the platform's state dir (``config.json``); every replica
re-reads it when it changes (``ConfigStore`` in ``shakeout.services._config``), so a change
needs no restart. ``platform.config`` in the target file decides how a change travels:

* ``validation``: unknown flags and values outside a flag's allowed list are refused
  (``config_rejected``) and nothing is written;
* ``staged``: the new flags go first to the replicas of the canary zones only
  (``config_canary``); for ``bake_s`` the platform watches those replicas (readiness from its
  probes, served requests and 5xx per config version from their ``/statusz``). Healthy: the
  flags go everywhere (``config_applied``). Unhealthy, with ``auto_rollback``: every replica goes
  back to the last good config (``config_rolled_back``, with the figures);
* not staged: the flags go everywhere at once (the fragile way); without ``live_reload`` they
  are applied by restarting every replica of the flag's service at once (the services read the
  config when they start), so even a harmless change costs an outage.

Events: ``config_rejected``, ``config_canary``, ``config_canary_failed`` (the canary zones went
unhealthy; with the figures), ``config_rolled_back``, ``config_applied``, ``config_reverted``.

``revert`` restores the config in force before the last change (what a fault's revert calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from shakeout.services.flags import DEFAULTS, validate_flags

if TYPE_CHECKING:
    from shakeout.platform.replicas import Replica
    from shakeout.platform.view import ClusterView

APPLY_TIMEOUT_S = 5.0
"""How long canary replicas get to report the new config version before the change fails."""
POLL_S = 0.25


async def replica_status(supervisor: ClusterView, replica: Replica) -> dict[str, Any] | None:
    """A replica's ``/statusz`` (key in use, config version and counters), None if it fails."""
    session = supervisor.http_client
    if session is None or replica.process is None:
        return None
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
        async with session.get(
            replica.url + "/statusz", timeout=aiohttp.ClientTimeout(total=1.0)
        ) as response:
            if response.status == 200:
                body = await response.json()
                if isinstance(body, dict):
                    return body
    return None


class ConfigManager:
    """The platform side of the live config: the file, the staged rollout and its history."""

    def __init__(self, supervisor: ClusterView) -> None:
        """Bind to a supervisor; nothing is written until ``start``."""
        self.supervisor = supervisor
        self.spec = supervisor.spec.config
        self.path = supervisor.state_dir / "config.json"
        self.version = 0
        self.good: dict[str, str] = dict(DEFAULTS)
        self.before_change: dict[str, str] | None = None
        self.last: dict[str, Any] | None = None
        self._canary: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Write the initial config (every flag at its default)."""
        self._write(self.good, None)

    def _write(self, flags: dict[str, str], canary: dict[str, Any] | None) -> None:
        """Replace the config file atomically (write a temporary file, then rename)."""
        payload = {"version": self.version, "flags": flags, "canary": canary}
        if canary is None:
            self.version += 1
            payload["version"] = self.version
        self._canary = canary
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, self.path)

    def status(self) -> dict[str, Any]:
        """The config in force, the canary (if any) and the last change's outcome."""
        return {
            "version": self.version,
            "flags": self.good,
            "canary": self._canary,
            "last": self.last,
            "policy": self.spec.model_dump(),
        }

    async def apply(self, changes: dict[str, str]) -> dict[str, Any]:
        """Roll out flag changes as the policy says; the outcome, never an exception."""
        async with self._lock:
            self.last = await self._apply(changes)
            return self.last

    async def _apply(self, changes: dict[str, str]) -> dict[str, Any]:
        sup = self.supervisor
        if self.spec.validation:
            problems = validate_flags(changes)
            if problems:
                reason = "; ".join(problems)
                sup.event("config_rejected", flags=changes, reason=reason)
                return {"status": "rejected", "reason": reason, "flags": changes}
        proposed = {**self.good, **changes}
        self.before_change = dict(self.good)
        if not self.spec.staged:
            self.good = proposed
            self._write(proposed, None)
            restarted = [] if self.spec.live_reload else self._restart_readers(changes)
            sup.event(
                "config_applied",
                version=self.version,
                flags=changes,
                staged=False,
                restarted=restarted,
            )
            return {
                "status": "applied",
                "version": self.version,
                "flags": changes,
                "restarted": restarted,
            }
        zones = list(sup.spec.zones[: self.spec.canary_zones])
        canary_version = self.version + 1
        self._write(self.good, {"version": canary_version, "zones": zones, "flags": proposed})
        sup.event("config_canary", version=canary_version, zones=zones, flags=changes)
        healthy, figures = await self._analyse(canary_version, zones)
        if healthy:
            self.good = proposed
            self._write(proposed, None)  # everywhere, under the canary's version number
            sup.event("config_applied", version=self.version, flags=changes, staged=True, **figures)
            return {"status": "applied", "version": self.version, "flags": changes, **figures}
        sup.event("config_canary_failed", version=canary_version, flags=changes, **figures)
        if not self.spec.auto_rollback:
            return {"status": "canary_failed", "version": canary_version, **figures}
        self.version = canary_version  # the rolled-back config gets a version of its own
        self._write(self.good, None)
        sup.event(
            "config_rolled_back",
            version=self.version,
            rejected_version=canary_version,
            flags=changes,
            **figures,
        )
        return {"status": "rolled_back", "version": self.version, "flags": changes, **figures}

    def _restart_readers(self, changes: dict[str, str]) -> list[str]:
        """Apply by restart: every replica of the services the flags belong to, all at once.

        A flag is named after the service that reads it (``catalog.pricing``); a flag that
        names no service restarts every service. The supervisor brings the replicas back with
        its restart back-off; they read the new config when they start.
        """
        sup = self.supervisor
        owners = {name.split(".", 1)[0] for name in changes}
        services = [s for s in sup.services.values() if s.name in owners] or list(
            sup.services.values()
        )
        victims = [r for svc in services for r in svc.replicas if r.process is not None]
        for replica in victims:
            sup.kill(replica, signal.SIGTERM)
        return [r.id for r in victims]

    async def _analyse(self, version: int, zones: list[str]) -> tuple[bool, dict[str, Any]]:
        """Watch the canary zones' replicas under config ``version``: (healthy, figures)."""
        sup = self.supervisor
        replicas = [
            r
            for svc in sup.services.values()
            for r in svc.replicas
            if r.zone in zones and r.state in ("starting", "running") and sup.nodes.ready(r.zone)
        ]
        figures: dict[str, Any] = {
            "zones": zones,
            "replicas": [r.id for r in replicas],
            "requests": 0,
            "errors": 0,
            "error_rate": 0.0,
        }
        started = time.monotonic()
        pending = {r.id for r in replicas}
        while pending:
            statuses = await asyncio.gather(*(replica_status(sup, r) for r in replicas))
            for replica, status in zip(replicas, statuses, strict=True):
                if status is not None and status["config"]["version"] == version:
                    pending.discard(replica.id)
            if pending and time.monotonic() - started > APPLY_TIMEOUT_S:
                figures["reason"] = f"not applied within {APPLY_TIMEOUT_S:g} s: {sorted(pending)}"
                return False, figures
            if pending:
                await asyncio.sleep(POLL_S)  # poll period while the replicas pick the file up
        bake_started = time.monotonic()
        while True:
            statuses = await asyncio.gather(*(replica_status(sup, r) for r in replicas))
            requests = errors = 0
            for status in statuses:
                if status is not None and status["config"]["version"] == version:
                    requests += int(status["config"]["requests"])
                    errors += int(status["config"]["errors"])
            rate = errors / requests if requests else 0.0
            figures.update(requests=requests, errors=errors, error_rate=round(rate, 4))
            unready = [r.id for r in replicas if not r.ready]
            if unready:
                figures["reason"] = f"replicas not ready under config v{version}: {unready}"
                return False, figures
            if requests >= self.spec.min_requests and rate > self.spec.max_error_rate:
                figures["reason"] = (
                    f"error rate {rate:.1%} over {requests} requests under config v{version}"
                    f" exceeds {self.spec.max_error_rate:.1%}"
                )
                return False, figures
            figures["baked_s"] = round(time.monotonic() - bake_started, 3)
            if time.monotonic() - bake_started >= self.spec.bake_s:
                return True, figures
            await asyncio.sleep(POLL_S)  # analysis interval during the bake

    async def revert(self) -> dict[str, Any]:
        """Restore the config in force before the last change, everywhere (idempotent)."""
        async with self._lock:
            sup = self.supervisor
            previous = self.before_change
            if (previous is None or previous == self.good) and self._canary is None:
                return {"status": "unchanged", "version": self.version, "flags": self.good}
            restored = previous if previous is not None else self.good
            changed = {k: v for k, v in restored.items() if self.good.get(k) != v}
            self.good = dict(restored)
            self._write(self.good, None)
            self.before_change = None
            restarted = (
                self._restart_readers(changed) if changed and not self.spec.live_reload else []
            )
            sup.event("config_reverted", version=self.version, flags=self.good, restarted=restarted)
            return {"status": "reverted", "version": self.version, "flags": self.good}
