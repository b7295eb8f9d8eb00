"""The live config (feature flags) a replica applies, re-read when the platform changes it."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .flags import DEFAULTS, ConfigView, parse_config

log = logging.getLogger("shakeout.services")

CONFIG_CHECK_INTERVAL_S = 0.2


class ConfigStore:
    """The live config (feature flags) this replica applies, re-read when the platform changes it.

    Like ``KeyStore``: the platform's config file is stat'ed at most every
    ``check_interval_s`` on the request path and re-read when it changes; a file that goes
    missing or invalid keeps the last good config. Without a file (``path=None``) the flags keep
    their defaults. It also counts the requests served and the 5xx answered under the current
    config version, which the platform's staged config rollout reads from ``/statusz``.
    """

    def __init__(
        self, path: Path | None, zone: str, check_interval_s: float = CONFIG_CHECK_INTERVAL_S
    ) -> None:
        """Load the file now (if any); counters start at zero."""
        self.path = path
        self.zone = zone
        self._interval = check_interval_s
        self._next_check = 0.0
        self._signature: tuple[int, int, int] | None = None
        self.view = ConfigView(0, dict(DEFAULTS))
        self.error: str | None = None
        self.requests = 0
        self.errors = 0
        self.refresh(force=True)

    @property
    def flags(self) -> dict[str, str]:
        """The flag values in force."""
        return self.view.flags

    @property
    def version(self) -> int:
        """The config version in force (0: defaults, no file read yet)."""
        return self.view.version

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed; cheap enough to call on every request."""
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + self._interval
        try:
            st = os.stat(self.path)
            signature = (st.st_ino, st.st_mtime_ns, st.st_size)
            if signature == self._signature:
                return
            view = parse_config(json.loads(self.path.read_bytes()), self.zone)
        except (OSError, ValueError) as exc:
            message = f"config file {self.path}: {exc}; keeping config v{self.view.version}"
            if message != self.error:
                log.warning("%s", message)
            self.error = message
            return
        self._signature = signature
        self.error = None
        if view.version != self.view.version:
            self.requests = self.errors = 0  # the counters judge one config version
            log.warning("config v%d applied: %s", view.version, view.flags)
        self.view = view

    def record(self, status: int) -> None:
        """Count one answered request under the current config version."""
        self.requests += 1
        if status >= 500:
            self.errors += 1

    def status(self) -> dict[str, Any]:
        """What ``/statusz`` shows: version, flags, counters, last error."""
        return {
            "version": self.view.version,
            "flags": self.view.flags,
            "requests": self.requests,
            "errors": self.errors,
            "error": self.error,
        }
