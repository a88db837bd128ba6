"""idf.py as an external program: finding it, checking its version, and running it.

One gate (like nox's command.py): the exact command is logged, output streams live and is kept,
a failure carries its exit code and last lines, and Ctrl-C reaches the whole process group.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError
from . import releases

__all__ = ["IdfTool", "available", "find_idf", "idf_path", "run_idf"]

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


def _hint(want: str) -> str:
    try:
        container = releases.release(want).container
    except KeyError:
        container = f"espressif/idf:v{want}"
    return _NOT_FOUND_HINT.format(want=want, container=container)


@functools.lru_cache(maxsize=4)
def _version_of(command: tuple[str, ...]) -> str:
    try:
        done = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=120, check=False
        )
    except OSError as error:
        raise ToolError(f"{command[-1]} could not be started ({error.strerror})") from None
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
    version = _version_of(command)
    if not (version + ".").startswith(want + "."):
        raise ToolError(
            f"idf.py is ESP-IDF v{version} but project.yaml asks for {want} (idf.version); "
            + _hint(want)
        )
    return IdfTool(command=command, version=version)


def run_idf(command: Sequence[str], *, log: Path, what: str) -> None:
    """Run idf.py with its output streamed live and kept in `log`; umask 077 (sdkconfig holds
    the Wi-Fi password). Ctrl-C reaches idf.py and its ninja, then escalates.

    Raises:
        ToolError: exit code ≠ 0, with the last lines and the log path.
    """
    print("$ " + " ".join(command), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            umask=0o077,
            env=env,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log_file.write(line)
                tail.append(line.rstrip("\n"))
            code = process.wait()
        except KeyboardInterrupt:
            _stop(process)
            raise
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        raise ToolError(
            f"{what} failed (exit {code}): {last}\n" + "\n".join(tail) + f"\nfull log: {log}",
            returncode=code,
            tail="\n".join(tail),
        )


def _stop(process: subprocess.Popen[str]) -> None:
    """Interrupt the whole process group, then terminate, then kill (ninja has children)."""
    for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
