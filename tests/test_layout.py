"""The package's layout: no import cycle, no module too long to read in one sitting.

Both read the source only (``ast``), never import it: an import under ``if TYPE_CHECKING:`` or
inside a function counts as much as one at the top, as do relative imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "shakeout"
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, wherever the import statement is."""
    is_package = path.name == "__init__.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, up level - 1 more
                package = name.split(".") if is_package else name.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # ``from pkg import module`` imports pkg.module
                child = f"{base}.{alias.name}"
                imported.add(child if child in modules else base)
    return {
        target
        for target in (_owning_module(i, modules) for i in imported)
        if target is not None and target != name
    }


def _owning_module(dotted: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``dotted`` that is one of the package's modules, if any."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """Every strongly connected component of more than one module (Tarjan), with one cycle
    through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(_one_cycle(graph, set(component)), component) for component in components]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, within it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")  # unreachable


def test_no_import_cycle_in_the_package() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles (TYPE_CHECKING and function-level imports count):\n" + (
        "\n".join(
            f"{' -> '.join(cycle)} (modules in cycles with each other: {', '.join(members)})"
            for cycle, members in cycles
        )
    )


def test_no_module_over_the_line_limit() -> None:
    too_long = {
        str(path.relative_to(PACKAGE.parent.parent)): count
        for path in sorted(PACKAGE.rglob("*.py"))
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"modules over {MAX_LINES} lines:\n" + "\n".join(
        f"{path}: {count}" for path, count in too_long.items()
    )


def test_the_cycle_finder_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert _cycles(graph) == [(["p.a", "p.b", "p.c", "p.a"], ["p.a", "p.b", "p.c"])]
    module = tmp_path / "p" / "sub" / "m.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import a\n"
        "from . import n\n"
        "if TYPE_CHECKING:\n"
        "    from p.b import Thing\n"
        "def f():\n"
        "    import p.c\n"
    )
    modules = dict.fromkeys(["p", "p.a", "p.b", "p.c", "p.sub", "p.sub.m", "p.sub.n"], Path())
    assert _imports("p.sub.m", module, modules) == {"p.a", "p.b", "p.c", "p.sub.n"}
