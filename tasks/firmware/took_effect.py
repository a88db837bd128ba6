"""After the build: did every option project.yaml asked for take effect? ESP-IDF only warns about
unknown options and silently drops values whose dependency is off or that do not fit; this names
each one and its cause, from what the build's configure step wrote (config/sdkconfig.json,
config/kconfig_menus.json, config.env's sdkconfig.rename files).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import warn
from ..idf import app_folder
from ..idf.kconfig.sdkconfig import json_value
from ..idf.kconfig.symbols import (
    AppKconfig,
    app_kconfig,
    dependency_problem,
    type_problem,
    typed,
    unknown_hint,
)
from .defaults import PROJECT_WIDE

__all__ = ["minimal_build", "unmet"]

_GENERIC = "a dependency is not met or the value is out of range"


def minimal_build(project_dir: Path) -> bool:
    """idf_build_set_property(MINIMAL_BUILD ON) in the app (ESP-IDF v5.5+ examples)."""
    try:
        return app_folder.read_app(project_dir).minimal_build
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def _cause(kconfig: AppKconfig, name: str, value: str, *, secret: bool) -> str | None:
    """Why `name` does not hold `value`, from the app's Kconfig, as a phrase that follows the
    option's name; None when the Kconfig cannot tell."""
    symbol = kconfig.symbol(name)
    if symbol is None:
        return f"is not an option of this app; {unknown_hint(kconfig, name)}"
    wanted = json_value(value)
    problem = type_problem(wanted, symbol, name)
    if problem is not None:
        return "does not fit its type or range" if secret else f"does not fit: {problem[0]}"
    error = dependency_problem(kconfig, name, typed(wanted, symbol) or "", ())
    if error is None:
        return None
    if secret and " stays " in error.message:
        return "is a different value: another option selects or overrides it"
    return error.message.removeprefix(f"{name} ")


def _renamed(name: str, renames: Mapping[str, str]) -> tuple[str, bool]:
    """(the name the build knows `name` by, whether a bool is inverted)."""
    new = renames.get(name)
    if new is None:
        return name, False
    return new.removeprefix("!"), new.startswith("!")


def unmet(
    options: Sequence[tuple[str, str, str]],
    config_json: Mapping[str, object],
    *,
    secret_options: Sequence[str] = (),
    written: Mapping[str, str] | None = None,
    menus: list[Any] | None = None,
    renames: Mapping[str, str] | None = None,
    target: str = "",
    minimal_build: bool = False,
) -> list[str]:
    """Each (name, sdkconfig value, where from) that the built configuration does not have,
    with its cause when the build's Kconfig (kconfig_menus.json) tells it.

    A project-wide option that a MINIMAL_BUILD app's build does not know is skipped with a
    warning: that app's components (ESP-IDF v5.5+ examples) do not include the one defining it.
    """
    kconfig = None
    if menus is not None:
        kconfig = app_kconfig(
            release="", target=target, menus=menus, values=config_json, renames=renames or {}
        )
    problems: list[str] = []
    for name, value, origin in options:
        new, inverted = _renamed(name, renames or {})
        wanted = json_value(value)
        if inverted and isinstance(wanted, bool):
            wanted, value = not wanted, ("n" if wanted else "y")
        key = new.removeprefix("CONFIG_")
        secret = name in secret_options
        head = f"{name} (from {origin})" + (f", renamed {new}," if new != name else "")
        if key in config_json and config_json[key] == wanted:
            continue
        if key not in config_json:
            # A renamed option is kept under its old name in the "Deprecated options" section.
            if written is not None and written.get(name) == value:
                continue
            if wanted is False and (kconfig is None or kconfig.symbol(new) is not None):
                continue  # an unset bool whose dependency is off is still unset
        if minimal_build and origin == PROJECT_WIDE and kconfig and not kconfig.symbol(new):
            warn(f"{name} (from {origin}) is not an option of this MINIMAL_BUILD app: skipped")
            continue
        cause = _cause(kconfig, new, value, secret=secret) if kconfig is not None else None
        if cause is not None:
            problems.append(f"{head} {cause}")
        elif key not in config_json:
            problems.append(f"{head} is not an option of this app")
        else:
            shown = "a different value" if secret else json.dumps(config_json[key])
            asked = "" if secret else f" not {value}"
            problems.append(f"{head} is {shown}{asked}: {_GENERIC}")
    return problems
