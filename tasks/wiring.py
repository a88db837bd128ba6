"""What every doit task here shares: project.yaml loaded once per run under the project's lock,
the fingerprint, the check of each task's targets against what it last recorded, edge errors
turned into doit's TaskFailed, and the checks of command-line values. graph.py wires the tasks.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from doit.exceptions import InvalidDodoFile, TaskFailed
from doit.tools import config_changed

from . import __version__
from .config import hosts, loader, schema
from .config.model import Project
from .errors import ConfigError, ConfigErrors, ProjectError, warn
from .idf import idftool
from .paths import Paths

__all__ = [
    "PORT_OPTION",
    "baud_option",
    "fingerprint",
    "load_project",
    "planning",
    "project_text",
    "recorded",
    "rehearsal_asked",
    "release_lock",
    "run",
    "slot_option",
    "standin_requested",
]


def _static_host(env: dict[str, str], host: str) -> str:
    """What project.yaml or $OTA_HOST names; `auto` stays `auto` for the host task to find (a
    probe of this machine's routes is no loading's business)."""
    return hosts.static_host(host, env) or hosts.AUTO


@functools.lru_cache(maxsize=4)
def _load(root: str, text: str, env_items: tuple[tuple[str, str], ...]) -> Project:
    # What needs ESP-IDF's tools (each app's Kconfig through kconfgen) is the kconfig task's
    # work, not loading's: `doit list` starts no child process (docs/architecture.md).
    env = dict(env_items)
    return loader.load(
        text,
        file="project.yaml",
        env=env,
        resolve_host=functools.partial(_static_host, env),
        project_dir=Path(root),
        idf_root=idftool.idf_path(env),
    )


# Project folder -> the descriptor holding its lock, for the rest of this process.
_LOCKS: dict[Path, int] = {}
# Project folder -> project.yaml as read once the lock was ours: every task of a run plans from
# the same text, the one there when the run started working (not before it waited, and not an
# edit made while it runs).
_TEXTS: dict[Path, str] = {}


# doit's commands that only read the task list: they never wait for (or take) the lock, so
# `doit list` answers at once while a build runs. Everything else (run, clean, forget, ignore,
# reset-dep, strace, auto) writes targets or doit's records and takes it.
_READ_ONLY_COMMANDS = frozenset({"list", "help", "info", "tabcompletion"})


def _doit_command() -> tuple[str, list[str]] | None:
    """The doit command loading the tasks and its positional arguments; None outside doit.

    doit hands the command to its task loader (`TaskLoader2.load_tasks(cmd, pos_args)`), not to
    the task creators: it is found on the stack.
    """
    from doit.cmd_base import Command

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "load_tasks":
            command = frame.f_locals.get("cmd")
            if isinstance(command, Command):
                args = frame.f_locals.get("pos_args") or []
                return command.get_name(), [str(arg) for arg in args]
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _reading_only() -> bool:
    """Whether the doit command loading the tasks only reads them. Outside doit (the console
    script, a test), the caller plans to act, so the answer is no."""
    command = _doit_command()
    return command is not None and command[0] in _READ_ONLY_COMMANDS


def rehearsal_asked() -> bool:
    """Whether this doit command may run or show the rehearsal's tasks: every command but `run`
    does, and so does a run that names no task (the default ones), a rehearse one or a pattern.
    `doit build` does not, so it does not plan the rehearsal (bench/noop.py)."""
    command = _doit_command()
    if command is None or command[0] != "run" or not command[1]:
        return True
    return any("rehearse" in arg or any(c in arg for c in "*?[") for arg in command[1])


def _lock(root: Path) -> None:
    """One doit run per project at a time: a second one waits (and says so) instead of racing.

    The lock is flock on the project folder itself: nothing is written, and an editor that
    replaces project.yaml does not split it. doit serve and doit monitor give it up once they
    run (see release_lock); everything else holds it until the process exits.
    """
    import fcntl

    if root in _LOCKS or not root.is_dir():
        return
    handle = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        warn(f"waiting for another doit run in {root} to finish")
        fcntl.flock(handle, fcntl.LOCK_EX)
    _LOCKS[root] = handle


def standin_requested(argv: Sequence[str] | None = None) -> bool:
    """Whether this doit command line asks `rehearse --standin`. It decides which tasks exist
    (the stand-in's builds under build/virtual/), so it is read while loading, before doit
    parses the task's own options."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "rehearse" in args and "--standin" in args[args.index("rehearse") + 1 :]


def release_lock() -> None:
    """Let other doit runs in this project go ahead (long-lived commands; tests between runs)."""
    _TEXTS.clear()
    while _LOCKS:
        _, handle = _LOCKS.popitem()
        os.close(handle)


# A project.yaml is a few KiB; a larger one (a pasted log, generated junk) would take YAML
# seconds to minutes and hundreds of MB to parse: refused before it is read.
MAX_PROJECT_YAML = 1024 * 1024


def _read_project_yaml(root: Path) -> str:
    path = Paths(root).project_yaml
    if path.exists() and not path.is_file():  # a FIFO would block the read forever
        raise InvalidDodoFile("project.yaml: is not a regular file; it must be the YAML file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PROJECT_YAML + 1)
            if len(data) > MAX_PROJECT_YAML:
                size = os.fstat(handle.fileno()).st_size
                raise InvalidDodoFile(
                    f"project.yaml: {size / 1024 / 1024:.1f} MiB is over the 1 MiB a project.yaml "
                    "may be; it holds settings only (keep logs and data elsewhere)"
                )
        return data.decode("utf-8")
    except FileNotFoundError:
        raise InvalidDodoFile(
            f"project.yaml: not found in {root}; run doit from the folder that holds it"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidDodoFile(f"project.yaml: cannot be read ({error})") from None


def project_text(root: Path) -> str:
    """project.yaml as this run plans from it: read once, after the lock is ours when the run
    acts (not before it waited); `doit list`, `help` and `info` read it without the lock."""
    if root not in _LOCKS and not _reading_only():
        _lock(root)
        _TEXTS.pop(root, None)  # a text read before the lock was ours is not this run's
    text = _TEXTS.get(root)
    if text is None:
        text = _TEXTS[root] = _read_project_yaml(root)
    return text


def load_project() -> Project:
    """Read ./project.yaml once per process; a bad file becomes doit's one-line ERROR, exit 3."""
    root = Path.cwd()
    text = project_text(root)
    try:
        return _load(str(root), text, tuple(sorted(os.environ.items())))
    except ConfigErrors as errors:
        raise InvalidDodoFile(str(errors)) from None


def run(action: Callable[..., object], *args: object) -> TaskFailed | None:
    """Call an edge action; a ProjectError is a clean task failure, anything else a bug."""
    try:
        action(*args)
    except ProjectError as error:
        return TaskFailed(str(error))
    return None


@contextmanager
def planning() -> Iterator[None]:
    """A planner's ConfigError (e.g. from $OTA_CA_CERT) becomes doit's one-line ERROR, exit 3."""
    try:
        yield
    except ConfigError as error:
        raise InvalidDodoFile(error.describe()) from None


def fingerprint(payload: Mapping[str, object]) -> config_changed:
    # The package version is part of every payload: an upgrade re-renders.
    return config_changed({**payload, "esp_ota_doit": __version__})


_RECORD = "targets_sha256"


def _digests(targets: list[Path]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for target in targets:
        try:
            found[str(target)] = hashlib.sha256(Path(target).read_bytes()).hexdigest()
        except OSError:
            found[str(target)] = None
    return found


def _record_targets(
    targets: list[Path], listed: tuple[Callable[..., list[Path]], list[Any]] | None = None
) -> dict[str, object]:
    """Runs last in the task: doit saves the returned dict with the task's success. `listed`
    names targets only the run knows (the images flasher_args.json names)."""
    more = listed[0](*listed[1]) if listed is not None else []
    return {_RECORD: _digests(list(dict.fromkeys([*map(Path, targets), *more])))}


def _targets_as_recorded(task: Any, values: Mapping[str, object]) -> bool:
    """doit stores its record only when a run ends: a run killed after replacing a target leaves
    a target that no record vouches for. Only targets whose bytes the record names are current:
    the SHA-256, never the size or the time (a re-signed image can keep both)."""
    record = values.get(_RECORD)
    if not isinstance(record, dict):
        return False
    names = dict.fromkeys([*map(str, task.targets), *record])
    found = _digests([Path(name) for name in names])
    for name, digest in found.items():
        if digest is not None and record.get(name) not in (None, digest):
            warn(f"{name} changed since {task.name} made it (SHA-256); running it again")
    return record == found


def recorded(
    task: dict[str, Any], listed: tuple[Callable[..., list[Path]], list[Any]] | None = None
) -> dict[str, Any]:
    """`task` with its targets (and the files `listed` names when it runs) checked against the
    digests recorded when it last succeeded."""
    return {
        **task,
        "actions": [*task["actions"], (_record_targets, [list(task["targets"]), listed])],
        "uptodate": [*task.get("uptodate", []), _targets_as_recorded],
    }


def _option_error(option: str, value: str, fix: str) -> InvalidDodoFile:
    """A bad command-line value: doit prints `ERROR: <line>` and exits 3 before any task runs."""
    return InvalidDodoFile(f"{option}: {schema.shown(value)} {fix}")


def port_option(value: str) -> str:
    if not value.strip():
        raise _option_error("--port", value, "is empty; name a serial port like /dev/ttyUSB0")
    return value


def baud_option(value: str) -> int:
    low, high = 9600, 5_000_000
    if not value.strip().isdigit() or len(value) > 9 or not low <= int(value) <= high:
        raise _option_error("--baud", value, f"is not a baud rate; use {low} to {high}")
    return int(value)


def slot_option(value: str) -> str:
    if not value.strip():
        raise _option_error("--slot", value, "is empty; name an app slot (factory, ota_0, ...)")
    return value


PORT_OPTION = {
    "name": "port",
    "long": "port",
    "short": "p",
    "type": port_option,
    "default": None,
    "help": "serial port (default: $ESPPORT, flash.port, or the one board found)",
}
