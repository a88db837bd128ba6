"""idf.py as an external program: finding it and checking which ESP-IDF it is. It runs through
the one process gate (process.run), like every child of this project.
"""

from __future__ import annotations

import functools
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import process
from ..errors import ToolError
from . import releases

__all__ = ["IdfTool", "available", "find_idf", "idf_path"]

_TAIL_LINES = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class IdfTool:
    """How to run idf.py here, and which ESP-IDF it is."""

    command: tuple[str, ...]
    version: str  # "5.3.2"
    synthetic: bool = False  # the stand-in: its images verify but hold no program


def idf_path(env: Mapping[str, str]) -> Path | None:
    """The ESP-IDF tree: $IDF_PATH, else the folder above the idf.py found on PATH."""
    if env.get("IDF_PATH"):
        return Path(env["IDF_PATH"])
    found = shutil.which("idf.py", path=env.get("PATH"))
    return Path(found).resolve().parent.parent if found else None


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


@functools.lru_cache(maxsize=4)
def _version_of(command: tuple[str, ...]) -> str:
    done = process.capture([*command, "--version"])
    found = re.search(r"v(\d+\.\d+(?:\.\d+)?)", done.stdout)
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ToolError(f"`idf.py --version` failed (exit {done.returncode}): {tail[0]}")
    return found.group(1)


def available(env: Mapping[str, str]) -> bool:
    """Whether this machine has an idf.py to run (its version is checked when it runs)."""
    if shutil.which("idf.py", path=env.get("PATH")):
        return True
    return bool(env.get("IDF_PATH")) and (Path(env["IDF_PATH"]) / "tools" / "idf.py").is_file()


def find_idf(env: Mapping[str, str], want: str) -> IdfTool:
    """idf.py on PATH or $IDF_PATH/tools/idf.py, checked against project.yaml's idf.version.

    Raises:
        ToolError: no ESP-IDF, or another version than `want` (major.minor).
    """
    on_path = shutil.which("idf.py", path=env.get("PATH"))
    if on_path:
        command: tuple[str, ...] = (on_path,)
    elif env.get("IDF_PATH") and (Path(env["IDF_PATH"]) / "tools" / "idf.py").is_file():
        command = (sys.executable, str(Path(env["IDF_PATH"]) / "tools" / "idf.py"))
    else:
        raise ToolError(
            "ESP-IDF not found: no idf.py on PATH and no $IDF_PATH/tools/idf.py; " + _hint(want)
        )
    try:
        version = _version_of(command)
    except ToolError as error:
        raise ToolError(f"{str(error).rstrip('.')}; {_CANNOT_RUN_HINT}") from None
    if not (version + ".").startswith(want + "."):
        raise ToolError(
            f"idf.py is ESP-IDF v{version} but project.yaml asks for {want} (idf.version); "
            + _hint(want)
        )
    return IdfTool(command=command, version=version)
