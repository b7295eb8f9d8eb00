"""A replica's start: its settings (``ServiceSettings``, from the environment), the crash knob."""

from __future__ import annotations

import sys

from shakeout.contracts import ServiceSettings


def load_settings(service: str) -> ServiceSettings:
    """Read the settings and honour SHAKEOUT_CRASH_ON_START (exit 1 before binding a port)."""
    settings = ServiceSettings.from_env(service)
    if settings.crash_on_start:
        print(
            f"{settings.replica}: SHAKEOUT_CRASH_ON_START is set, exiting with status 1",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1)
    return settings
