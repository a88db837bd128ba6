"""project.yaml as plain data plus a SourceMap (key path -> line:column), with ${VAR} expanded.

PyYAML composes nodes (which keep their marks); we construct plain values ourselves so that
duplicate keys are errors and every value's position is remembered in a side table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from ..errors import ConfigError, ConfigErrors, KeyPath, Location
from ..idf.kconfig.symbols import HexInt

__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "MAX_VALUES", "SourceMap", "parse"]

# A real project.yaml has a few hundred values, nests 5 deep and has short numbers. The limits
# stop alias bombs (exponential expansion), RecursionError and int() of 5000 digits early.
MAX_VALUES = 20_000
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Refused(Exception):
    """Input past a limit: reported as one line at `node`, and parsing stops."""

    def __init__(self, node: yaml.Node | yaml.Event, message: str) -> None:
        self.mark = node.start_mark
        self.message = message


# ${VAR} or ${VAR:-default}; `$${` stays a literal `${`.
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


@dataclass(slots=True)
class SourceMap:
    """Where each key and value stands; paths are tuples like ('apps', 'x', 'path')."""

    file: str
    values: dict[KeyPath, Location] = field(default_factory=dict)
    keys: dict[KeyPath, Location] = field(default_factory=dict)
    # Paths whose value came from the environment, with the text as written (shown instead of it).
    expanded: dict[KeyPath, str] = field(default_factory=dict)

    def locate(self, path: KeyPath, *, at_key: bool = False) -> Location:
        """The closest known place for `path`: its key or value, else its nearest ancestor's."""
        table = self.keys if at_key else self.values
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Location(self.file, 1, 1))

    def format(self, error: ConfigError, *, at_key: bool = False) -> str:
        return f"{self.locate(error.path, at_key=at_key)}: {error.describe()}"


def _location(file: str, node: yaml.Node) -> Location:
    # PyYAML marks are 0-based.
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _expand(text: str, env: Mapping[str, str], path: KeyPath) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise ConfigError(
                path, "unterminated '${' in value", "write ${NAME} or ${NAME:-default}"
            )
        value = env.get(name, "")
        if value:
            return value
        if default is not None:
            return default
        if name in env:
            return ""
        raise ConfigError(
            path,
            f"environment variable {name} is not set",
            f"export {name}=... or write ${{{name}:-default}}",
        )

    return _VARIABLE.sub(substitute, text)


class _Builder:
    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.env = env
        self.map = SourceMap(file)
        self.errors: list[tuple[Location, str]] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0

    def build(self, node: yaml.Node, path: KeyPath) -> object:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Refused(
                node, f"more than {MAX_VALUES} values (aliases expanding?); write the values out"
            )
        self.map.values[path] = _location(self.map.file, node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[object, object]:
        result: dict[object, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _Refused(key_node, "merge keys ('<<') are not supported; write the keys out")
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int) or isinstance(key, bool):
                self._error(key_node, path, "keys must be plain names")
                continue
            child = (*path, key)
            if key in result:
                first = self.map.keys[child]
                self._error(key_node, child, f"duplicate key '{key}' (first at line {first.line})")
                continue
            self.map.keys[child] = _location(self.map.file, key_node)
            result[key] = self.build(value_node, child)
        return result

    def _scalar(self, node: yaml.Node, path: KeyPath) -> object:
        tag = node.tag
        text = str(node.value)
        if tag == "tag:yaml.org,2002:str":
            if "$" not in text:
                return text
            try:
                expanded = _expand(text, self.env, path)
            except ConfigError as error:
                self.errors.append((_location(self.map.file, node), error.describe()))
                return text
            if expanded != text:
                self.map.expanded[path] = text
            return expanded
        if tag in _NUMBER_TAGS and len(text) > MAX_NUMBER_CHARS:
            raise _Refused(
                node,
                f"a number of {len(text)} characters; numbers here have at most "
                f"{MAX_NUMBER_CHARS} (quote it if it is text)",
            )
        if tag == "tag:yaml.org,2002:int" and text.lower().lstrip("+-").startswith("0x"):
            return HexInt(int(text.replace("_", ""), 16))
        return self.constructor.construct_object(node, deep=True)

    def _error(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        self.errors.append((_location(self.map.file, node), ConfigError(path, message).describe()))


# Errors PyYAML finds only after the construct it is scanning: a key with no ':', a quote or a
# flow collection never closed. Where that construct starts is where the mistake is.
_STARTS_AT_FAULT = {
    "while scanning a simple key": "the key on this line has no ':'",
    "while scanning a quoted scalar": "the quote opened here is never closed",
    "while parsing a flow mapping": "the '{' opened here is never closed",
    "while parsing a flow sequence": "the '[' opened here is never closed",
}


def _syntax_error(file: str, error: yaml.MarkedYAMLError) -> str:
    """One line at the token that is wrong, in PyYAML's words plus what they mean."""
    mark, text = error.problem_mark or error.context_mark, error.problem or error.context
    fault = _STARTS_AT_FAULT.get(error.context or "")
    if fault and error.context_mark is not None:
        mark, text = error.context_mark, f"{fault} ({error.problem})"
    where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
    return f"{where}: invalid YAML: {text}"


def parse(text: str, *, file: str, env: Mapping[str, str]) -> tuple[object, SourceMap]:
    """Parse YAML text into plain data (dicts, lists, scalars) and its SourceMap.

    Raises:
        ConfigErrors: invalid YAML, duplicate keys or unset variables, one line each, in file order.
    """
    try:
        node = _compose(text)
    except _Refused as refused:
        raise ConfigErrors([f"{_at(file, refused)}: {refused.message}"]) from None
    except yaml.MarkedYAMLError as error:
        raise ConfigErrors([_syntax_error(file, error)]) from None
    except yaml.YAMLError as error:
        raise ConfigErrors([f"{file}:1:1: invalid YAML: {error}"]) from None
    if node is None:
        raise ConfigErrors([f"{file}:1:1: the file is empty; start from the example project.yaml"])
    builder = _Builder(file, env)
    try:
        data = builder.build(node, ())
    except _Refused as refused:
        raise ConfigErrors([f"{_at(file, refused)}: {refused.message}"]) from None
    if builder.errors:
        ordered = sorted(builder.errors, key=lambda item: (item[0].line, item[0].column))
        raise ConfigErrors(f"{where}: {message}" for where, message in ordered)
    return data, builder.map


def _at(file: str, refused: _Refused) -> Location:
    mark = refused.mark
    return Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)


# libyaml, where PyYAML has it, parses in a fraction of the pure-Python parser's time (every doit
# command loads project.yaml); a text it refuses is parsed again by PyYAML, whose words we print.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _compose(text: str) -> yaml.Node | None:
    if _FAST_LOADER is not None:
        try:
            _check_depth(text, _FAST_LOADER)
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    _check_depth(text, yaml.SafeLoader)
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _check_depth(text: str, loader: type[yaml.SafeLoader]) -> None:
    """PyYAML composes recursively: refuse deep nesting from the (flat) event stream first."""
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(event, f"nested more than {MAX_DEPTH} levels deep; flatten it")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
