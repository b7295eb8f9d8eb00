"""The shop's feature flags: their names, allowed values and defaults (no web framework here).

The platform validates a config change against this table before it rolls it out (when its
``platform.config.validate`` switch is on); the services read the live values through
``ConfigStore`` in ``_config``. A flag value the table allows can still be harmful at run time
(``catalog.pricing: dynamic`` needs a pricing engine the shop does not run): that is what the
staged rollout and its automatic rollback are for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Flag:
    """One feature flag: its default and the values a config change may set."""

    name: str
    default: str
    allowed: tuple[str, ...]
    description: str


FLAGS: dict[str, Flag] = {
    f.name: f
    for f in (
        Flag(
            "catalog.pricing",
            "list",
            ("list", "sale", "dynamic"),
            "list: catalogue prices; sale: 10% off every product; dynamic: prices from the"
            " dynamic pricing engine (not deployed in the reference shop, so every product"
            " request fails: the harmful value a staged rollout must catch)",
        ),
    )
}
"""Every flag the shop knows, by name."""

DEFAULTS: dict[str, str] = {name: flag.default for name, flag in FLAGS.items()}
"""The config every service starts from."""


def validate_flags(flags: Mapping[str, Any]) -> list[str]:
    """Problems with a set of flag values, each naming the flag; empty when they are valid."""
    problems: list[str] = []
    for name, value in flags.items():
        flag = FLAGS.get(name)
        if flag is None:
            problems.append(f"unknown flag {name!r} (known: {', '.join(FLAGS)})")
        elif not isinstance(value, str) or value not in flag.allowed:
            problems.append(
                f"flag {name!r}: value {value!r} is not one of {', '.join(flag.allowed)}"
            )
    return problems


@dataclass(frozen=True, slots=True)
class ConfigView:
    """The config one replica applies: its version and its flag values."""

    version: int
    flags: dict[str, str]


def parse_config(data: Any, zone: str) -> ConfigView:
    """The config a replica in ``zone`` applies, from the platform's config file content.

    The file is ``{"version": N, "flags": {...}, "canary": null | {"version": M, "zones":
    [...], "flags": {...}}}``: replicas in a canary zone apply the canary's flags, the others
    the base flags. Values are not validated here (a fragile platform may ship any value: the
    service that reads the flag fails at run time, as a real one would). Raises ValueError
    naming the field at fault when the file's structure is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    chosen: dict[str, Any] = data
    canary = data.get("canary")
    if canary is not None:
        if not isinstance(canary, dict):
            raise ValueError("'canary' must be an object or null")
        zones = canary.get("zones")
        if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
            raise ValueError("'canary.zones' must be a list of zone names")
        if zone in zones:
            chosen = canary
    version = chosen.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError("'version' must be an integer")
    flags = chosen.get("flags")
    if not isinstance(flags, dict) or not all(isinstance(k, str) for k in flags):
        raise ValueError("'flags' must be an object")
    # Non-string values are kept as their JSON text: the service that reads the flag then
    # meets a value it does not know, as it would with a typo.
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in flags.items()}
    return ConfigView(version, {**DEFAULTS, **values})
