"""Every CONFIG_ option of project.yaml checked against the Kconfig of the apps it goes to,
before any build: unknown (with did-you-mean), renamed (a warning), wrong type or range, a
dependency that is off. loader.load turns what this yields into project.yaml:L:C: lines.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError, KeyPath
from ..idf.kconfig.symbols import (
    AppKconfig,
    dependency_problem,
    new_name,
    type_problem,
    typed,
    unknown_hint,
)
from .schema import UnknownKeyError

if TYPE_CHECKING:
    from .model import Project, SdkValue

__all__ = ["Finding", "findings"]

# (is a warning, the error): a renamed option still works, so it only warns.
Finding = tuple[bool, ConfigError]


def _where(kconfig: AppKconfig) -> str:
    return f"ESP-IDF {kconfig.release}, target {kconfig.target}"


def _option(
    kconfig: AppKconfig, name: str, value: SdkValue, path: KeyPath, *, owner: str
) -> Iterator[Finding]:
    new, inverted = new_name(kconfig, name)
    if new != name:
        # kconfgen's own note for an old name in a defaults file.
        yield True, UnknownKeyError(path, f"{name} was replaced with {new}", f"write {new}")
        if inverted and isinstance(value, bool):
            value = not value
    symbol = kconfig.symbol(new)
    if symbol is None:
        text = f"{name} is not an option of {owner} ({_where(kconfig)})"
        yield False, UnknownKeyError(path, text, unknown_hint(kconfig, name))
        return
    problem = type_problem(value, symbol, new)
    if problem is not None:
        yield False, ConfigError(path, *problem)
        return
    wanted = typed(value, symbol)
    unmet = dependency_problem(kconfig, new, wanted or "", path)
    if unmet is not None:
        yield False, unmet


def findings(project: Project, kconfigs: Mapping[str, AppKconfig]) -> Iterator[Finding]:
    """What is wrong with project.yaml's sdkconfig: options, app by app; a project-wide option
    goes only to the apps whose Kconfig has it, and must be known to one of them."""
    for app in project.apps:
        kconfig = kconfigs.get(app.name)
        if kconfig is None:
            continue
        for name, value in app.sdkconfig:
            path: KeyPath = ("apps", app.name, "sdkconfig", name)
            yield from _option(kconfig, name, value, path, owner=f"app '{app.name}'")
    if not kconfigs:
        return
    for name, value in project.sdkconfig:
        path = ("sdkconfig", name)
        having = [(owner, k) for owner, k in kconfigs.items() if k.knows(name)]
        if not having:
            first = next(iter(kconfigs.values()))
            yield (
                False,
                UnknownKeyError(
                    path,
                    f"{name} is an option of no app ({_where(first)})",
                    unknown_hint(first, name),
                ),
            )
            continue
        reported: set[str] = set()
        for owner, kconfig in having:
            for finding in _option(kconfig, name, value, path, owner=f"app '{owner}'"):
                text = finding[1].describe()
                if text not in reported:  # the same line once, not once per app
                    reported.add(text)
                    yield finding
