"""The package's shape: imports run one way between areas, no module imports itself round a
circle, the rehearsal sits behind a hard edge, and one module starts child processes."""

from __future__ import annotations

import ast
import re
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


PACKAGE_NAME = "esp_ota_doit"


def _absolute(name: str | None) -> list[str] | None:
    """`esp_ota_doit.a.b` as the package-relative parts [a, b]; None for another package's name."""
    if name is None:
        return None
    parts = name.split(".")
    return parts[1:] if parts[0] == PACKAGE_NAME else None


def _known(parts: list[str], known: set[str]) -> set[str]:
    """The longest package module that a dotted name starts with."""
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return {".".join(parts[:end])}
    return {"__init__"} if not parts else set()


def _resolve(module: str, path: Path, node: ast.ImportFrom, known: set[str]) -> set[str]:
    """The package modules an import names (`from .x import y` may mean module x.y)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level == 0:
        absolute = _absolute(node.module)
        if absolute is None:
            return set()
        stem = absolute
    else:
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
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    absolute = _absolute(alias.name)
                    if absolute is not None:
                        edges |= _known(absolute, known)
            elif _dynamic_import(node):
                # importlib.import_module("esp_ota_doit.x") / __import__(...) hide an edge
                # from every check above: the house has none.
                edges.add(f"<dynamic import at {path.name}:{node.lineno}>")
        graph[module] = edges - {module}
    return graph


def _dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name in {"import_module", "__import__"}


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


def _targets(node: ast.AST, path: Path, known: set[str]) -> set[str]:
    """The package modules one import statement names."""
    if isinstance(node, ast.ImportFrom):
        return _resolve(_module_name(path), path, node, known)
    if isinstance(node, ast.Import):
        found: set[str] = set()
        for alias in node.names:
            absolute = _absolute(alias.name)
            found |= _known(absolute, known) if absolute is not None else set()
        return found
    return set()


def test_architecture__the_rehearsal_is_imported_lazily() -> None:
    """graph.py imports the rehearsal (the optional `rehearse` extra) inside its creators, or
    for types only, so every other task loads without it."""
    graph = PACKAGE / "graph.py"
    known = set(_modules())
    eager = [
        f"graph.py:{node.lineno}"
        for node in ast.parse(graph.read_text(encoding="utf-8")).body  # module level only
        if any(_area(target) == "rehearsal" for target in _targets(node, graph, known))
    ]
    assert eager == []


# Words that would mark a production value as the rehearsal's: the rehearsal is told apart by
# where its builds live (build/virtual/) and by which link it hands to flash, never by a flag.
_REHEARSAL_WORDS = {"synthetic", "virtual", "standin", "emulator", "emulated"}


def _flag_names(tree: ast.AST) -> list[str]:
    """Fields (class-level names) and parameters whose name holds a rehearsal word."""
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[tuple[str, int]] = []
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.append((item.target.id, item.lineno))
                elif isinstance(item, ast.Assign):
                    names += [(t.id, item.lineno) for t in item.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            names += [(a.arg, a.lineno) for a in every]
        found += [
            f"{name} (line {line})"
            for name, line in names
            if _REHEARSAL_WORDS & set(name.lower().strip("_").split("_"))
        ]
    return found


def test_architecture__no_rehearsal_flag_on_production_types() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "rehearsal" not in path.relative_to(PACKAGE).parts
        for name in _flag_names(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == []


def test_architecture__no_dynamic_imports() -> None:
    wrong = [
        target for targets in _graph().values() for target in targets if target.startswith("<")
    ]
    assert wrong == []


# Every way Python starts another program: modules whose import alone is the capability, and
# the os functions that fork or exec.
_SPAWNING_MODULES = {"subprocess", "multiprocessing", "pty", "concurrent.futures.process"}
_SPAWNING_OS = re.compile(r"^(system|popen|fork|forkpty|exec\w*|spawn\w*|posix_spawn\w*)$")
_SPAWNING_ASYNCIO = {"create_subprocess_exec", "create_subprocess_shell"}


def _spawns(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in _SPAWNING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in _SPAWNING_MODULES or node.module in _SPAWNING_MODULES:
                found.append(node.module)
            elif node.module == "os":
                found += [f"os.{a.name}" for a in node.names if _SPAWNING_OS.match(a.name)]
            elif node.module == "asyncio":
                found += [f"asyncio.{a.name}" for a in node.names if a.name in _SPAWNING_ASYNCIO]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, name = node.value.id, node.attr
            if (owner == "os" and _SPAWNING_OS.match(name)) or (
                owner == "asyncio" and name in _SPAWNING_ASYNCIO
            ):
                found.append(f"{owner}.{name}")
    return found


def test_architecture__one_gate_for_child_processes_and_no_test_switches() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "process.py" or path.parent != PACKAGE
        for what in [
            *_spawns(ast.parse(path.read_text(encoding="utf-8"))),
            *(["STANDIN_"] if "STANDIN_" in path.read_text(encoding="utf-8") else []),
        ]
    ]
    assert offenders == []


def test_architecture__the_checks_see_what_they_must() -> None:
    # Each check must be able to fail: the spellings that slipped past the earlier version.
    spawning = ast.parse(
        "import os, subprocess\nfrom os import posix_spawn\nimport asyncio\n"
        "os.posix_spawnp('x', [], {})\nasyncio.create_subprocess_exec('x')\nos.execv('x', [])\n"
    )
    assert set(_spawns(spawning)) == {
        "subprocess",
        "os.posix_spawn",
        "os.posix_spawnp",
        "asyncio.create_subprocess_exec",
        "os.execv",
    }
    assert _absolute("esp_ota_doit.rehearsal.virtual_board") == ["rehearsal", "virtual_board"]
    assert _known(["rehearsal", "virtual_board", "Board"], {"rehearsal.virtual_board"}) == {
        "rehearsal.virtual_board"
    }
    assert _dynamic_import(ast.parse("importlib.import_module('x')").body[0].value)  # type: ignore[attr-defined]
    flags = ast.parse(
        "class A:\n    virtual: bool = False\n    is_synthetic = True\n"
        "def f(x, *, standin=False): pass\nlambda emulator: 0\nclass B:\n    virtually: int\n"
    )
    known = set(_modules())
    eager = ast.parse(
        "from .rehearsal import rehearse\nimport esp_ota_doit.rehearsal.virtual_board"
    )
    assert [_targets(node, PACKAGE / "graph.py", known) for node in eager.body] == [
        {"rehearsal.rehearse"},
        {"rehearsal.virtual_board"},
    ]
    assert [name.split()[0] for name in _flag_names(flags)] == [
        "virtual",
        "is_synthetic",
        "standin",
        "emulator",
    ]
