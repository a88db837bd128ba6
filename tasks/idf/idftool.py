"""ESP-IDF on this machine and idf.py as an external program: where the tree is (the one place
that reads $IDF_PATH), which release a tree is, the idf.py to run, the Python it runs under, and
checking which ESP-IDF it is. idf.py runs through the one process gate (process.run), like every
child of this project.

idf.py runs under ESP-IDF's own Python environment ($IDF_PYTHON_ENV_PATH, set by export.sh)
whatever `python` comes first on PATH: this tool's venv may have been activated after export.sh,
and ESP-IDF's idf.py refuses any interpreter without its pinned packages (docs/architecture.md).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError
from . import releases

__all__ = [
    "IdfTool",
    "available",
    "cause",
    "find_idf",
    "idf_path",
    "idf_python",
    "idf_tree",
    "idf_version",
]

_TAIL_LINES = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class IdfTool:
    """How to run idf.py here, and which ESP-IDF it is."""

    command: tuple[str, ...]
    version: str  # "5.3.2"
    python_env: str | None = None  # ESP-IDF's Python environment ($IDF_PYTHON_ENV_PATH)

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` as export.sh leaves it: ESP-IDF's Python environment first on PATH, so every
        `python` idf.py, CMake and ninja start is ESP-IDF's and not this tool's venv's."""
        env = dict(base)
        if self.python_env:
            env["PATH"] = os.pathsep.join(
                [str(Path(self.python_env) / "bin"), *_others(env.get("PATH", ""), self.python_env)]
            )
        return env


def _others(path: str, python_env: str) -> list[str]:
    return [entry for entry in path.split(os.pathsep) if entry and entry != f"{python_env}/bin"]


def idf_python(env: Mapping[str, str]) -> Path | None:
    """ESP-IDF's Python (export.sh sets $IDF_PYTHON_ENV_PATH), if it is there."""
    python_env = env.get("IDF_PYTHON_ENV_PATH")
    python = Path(python_env or "") / "bin" / "python"
    return python if python_env and python.is_file() else None


def _idf_script(env: Mapping[str, str]) -> str | None:
    """The idf.py to run: the one on PATH (export.sh puts $IDF_PATH/tools there), else
    $IDF_PATH/tools/idf.py."""
    on_path = shutil.which("idf.py", path=env.get("PATH"))
    in_tree = Path(env["IDF_PATH"]) / "tools" / "idf.py" if env.get("IDF_PATH") else None
    return on_path or (str(in_tree) if in_tree is not None and in_tree.is_file() else None)


def idf_path(env: Mapping[str, str]) -> Path | None:
    """The ESP-IDF tree: $IDF_PATH, else the folder above the idf.py found on PATH."""
    if env.get("IDF_PATH"):
        return Path(env["IDF_PATH"])
    found = shutil.which("idf.py", path=env.get("PATH"))
    return Path(found).resolve().parent.parent if found else None


def idf_tree(env: Mapping[str, str]) -> Path | None:
    """The ESP-IDF tree $IDF_PATH names when it is one (a root Kconfig beside tools/idf.py),
    whether or not its idf.py can run here."""
    root = Path(env["IDF_PATH"]) if env.get("IDF_PATH") else None
    if root is None or not (root / "Kconfig").is_file():
        return None
    return root if (root / "tools" / "idf.py").is_file() else None


def idf_version(idf_path: Path) -> str | None:
    """A tree's release, major.minor.patch, from tools/cmake/version.cmake: what ESP-IDF's
    build system (kconfig.cmake's IDF_VERSION) takes it to be."""
    try:
        text = (idf_path / "tools" / "cmake" / "version.cmake").read_text(encoding="utf-8")
    except OSError:
        return None
    parts = [
        re.search(rf"IDF_VERSION_{part}\s+(\d+)", text) for part in ("MAJOR", "MINOR", "PATCH")
    ]
    return ".".join(found.group(1) for found in parts if found) if all(parts) else None


_NOT_FOUND_HINT = (
    "install ESP-IDF v{want} and run its export.sh (. $HOME/esp/esp-idf/export.sh), "
    "or run inside the {container} container"
)


# ESP-IDF installed but not exported (IDF_PATH set, export.sh not run) is the usual cause.
_CANNOT_RUN_HINT = (
    "run ESP-IDF's export.sh first (. $IDF_PATH/export.sh), "
    "or rehearse with the idf.py stand-in: doit rehearse --standin"
)


