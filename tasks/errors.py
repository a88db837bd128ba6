"""Errors for people: who is at fault, where, and what to do next.

A ConfigError carries a key path into project.yaml; the loader turns it into `file:line:col`.
A ToolError or DeviceError is a run-time failure that graph.py returns as a doit TaskFailed.
Anything else that escapes is a bug in this project and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "DeviceError",
    "KeyPath",
    "Location",
    "ProjectError",
    "ToolError",
    "clip",
    "format_path",
    "warn",
]

KeyPath = tuple[str | int, ...]


SHOWN_CHARS = 80


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """At most `limit` characters of a value for a message: a 50 MB value gives a short line."""
    # Control characters are spelled out, so a message stays one line.
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return shown if len(text) <= limit else f"{shown[: limit - 1]}… ({len(text)} characters)"


def format_path(path: KeyPath) -> str:
    """`("partitions", "layout", 3, "size")` -> `partitions.layout[3].size`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a file, both numbers 1-based as compilers print them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ProjectError(Exception):
    """Base of every error this project reports to a person (never a bug)."""


class ConfigError(ProjectError):
    """A problem in project.yaml at a key path; `hint` says how to fix it."""

    def __init__(self, path: KeyPath, message: str, hint: str = "") -> None:
        self.path = path
        self.message = message
        self.hint = hint
        super().__init__(self.describe())

    def describe(self) -> str:
        """`key.path: problem; fix`, without the file location."""
        text = f"{format_path(self.path)}: {self.message}" if self.path else self.message
        return f"{text}; {self.hint}" if self.hint else text


class ConfigErrors(ProjectError):
    """Several independent config errors, already formatted one per line in file order."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = tuple(lines)
        super().__init__("\n".join(self.lines))


class ToolError(ProjectError):
    """An external program (idf.py, openssl, nginx) failed; carries exit code and output tail."""

    def __init__(self, message: str, *, returncode: int | None = None, tail: str = "") -> None:
        self.returncode = returncode
        self.tail = tail
        super().__init__(message)


class DeviceError(ProjectError):
    """A board or serial port did not do what was asked; probably the connection, not this tool."""


def warn(message: str) -> None:
    """One warning line on stderr, in the same format as errors."""
    print(f"warning: {message}", file=sys.stderr)
