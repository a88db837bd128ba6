"""project.yaml's CONFIG_ values against an app's Kconfig, as ESP-IDF's kconfgen evaluated it
(kconfig_menus.json and sdkconfig.json): typed values, unknown and renamed options, ranges and
dependencies. Pure: kconfig.evaluate runs kconfgen; loader.load reports what this finds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError, KeyPath
from .sdkconfig import HexInt, SdkValue, quote

__all__ = [
    "AppKconfig",
    "HexInt",
    "SdkValue",
    "Symbol",
    "app_kconfig",
    "dependency_problem",
    "new_name",
    "type_problem",
    "typed",
    "unknown_hint",
    "value_of",
]

_TYPES = ("bool", "tristate", "int", "hex", "string")
_CHOICE = r"<choice (\w+)>"  # compiled by re on first use


@dataclass(frozen=True, slots=True, kw_only=True)
class Symbol:
    """One Kconfig symbol: its type, the range in force, whether it has a prompt, what it
    depends on (kconfgen's expression, or the choice's for a choice member)."""

    name: str  # without CONFIG_
    kind: str
    range: tuple[int, int] | None = None
    prompt: bool = False
    depends: str | None = None
    choice: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppKconfig:
    """One app's Kconfig as ESP-IDF `release` configures it for its target."""

    release: str  # "5.3.2"
    target: str
    symbols: Mapping[str, Symbol]
    renames: Mapping[str, str]  # CONFIG_OLD -> CONFIG_NEW (or !CONFIG_NEW: an inverted bool)
    values: Mapping[str, Any]  # sdkconfig.json with project.yaml's options applied

    def symbol(self, option: str) -> Symbol | None:
        name = option.removeprefix("CONFIG_")
        found = self.symbols.get(name)
        if found is None and self.case_insensitive:
            found = next(
                (s for key, s in self.symbols.items() if key.upper() == name.upper()), None
            )
        return found

    @property
    def case_insensitive(self) -> bool:
        """ESP-IDF v6's kconfgen (esp-idf-kconfig 3) matches config names case-insensitively."""
        major = self.release.split(".", 1)[0]
        return major.isdigit() and int(major) >= 6

    def knows(self, option: str) -> bool:
        return self.symbol(new_name(self, option)[0]) is not None


def _walk(nodes: list[Any]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node.get("children") or [])


def app_kconfig(
    *, release: str, target: str, menus: list[Any], values: Mapping[str, Any],
    renames: Mapping[str, str],
) -> AppKconfig:  # fmt: skip
    """The symbols of kconfig_menus.json (a symbol defined twice has a prompt if either has)."""
    choices = {n["name"]: n.get("depends_on") for n in _walk(menus) if n.get("type") == "choice"}
    symbols: dict[str, Symbol] = {}
    for node in _walk(menus):
        name, kind = node.get("name"), node.get("type")
        if not name or kind not in _TYPES:
            continue
        depends = node.get("depends_on")
        choice = re.fullmatch(_CHOICE, depends or "")
        if choice:
            depends = choices.get(choice[1])
        low_high = node.get("range")
        found = Symbol(
            name=name,
            kind=kind,
            range=(int(low_high[0]), int(low_high[1])) if low_high else None,
            prompt=bool(node.get("title")),
            depends=depends,
            choice=choice[1] if choice else None,
        )
        old = symbols.get(name)
        if old is not None and (old.prompt or not found.prompt):
            continue
        symbols[name] = found
    return AppKconfig(
        release=release, target=target, symbols=symbols, renames=dict(renames), values=values
    )


def new_name(kconfig: AppKconfig, option: str) -> tuple[str, bool]:
    """The name ESP-IDF knows `option` by now (sdkconfig.rename), and whether a bool inverts."""
    renamed = kconfig.renames.get(option)
    if renamed is None:
        return option, False
    return renamed.removeprefix("!"), renamed.startswith("!")


def _integer(value: SdkValue, base: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)  # a HexInt prints itself in hex
    text = value.strip()
    try:
        return int(text, 0 if text.lower().startswith("0x") or base == 10 else base)
    except ValueError:
        return None


