"""The `string` options an app's own Kconfig files declare, read from their text the way
kconfiglib (kconfgen's parser, esp-idf-kconfig) reads a `config` entry: its type and prompt in any
order, its first default, help text skipped. For `esp-ota-doit init` and the loader, which need
the app's URL and Wi-Fi options where no ESP-IDF (and so no kconfgen) is at hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .sdkconfig import unquote

__all__ = ["KconfigString", "kconfig_strings"]

_ENTRY = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*(?:#.*)?$")
# Any other line that starts a Kconfig statement ends the entry before it.
_STATEMENT = re.compile(
    r"^\s*(?:choice|endchoice|menu|endmenu|if|endif|comment|mainmenu|[or]*source)\b"
)
_TYPE = re.compile(
    r"^\s*(bool|tristate|string|hex|int)(?:\s+(\"(?:[^\"\\]|\\.)*\")(?:\s+if\s.*)?)?\s*(?:#.*)?$"
)
_DEF_STRING = re.compile(r"^\s*def_string\s+(\"(?:[^\"\\]|\\.)*\")")
_PROMPT = re.compile(r"^\s*prompt\s+(\"(?:[^\"\\]|\\.)*\")")
_DEFAULT = re.compile(r"^\s*default\s+(\"(?:[^\"\\]|\\.)*\"|\S+)")
_HELP = re.compile(r"^(\s*)(?:---)?help(?:---)?\s*$")


@dataclass(frozen=True, slots=True)
class KconfigString:
    """A `string` option of a Kconfig file and its first default (empty when that default is
    another symbol or absent)."""

    name: str  # CONFIG_ included
    prompt: str
    default: str
    file: Path
    line: int


@dataclass(slots=True)
class _Entry:
    """One config entry of a Kconfig file, as read so far."""

    name: str
    line: int
    kind: str | None = None
    prompt: str | None = None
    default: str | None = None


def _entries(text: str) -> list[_Entry]:
    """Every config/menuconfig entry of a Kconfig text with its type, prompt and first default."""
    entries: list[_Entry] = []
    current: _Entry | None = None
    help_indent: int | None = None  # inside help text: the indent of the `help` line
    for number, line in enumerate(text.splitlines(), start=1):
        if help_indent is not None:
            indent = len(line) - len(line.lstrip())
            if not line.strip() or indent > help_indent:
                continue  # Kconfig's help text runs while lines are indented deeper
            help_indent = None
        if found := _ENTRY.match(line):
            current = _Entry(found.group(1), number)
            entries.append(current)
        elif _STATEMENT.match(line):
            current = None
        elif current is not None:
            _attribute(current, line)
            if found := _HELP.match(line):
                help_indent = len(found.group(1))
    return entries


def _attribute(entry: _Entry, line: str) -> None:
    if found := _TYPE.match(line):
        entry.kind = found.group(1)
        if found.group(2) is not None:
            entry.prompt = unquote(found.group(2))
    elif found := _DEF_STRING.match(line):
        entry.kind = "string"
        if entry.default is None:
            entry.default = found.group(1)
    elif found := _PROMPT.match(line):
        entry.prompt = unquote(found.group(1))
    elif (found := _DEFAULT.match(line)) and entry.default is None:
        entry.default = found.group(1)


def kconfig_strings(text: str, file: Path) -> list[KconfigString]:
    """Every `config X` of type string in a Kconfig text that has a prompt, with its first
    default as text (a default naming another symbol reads as empty)."""
    return [
        KconfigString(
            f"CONFIG_{entry.name}",
            entry.prompt,
            unquote(entry.default) if entry.default and entry.default.startswith('"') else "",
            file,
            entry.line,
        )
        for entry in _entries(text)
        if entry.kind == "string" and entry.prompt is not None
    ]
