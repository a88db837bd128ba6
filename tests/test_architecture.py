"""The package's shape: imports run one way between areas, no module imports itself round a
circle, the rehearsal sits behind a hard edge, and one module starts child processes."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "tasks"
SHARED = {"__init__", "errors", "paths", "files", "process"}
# What each area may import besides itself and the shared modules (house-style §B2).
ALLOWED = {
    "idf": set(),
    "config": {"idf"},
    "tls": {"config", "idf"},
    "firmware": {"config", "idf", "tls"},
    "device": {"config", "idf", "firmware"},
    "release": {"config", "idf", "firmware"},
    "serve": {"config", "idf", "firmware", "device", "tls", "release"},
    "rehearsal": {"config", "idf", "firmware", "device", "tls", "serve", "release"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom, known: set[str]) -> set[str]:
    """The package modules an import names (`from .x import y` may mean module x.y)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level == 0:
        return set()
    base = package[: len(package) - node.level + 1]
    stem = [*base, *(node.module.split(".") if node.module else [])]
    found: set[str] = set()
    for alias in node.names:
        candidate = ".".join([*stem, alias.name])
        if candidate in known:
            found.add(candidate)
        elif stem and ".".join(stem) in known:
            found.add(".".join(stem))
        elif not stem:
            found.add("__init__")
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                edges |= _resolve(module, path, node, known)
        graph[module] = edges - {module}
    return graph


def _area(module: str) -> str:
    return module.split(".")[0]


def test_architecture__no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append([*trail[trail.index(node) :], node])
            return
        for target in sorted(graph.get(node, ())):
            if _area(target) != "__init__":
                visit(target, [*trail, node])

    for start in sorted(graph):
        visit(start, [])
    assert sorted({" -> ".join(cycle) for cycle in cycles}) == []


def test_architecture__areas_import_one_way() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if (area := _area(module)) in ALLOWED
        and _area(target) not in SHARED | ALLOWED[area] | {area}
    ]
    assert wrong == []


def test_architecture__nothing_outside_the_rehearsal_imports_it() -> None:
    # graph.py, which wires every task (doit rehearse too), is the one module above it.
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _area(target) == "rehearsal" and _area(module) not in ("rehearsal", "graph")
    ]
    assert wrong == []


def test_architecture__one_gate_for_child_processes_and_no_test_switches() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {word}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "process.py" or path.parent != PACKAGE
        for word in ("subprocess", "STANDIN_", "os.system", "os.exec", "os.spawn")
        if word in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
