"""A component's CMakeLists.txt read as CMake reads it, far enough to know the arguments of its
idf_component_register(): set() and list(APPEND|PREPEND|REMOVE_ITEM), if()/elseif()/else() over
the sdkconfig's CONFIG_ variables, idf_build_get_property(), and ${VAR} / $ENV{VAR} references
expanded into lists as CMake expands them (an unquoted `${EMBED_TXTFILES}` is every item).

Anything else (functions, loops, generator expressions) is left unevaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["REGISTER_KEYWORDS", "Scope", "component_args", "main_scope"]

REGISTER_KEYWORDS = frozenset(
    {
        "SRCS", "SRC_DIRS", "EXCLUDE_SRCS", "INCLUDE_DIRS", "PRIV_INCLUDE_DIRS", "REQUIRES",
        "PRIV_REQUIRES", "LDFRAGMENTS", "REQUIRED_IDF_TARGETS", "KCONFIG", "KCONFIG_PROJBUILD",
        "EMBED_FILES", "EMBED_TXTFILES", "WHOLE_ARCHIVE",
    }
)  # fmt: skip
# CMake's false constants (if() documentation); anything else non-empty is true.
_FALSE = {"", "0", "OFF", "NO", "FALSE", "N", "IGNORE", "NOTFOUND"}
_TRUE = {"1", "ON", "YES", "TRUE", "Y"}
_COMMAND = re.compile(r"([A-Za-z_]\w*)\s*\(")
_REFERENCE = re.compile(r"\$(ENV)?\{([^${}]*)\}")


@dataclass(slots=True)
class Scope:
    """The variables in force: given ones (the component's directories, CONFIG_ values), build
    properties for idf_build_get_property(), and the environment for $ENV{}."""

    variables: dict[str, str]
    properties: Mapping[str, str] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    keep_unknown: bool = False  # an unset ${VAR} stays as written (reading without a build)

    def expand(self, text: str) -> str:
        """${VAR} and $ENV{VAR} references, innermost first, as CMake resolves nested ones."""
        while True:
            replaced = _REFERENCE.sub(self._value, text)
            if replaced == text:
                return text
            text = replaced

    def _value(self, match: re.Match[str]) -> str:
        source = self.environ if match[1] else self.variables
        return source.get(match[2], match[0] if self.keep_unknown else "")


def _strip_comments(text: str) -> str:
    """CMake's line comments (outside quotes) removed; bracket comments are rare in components."""
    out, quoted = [], False
    for line in text.splitlines():
        kept = []
        for index, char in enumerate(line):
            if char == '"' and (index == 0 or line[index - 1] != "\\"):
                quoted = not quoted
            if char == "#" and not quoted:
                break
            kept.append(char)
        out.append("".join(kept))
    return "\n".join(out)


def _commands(text: str) -> Iterator[tuple[str, str]]:
    """(lower-case command name, raw argument text) in file order, parentheses balanced."""
    position = 0
    while match := _COMMAND.search(text, position):
        depth, index, quoted = 1, match.end(), False
        while index < len(text) and depth:
            char = text[index]
            quoted = not quoted if char == '"' and text[index - 1] != "\\" else quoted
            depth += 0 if quoted else {"(": 1, ")": -1}.get(char, 0)
            index += 1
        yield match[1].lower(), text[match.end() : index - 1]
        position = index


def _arguments(raw: str, scope: Scope) -> list[str]:
    """CMake's argument splitting: a quoted argument is one item; an unquoted one is expanded,
    then split on `;` with empty items dropped."""
    found: list[str] = []
    for token in re.findall(r'"(?:[^"\\]|\\.)*"|[^\s"]+', raw):
        if token.startswith('"'):
            found.append(scope.expand(token[1:-1]))
        else:
            found += [item for item in scope.expand(token).split(";") if item]
    return found


def _truth(word: str, scope: Scope) -> bool:
    upper = word.upper()
    if upper in _TRUE or (re.fullmatch(r"-?\d*\.?\d+", word) and float(word) != 0):
        return True
    if upper in _FALSE or upper.endswith("-NOTFOUND"):
        return False
    value = scope.variables.get(word)  # a bare name is a variable reference in if()
    return value is not None and value.upper() not in _FALSE and not value.endswith("-NOTFOUND")


def _condition(raw: str, scope: Scope) -> bool:
    """if()'s condition: NOT, AND, OR, parentheses, DEFINED, STREQUAL, EQUAL and truth tests."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[()]|[^\s()"]+', raw)
    words = [scope.expand(t[1:-1]) if t.startswith('"') else scope.expand(t) for t in tokens]
    quoted = [t.startswith('"') for t in tokens]
    position = 0

    def operand() -> str:
        nonlocal position
        word, was_quoted = words[position], quoted[position]
        position += 1
        if was_quoted:
            return word
        return scope.variables.get(word, word)

    def primary() -> bool:
        nonlocal position
        if position >= len(words):
            return False
        word = words[position]
        if word == "(" and not quoted[position]:
            position += 1
            value = either()
            position += 1  # the closing parenthesis
            return value
        if word == "NOT":
            position += 1
            return not primary()
        if word == "DEFINED":
            position += 2
            return words[position - 1] in scope.variables
        if position + 1 < len(words) and words[position + 1] in ("STREQUAL", "EQUAL"):
            left = operand()
            operator = words[position]
            position += 1
            right = operand()
            if operator == "STREQUAL":
                return left == right
            numbers = [re.fullmatch(r"\s*(-?\d+)\s*", side) for side in (left, right)]
            return all(numbers) and int(left) == int(right)
        position += 1
        return _truth(word, scope)

    def both() -> bool:
        nonlocal position
        value = primary()
        while position < len(words) and words[position] == "AND":
            position += 1
            value = primary() and value
        return value

    def either() -> bool:
        nonlocal position
        value = both()
        while position < len(words) and words[position] == "OR":
            position += 1
            value = both() or value
        return value

    return either()


def _set(args: list[str], scope: Scope) -> None:
    if args:
        items = [a for a in args[1:] if a != "PARENT_SCOPE"]
        if "CACHE" in items:
            items = items[: items.index("CACHE")]
            if args[0] in scope.variables:  # a normal variable hides the cache entry
                return
        if items:
            scope.variables[args[0]] = ";".join(items)
        else:
            scope.variables.pop(args[0], None)


def _list(args: list[str], scope: Scope) -> None:
    if len(args) < 2:
        return
    operation, name, items = args[0].upper(), args[1], args[2:]
    current = [item for item in scope.variables.get(name, "").split(";") if item]
    if operation == "APPEND":
        current += items
    elif operation == "PREPEND":
        current = items + current
    elif operation == "REMOVE_ITEM":
        current = [item for item in current if item not in items]
    else:
        return
    scope.variables[name] = ";".join(current)


def _property(args: list[str], scope: Scope) -> None:
    if len(args) >= 2:
        scope.variables[args[0]] = scope.properties.get(args[1], "")


_HANDLERS: dict[str, Callable[[list[str], Scope], None]] = {
    "set": _set,
    "list": _list,
    "idf_build_get_property": _property,
}


def _register_args(args: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    key = ""
    for arg in args:
        if arg in REGISTER_KEYWORDS:
            key = arg
            groups.setdefault(key, [])
        elif key:
            groups[key].append(arg)
    return groups


def component_args(text: str, scope: Scope) -> dict[str, list[str]]:
    """The keyword arguments of the first idf_component_register() the file reaches, expanded
    as CMake would with `scope` (which the file's set() and list() calls change)."""
    # Each open if(): (this branch runs, an earlier branch ran, the enclosing block runs).
    blocks: list[tuple[bool, bool, bool]] = []
    for name, raw in _commands(_strip_comments(text)):
        running = not blocks or blocks[-1][0]
        if name == "if":
            taken = running and _condition(raw, scope)
            blocks.append((taken, taken, running))
        elif name in ("elseif", "else") and blocks:
            _, done, outer = blocks[-1]
            taken = outer and not done and (name == "else" or _condition(raw, scope))
            blocks[-1] = (taken, done or taken, outer)
        elif name == "endif" and blocks:
            blocks.pop()
        elif not running:
            continue
        elif name == "idf_component_register":
            return _register_args(_arguments(raw, scope))
        elif name in _HANDLERS:
            _HANDLERS[name](_arguments(raw, scope), scope)
    return {}


def main_scope(
    project: Path,
    *,
    config: Mapping[str, str] = {},
    properties: Mapping[str, str] = {},
    environ: Mapping[str, str] = {},
    keep_unknown: bool = False,
) -> Scope:
    """The scope ESP-IDF's build.cmake gives main/CMakeLists.txt: the component's directories,
    project_dir and CMAKE_SOURCE_DIR, the CONFIG_ values (`config`: name without CONFIG_ ->
    CMake text), and PROJECT_DIR among the build properties."""
    main = str(project / "main")
    variables = {f"CONFIG_{name}": value for name, value in config.items()}
    variables |= {"COMPONENT_NAME": "main", "COMPONENT_DIR": main}
    variables |= {"CMAKE_CURRENT_SOURCE_DIR": main, "CMAKE_CURRENT_LIST_DIR": main}
    variables |= {"project_dir": str(project), "CMAKE_SOURCE_DIR": str(project)}
    known = {"PROJECT_DIR": str(project), **properties}
    return Scope(variables, known, dict(environ), keep_unknown=keep_unknown)
