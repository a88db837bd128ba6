"""C's conditional compilation as an app's sdkconfig.h decides it: `#if`, `#ifdef`, `#ifndef`,
`#elif`, `#else` over CONFIG_ macros (y is 1, n is undefined, numbers as they are), as GCC's
preprocessor reads them. A condition on any other macro is not the configuration's to tell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["active_code", "condition"]

_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_LINE_COMMENT = re.compile(r"//[^\n]*")
_DIRECTIVE = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)", re.M)
_TOKEN = re.compile(r"\s*(defined|\w+|&&|\|\||==|!=|<=|>=|[()!<>+\-*/])")
_UNKNOWN = object()


def _without_comments(text: str) -> str:
    text = _BLOCK_COMMENT.sub(lambda found: "\n" * found.group(0).count("\n"), text)
    return _LINE_COMMENT.sub("", text.replace("\\\n", " \n"))


def _macro(name: str, config: Mapping[str, Any]) -> object:
    """A macro as sdkconfig.h defines it: y -> 1, n -> undefined (0), numbers as they are;
    any macro that is not a CONFIG_ option is unknown here."""
    if not name.startswith("CONFIG_"):
        return int(name, 0) if re.fullmatch(r"\d+|0[xX][0-9a-fA-F]+", name) else _UNKNOWN
    value = config.get(name.removeprefix("CONFIG_"))
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    return value if isinstance(value, int) else 1


def _defined(name: str, config: Mapping[str, Any]) -> object:
    if not name.startswith("CONFIG_"):
        return _UNKNOWN
    value = config.get(name.removeprefix("CONFIG_"))
    return 0 if value is None or value is False else 1


def condition(expression: str, config: Mapping[str, Any]) -> bool | None:
    """An #if expression over CONFIG_ macros: True, False, or None where it names another
    macro (its value is not the configuration's to tell) or is beyond this reading."""
    words = _TOKEN.findall(expression.split("//")[0])
    values: list[object] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "defined":
            name = next((w for w in words[index + 1 : index + 3] if w not in "()"), "")
            values.append(_defined(name, config))
            index += 4 if words[index + 1 : index + 2] == ["("] else 2
            continue
        values.append(_macro(word, config) if re.fullmatch(r"\w+", word) else word)
        index += 1
    if _UNKNOWN in values:
        return None
    try:
        result, rest = _binary(values, 0)
    except (IndexError, ValueError, TypeError, ZeroDivisionError):
        return None
    return bool(result) if not rest else None


# C's binary operators by precedence, loosest first; each maps to its integer result.
_LEVELS: tuple[dict[str, Callable[[int, int], int]], ...] = (
    {"||": lambda a, b: int(bool(a) or bool(b))},
    {"&&": lambda a, b: int(bool(a) and bool(b))},
    {"==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b)},
    {
        "<": lambda a, b: int(a < b),
        ">": lambda a, b: int(a > b),
        "<=": lambda a, b: int(a <= b),
        ">=": lambda a, b: int(a >= b),
    },
    {"+": lambda a, b: a + b, "-": lambda a, b: a - b},
    {"*": lambda a, b: a * b, "/": lambda a, b: a // b},
)


def _binary(tokens: list[object], level: int) -> tuple[int, list[object]]:
    if level == len(_LEVELS):
        return _unary(tokens)
    left, rest = _binary(tokens, level + 1)
    while rest and isinstance(rest[0], str) and rest[0] in _LEVELS[level]:
        operator = _LEVELS[level][rest[0]]
        right, rest = _binary(rest[1:], level + 1)
        left = operator(left, right)
    return left, rest


def _unary(tokens: list[object]) -> tuple[int, list[object]]:
    first, rest = tokens[0], tokens[1:]
    if first == "!":
        value, rest = _unary(rest)
        return int(not value), rest
    if first == "-":
        value, rest = _unary(rest)
        return -value, rest
    if first == "(":
        value, rest = _binary(rest, 0)
        if not rest or rest[0] != ")":
            raise ValueError("unbalanced parenthesis")
        return value, rest[1:]
    if isinstance(first, int):
        return first, rest
    raise ValueError(f"unexpected {first!r}")


def active_code(text: str, config: Mapping[str, Any]) -> tuple[str, str]:
    """(code that is compiled for certain, code whose compilation depends on other macros)."""
    # `#ifndef X` of a macro the same file #defines is an include guard: taken.
    guards = set(_DEFINE.findall(text))
    certain: list[str] = []
    maybe: list[str] = []
    # Each level: (this branch taken: True/False/None, an earlier branch taken: True/False/None)
    stack: list[tuple[bool | None, bool | None]] = []
    for line in _without_comments(text).splitlines():
        found = _DIRECTIVE.match(line)
        if found:
            kind, rest = found.group(1), found.group(2).strip()
            if kind == "ifndef" and rest.split()[:1] and rest.split()[0] in guards:
                stack = [*stack, (True, True)]
            else:
                stack = _directive(stack, kind, rest, config)
            continue
        states = [state for state, _ in stack]
        if all(state is True for state in states):
            certain.append(line)
        elif not any(state is False for state in states):
            maybe.append(line)
    return "\n".join(certain), "\n".join(maybe)


def _directive(
    stack: list[tuple[bool | None, bool | None]], kind: str, rest: str, config: Mapping[str, Any]
) -> list[tuple[bool | None, bool | None]]:
    name = rest.split()[0] if rest.split() else ""
    if kind in ("if", "ifdef", "ifndef"):
        if kind == "if":
            state = condition(rest, config)
        else:
            defined = _defined(name, config)
            state = None if defined is _UNKNOWN else (bool(defined) == (kind == "ifdef"))
        return [*stack, (state, state)]
    if not stack:
        return stack  # an unbalanced #else/#endif: the compiler says so, not us
    _, earlier = stack[-1]
    if kind == "endif":
        return stack[:-1]
    if kind == "else":
        state = None if earlier is None else not earlier
        return [*stack[:-1], (state, True if earlier else earlier)]
    # elif
    if earlier is True:
        return [*stack[:-1], (False, True)]
    state = condition(rest, config)
    if state is False:
        return [*stack[:-1], (False, earlier)]
    if earlier is False:
        return [*stack[:-1], (state, state)]
    return [*stack[:-1], (None, None)]
