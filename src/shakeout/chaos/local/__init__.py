"""Chaos Toolkit activities for the embedded (local) platform.

Every activity takes the Chaos Toolkit ``configuration``; its ``shakeout_target`` key names the
platform (default ``local``), found through the state file ``shakeout platform up`` wrote.
"""

from __future__ import annotations

from typing import Any

from shakeout.errors import PlatformError
from shakeout.platform.lifecycle import PlatformClient, running

__all__ = ["client"]


def client(configuration: dict[str, Any] | None) -> PlatformClient:
    """A control API client for the platform the configuration names."""
    name = (configuration or {}).get("shakeout_target", "local")
    state = running(name)
    if state is None:
        raise PlatformError(
            f"platform {name!r} is not running: start it with "
            f"'shakeout platform up --target targets/{name}.yaml'"
        )
    return PlatformClient(state)