def _hint(want: str) -> str:
    try:
        container = releases.release(want).container
    except KeyError:
        container = f"espressif/idf:v{want}"
    return _NOT_FOUND_HINT.format(want=want, container=container)


# What idf.py prints around its own error: ESP-IDF's version, git's complaint, the diagnostics.
# (These patterns are text, compiled by re when a failure is read: not on every run's import.)
_NOISE = (
    r"^(ESP-IDF v\S+$|fatal: not a git repository|WARNING: Git version|Diagnostic information|"
    r"IDF_PYTHON_ENV_PATH:|Python interpreter used|To install the missing packages|Constraint "
    r"file:|Requirement files:|- |Python being checked:|The following Python requirements)"
)
# Its causes, most telling first.
_CAUSES = (
    r"not met|No module named|Cannot import module",
    r"ESP-IDF shell|[Ee]rror",
)
# idf.py's own line when ESP-IDF's Python environment holds another esptool than it pins.
_ESPTOOL_NOT_MET = r"Requirement 'esptool==([\w.]+)' was not met"


def cause(output: str) -> str:
    """idf.py's own line saying why it stopped: the last error-like line, else the last line
    that is not its version banner or diagnostics."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    meaningful = [line for line in lines if not re.match(_NOISE, line)]
    for pattern in _CAUSES:
        found = [line for line in meaningful if re.search(pattern, line)]
        if found:
            return found[-1]
    return (meaningful or lines or ["no output"])[-1]


def _advice(line: str) -> str:
    """The next step after idf.py's own line, where the line alone does not say it."""
    esptool = re.search(_ESPTOOL_NOT_MET, line)
    if esptool:
        ours = _own_esptool()
        return (
            f"; ESP-IDF's Python environment needs esptool {esptool.group(1)}, esp-ota-doit "
            f"needs {ours}: restore it ($IDF_PYTHON_ENV_PATH/bin/pip install "
            f"esptool=={esptool.group(1)}) and install esp-ota-doit in a venv of its own "
            '(README, "Real builds")'
        )
    # Not exported (No module named ..., "ESP-IDF shell"), or another cause: the same two ways on.
    return f"; {_CANNOT_RUN_HINT}"


def _own_esptool() -> str:
    import importlib.metadata

    try:
        return f"esptool {importlib.metadata.version('esptool')}"
    except importlib.metadata.PackageNotFoundError:
        return "esptool 5"


@functools.lru_cache(maxsize=4)
def _version_of(command: tuple[str, ...], python_env: str | None = None) -> str:
    idf = IdfTool(command=command, version="", python_env=python_env)
    from .. import process  # run only when a build looks for its idf.py (bench/noop.py)

    done = process.capture([*command, "--version"], env=idf.environment(os.environ))
    found = re.search(r"v(\d+\.\d+(?:\.\d+)?)", done.stdout)
    if done.returncode != 0 or not found:
        line = cause(done.stderr + "\n" + done.stdout)
        raise ToolError(
            f"`idf.py --version` failed (exit {done.returncode}): {line}{_advice(line)}"
        )
    return found.group(1)


def available(env: Mapping[str, str]) -> bool:
    """Whether this machine has an idf.py to run (its version is checked when it runs)."""
    return _idf_script(env) is not None


def find_idf(env: Mapping[str, str], want: str) -> IdfTool:
    """idf.py on PATH or $IDF_PATH/tools/idf.py, checked against project.yaml's idf.version.

    The version is the one `idf.py --version` gives: the program that builds (a stand-in
    included) says which ESP-IDF it is, and running it shows that it can run here.

    Raises:
        ToolError: no ESP-IDF, or another version than `want` (major.minor).
    """
    script = _idf_script(env)
    if script is None:
        raise ToolError(
            "ESP-IDF not found: no idf.py on PATH and no $IDF_PATH/tools/idf.py; " + _hint(want)
        )
    python = idf_python(env)
    if python is not None:
        # export.sh's interpreter, not the first `python` on PATH (idf.py's shebang)
        command: tuple[str, ...] = (str(python), script)
    else:
        on_path = script == shutil.which("idf.py", path=env.get("PATH"))
        command = (script,) if on_path else (sys.executable, script)
    python_env = env.get("IDF_PYTHON_ENV_PATH") if python is not None else None
    version = _version_of(command, python_env)
    if not (version + ".").startswith(want + "."):
        raise ToolError(
            f"idf.py is ESP-IDF v{version} but project.yaml asks for {want} (idf.version); "
            + _hint(want)
        )
    return IdfTool(command=command, version=version, python_env=python_env)
