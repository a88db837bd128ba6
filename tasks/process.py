"""The one gate for child processes (after nox's command.py): every program this project starts
(idf.py, kconfgen, git, nginx, esp-idf-monitor) goes through here.

Each call logs the exact command (`$ ...`) unless it is a quiet query, runs the child in its own
process group with the given environment and umask, and on Ctrl-C or a failure of ours passes the
interrupt to the whole group, then terminates, then kills it (`stop`).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from .errors import ToolError

__all__ = ["Captured", "Child", "capture", "interactive", "run", "start", "stop"]

# A long-running helper from `start`; as text, so importing this module (which planners do only
# when a child is about to start) reads nothing of subprocess.
Child: TypeAlias = "subprocess.Popen[bytes]"
_TAIL_LINES = 20
# Interrupt first (idf.py and ninja clean up), then terminate, then kill.
_ESCALATION = ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0))


@dataclass(frozen=True, slots=True)
class Captured:
    """A quiet query's result."""

    returncode: int
    stdout: str
    stderr: str


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    return dict(os.environ if env is None else env)


def _announce(command: Sequence[str]) -> None:
    print("$ " + shlex.join(command), flush=True)


def _not_started(command: Sequence[str], error: OSError) -> ToolError:
    return ToolError(f"{command[0]} could not be started ({error.strerror or error})")


def stop(child: subprocess.Popen[str] | subprocess.Popen[bytes], *, first: int = 0) -> None:
    """Stop a child started here and everything in its process group: SIGINT, SIGTERM, SIGKILL
    (from `first` on, e.g. 1 to start at SIGTERM), each with a grace period."""
    for sig, grace in _ESCALATION[first:]:
        try:
            os.killpg(child.pid, sig)
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _piped(
    command: Sequence[str],
    *,
    merged: bool,
    env: Mapping[str, str],
    cwd: Path | None,
    umask: int,
) -> subprocess.Popen[str]:
    """A child in its own process group whose output we read as text (stderr into stdout when
    `merged`); umask -1 keeps ours."""
    try:
        return subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
            text=True,
            errors="replace",
            umask=umask,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as error:
        raise _not_started(command, error) from None


def run(
    command: Sequence[str],
    *,
    what: str,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    umask: int = 0o077,
    echo: bool = True,
) -> None:
    """Run a build step with its output streamed live (and kept in `log`, after the command
    line); with echo off, they go to `log` only.

    Raises:
        ToolError: it could not start, or exit code ≠ 0; with the last lines and the log path.
    """
    if echo:
        _announce(command)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    environment = {**_environment(env), "PYTHONUNBUFFERED": "1"}
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with open(log if log is not None else os.devnull, "w", encoding="utf-8") as log_file:
        log_file.write("$ " + shlex.join(command) + "\n")
        child = _piped(command, merged=True, env=environment, cwd=cwd, umask=umask)
        try:
            assert child.stdout is not None
            for line in child.stdout:
                if echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                log_file.write(line)
                tail.append(line.rstrip("\n"))
            code = child.wait()
        except BaseException:
            stop(child)
            raise
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        where = f"\nfull log: {log}" if log is not None else ""
        raise ToolError(
            f"{what} failed (exit {code}): {last}\n" + "\n".join(tail) + where,
            returncode=code,
            tail="\n".join(tail),
        )


def capture(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Captured:
    """A quiet query (a version, git describe, kconfgen): output kept, not shown.

    Raises:
        ToolError: it could not start, or did not finish within `timeout` seconds.
    """
    child = _piped(command, merged=False, env=_environment(env), cwd=cwd, umask=-1)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(child, first=1)
        raise ToolError(f"{command[0]} did not finish within {timeout:g} s") from None
    except BaseException:
        stop(child)
        raise
    return Captured(child.returncode, out, err)


def interactive(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    umask: int = 0o077,
) -> int:
    """A program the user talks to (menuconfig, the monitor): the terminal is its own; Ctrl-C
    goes to it (same process group), and its exit code comes back."""
    _announce(command)
    try:
        child = subprocess.Popen(list(command), env=_environment(env), cwd=cwd, umask=umask)
    except OSError as error:
        raise _not_started(command, error) from None
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue  # the child got the same Ctrl-C and decides itself when to end


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when this process dies, even by kill -9."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def start(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """A long-running helper (nginx in the foreground): its own process group, killed when this
    process dies; stop it with `stop`.

    Raises:
        ToolError: it could not be started.
    """
    _announce(command)
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    try:
        return subprocess.Popen(
            list(command),
            env=_environment(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,  # only a prctl call: safe in the forked child
        )
    except OSError as error:
        raise _not_started(command, error) from None