def typed(value: SdkValue, symbol: Symbol | None) -> str | None:
    """`value` as sdkconfig spells a symbol of this type (None: it does not fit the type).

    Without a symbol (no Kconfig known), the value's own YAML type decides.
    """
    kind = symbol.kind if symbol is not None else _yaml_kind(value)
    if kind in ("bool", "tristate"):
        if isinstance(value, bool):
            return "y" if value else "n"
        return value if value in ("y", "n") or (kind == "tristate" and value == "m") else None
    if kind in ("int", "hex"):
        number = _integer(value, 16 if kind == "hex" else 10)
        if number is None:
            return None
        return hex(number) if kind == "hex" else str(number)
    if isinstance(value, bool):
        return None
    return quote(hex(value) if isinstance(value, HexInt) else str(value))


def _yaml_kind(value: SdkValue) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, HexInt):
        return "hex"
    return "int" if isinstance(value, int) else "string"


_EXAMPLES = {
    "bool": "true or false",
    "tristate": "true or false",
    "int": "a whole number like 1000",
    "hex": "a number like 0x8000",
    "string": 'a quoted string like "text"',
}


def _shown(value: SdkValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return hex(value) if isinstance(value, HexInt) else str(value)


def type_problem(value: SdkValue, symbol: Symbol, option: str) -> tuple[str, str] | None:
    """(problem, fix) when `value` does not fit the symbol's type or range, else None."""
    text = typed(value, symbol)
    if text is None:
        # kconfiglib's own words for an assignment it ignores.
        problem = f"'{_shown(value)}' is not a valid value for the {symbol.kind} symbol "
        return problem + symbol.name, f"write {_EXAMPLES[symbol.kind]}"
    if symbol.range is not None and symbol.kind in ("int", "hex"):
        number = int(text, 16 if symbol.kind == "hex" else 10)
        low, high = symbol.range
        if not low <= number <= high:
            shown = (hex(low), hex(high)) if symbol.kind == "hex" else (str(low), str(high))
            return (
                f"{text} is out of range {shown[0]}..{shown[1]} for {option}",
                f"use a value from {shown[0]} to {shown[1]}",
            )
    return None


def unknown_hint(kconfig: AppKconfig, option: str) -> str:
    import difflib  # for a mistake only: not on every run's import (bench/noop.py)

    close = difflib.get_close_matches(
        option.removeprefix("CONFIG_"), list(kconfig.symbols), n=1, cutoff=0.75
    )
    if close:
        return f"did you mean 'CONFIG_{close[0]}'?"
    return "check the name in idf.py menuconfig (press / to search)"


def value_of(kconfig: AppKconfig, name: str) -> str:
    """A symbol's current value as sdkconfig spells it; n for one that is off or unknown."""
    value = kconfig.values.get(name)
    if value is None or value is False:
        return "n"
    if value is True:
        return "y"
    symbol = kconfig.symbols.get(name)
    if isinstance(value, int) and symbol is not None and symbol.kind == "hex":
        return hex(value)
    return f'"{value}"' if isinstance(value, str) else str(value)


def dependency_problem(
    kconfig: AppKconfig, option: str, wanted: str, path: KeyPath
) -> ConfigError | None:
    """An option set in project.yaml that Kconfig does not give the wanted value: its
    dependency is off (named with the current values), or it has no prompt."""
    symbol = kconfig.symbol(option)
    if symbol is None:
        return None
    got = kconfig.values.get(symbol.name)
    if got is not None and typed(got, symbol) == wanted:
        return None
    if got is None and wanted == "n":
        return None  # an unset bool whose dependency is off is n all the same
    if got is None and symbol.depends:
        names = sorted(set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", symbol.depends)))
        current = ", ".join(f"{name} is {value_of(kconfig, name)}" for name in names)
        return ConfigError(
            path,
            f"{option} depends on {symbol.depends} ({current}), so it is not set",
            "set what it depends on too, or remove it",
        )
    if not symbol.prompt:
        return ConfigError(
            path,
            f"{option} has no prompt: Kconfig computes it and ignores assignments",
            "set the options it follows instead",
        )
    shown = "not set" if got is None else value_of(kconfig, symbol.name)
    return ConfigError(
        path,
        f"{option} stays {shown}: another option selects or overrides it",
        "look up what selects it in idf.py menuconfig (press ? on it)",
    )
