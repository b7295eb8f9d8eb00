"""Load profiles as files: finding one by name, and the journeys it runs, without running it.

A profile is a locustfile (see docs/load.md). Its journeys are what objectives name
(``the "checkout" journey``), so a misspelt journey can be refused before anything starts.
Locust must never be imported into the harness process (it monkey-patches it with gevent), so
the journeys are read from the profile's source: the ``journeys = [(weight, function), ...]``
of its user class, in the profile or in a sibling module it imports the class from (as the
shop's profiles import ``Shopper`` from ``_shop.py``). A journey is named by the ``name=`` its
requests carry, or by its function's name when they carry none.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from shakeout.errors import ConfigError, did_you_mean

PROFILE_DIR = Path("loadprofiles")


def available(directory: Path) -> list[str]:
    """Names of the runnable profiles in a folder (a leading ``_`` marks a shared module)."""
    return sorted(p.stem for p in directory.glob("*.py") if not p.stem.startswith("_"))


def search_path(feature: Path | None, directory: Path = PROFILE_DIR) -> list[Path]:
    """Where a feature's profiles are looked for: the ``profiles/`` folder beside the feature
    file (so a team's drills carry their own), then ``directory`` (``--profiles``)."""
    return ([feature.parent / "profiles"] if feature is not None else []) + [directory]


def resolve(name: str, directories: Sequence[Path] = (PROFILE_DIR,)) -> Path:
    """Path of a load profile by name (``steady``, in the first folder that has it) or by
    path; errors list what exists and the nearest name."""
    candidate = Path(name)
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate
    if not name.startswith("_"):
        for directory in directories:
            if (directory / f"{name}.py").is_file():
                return directory / f"{name}.py"
    known = sorted({p for d in directories for p in available(d)})
    where = " or ".join(str(d) for d in directories if d.is_dir()) or str(directories[-1])
    raise ConfigError(
        f"unknown load profile {name!r}: no {name}.py in {where} (profiles there: "
        f"{', '.join(known) or 'none'}){did_you_mean(name, known)}"
    )


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}: load profile is not valid Python: {exc.msg}"
        ) from None


def _request_names(function: ast.FunctionDef) -> list[str]:
    names = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                value = keyword.value
                if (
                    keyword.arg == "name"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    names.append(value.value)
    return names


def _journey_functions(cls: ast.ClassDef) -> list[str] | None:
    for node in cls.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if not (isinstance(target, ast.Name) and target.id == "journeys"):
            continue
        value = getattr(node, "value", None)
        if not isinstance(value, ast.List | ast.Tuple):
            return None
        functions = []
        for item in value.elts:
            if isinstance(item, ast.Tuple) and len(item.elts) == 2:
                ref = item.elts[1]
                if isinstance(ref, ast.Name):
                    functions.append(ref.id)
                elif isinstance(ref, ast.Attribute):
                    functions.append(ref.attr)
        return functions
    return None


def _module_journeys(path: Path, wanted: set[str] | None, seen: set[Path]) -> set[str]:
    if path in seen or not path.is_file():
        return set()
    seen.add(path)
    tree = _parse(path)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    journeys: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and (wanted is None or node.name in wanted):
            for function in _journey_functions(node) or []:
                found = functions.get(function)
                journeys.update((found and _request_names(found)) or [function])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            sibling = path.parent / f"{node.module}.py"
            imported = {alias.name for alias in node.names}
            journeys |= _module_journeys(sibling, imported, seen)
    return journeys


def journeys(path: Path) -> list[str]:
    """The journeys a profile runs (empty when they cannot be read from its source)."""
    return sorted(_module_journeys(path, None, set()))
