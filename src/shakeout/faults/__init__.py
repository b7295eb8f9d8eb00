"""Fault units: one class per fault word, holding everything about that fault.

A unit (a :class:`Fault` subclass in one of this package's modules) gives the step phrase a
feature writes, the typed Chaos Toolkit configuration the phrase's words become, the replicas
the fault reaches on a target (its blast radius, from the target's :class:`Placement`), and the
experiment that implements it per target kind. The step definitions
(``steps/drill_steps.py``), ``shakeout plan``, docs/steps.md and the coverage tests are built
from :data:`REGISTRY`, so adding a fault is one new unit plus its experiment files (see
docs/architecture.md, "Adding a fault").

Every module of this package is imported here, so a unit in a new module registers too.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from shakeout.faults._base import Fault, Params, Reach, Variables
from shakeout.placement import Placement

# The catalogue's reading order (steps page, plans); a new module registers after these.
_ORDER = ("releases", "replicas", "zones", "dependencies", "secrets", "data", "cluster")
for _name in sorted(
    (m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")),
    key=lambda name: _ORDER.index(name) if name in _ORDER else len(_ORDER),
):
    importlib.import_module(f"{__name__}.{_name}")

REGISTRY: dict[str, Fault[Any]] = Fault.registry
"""Every fault unit by its word (those the embedded platform runs first)."""
_units = sorted(REGISTRY.items(), key=lambda item: item[1].cluster_only)
REGISTRY.clear()
REGISTRY.update(_units)

__all__ = [
    "REGISTRY",
    "Fault",
    "Params",
    "Placement",
    "Reach",
    "Variables",
    "experiment_for",
    "find",
]


def find(step: str) -> tuple[Fault[Any], dict[str, Any]] | None:
    """The fault unit a step's text names, with its parsed arguments; None for other steps."""
    for fault in REGISTRY.values():
        args = fault.match(step)
        if args is not None:
            return fault, args
    return None


def experiment_for(word: str, kind: str, overrides: dict[str, str]) -> str | None:
    """The experiment a fault word runs on a target of ``kind`` whose file maps
    ``overrides`` (its ``faults:``); a word no unit defines only runs from the target file."""
    fault = REGISTRY.get(word)
    return fault.experiment(kind, overrides) if fault is not None else overrides.get(word)
