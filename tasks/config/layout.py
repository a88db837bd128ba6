"""project.yaml's partitions.layout, read into PartitionSpec rows: an ESP-IDF preset name, a list
of {name, type, subtype, offset?, size, flags?} written in gen_esp32part's field syntax, or the
path of an ESP-IDF partition CSV (read by the model, which knows the project folder).
"""

from __future__ import annotations

from ..errors import ConfigError, KeyPath
from ..idf import releases
from ..idf.partition import rules
from ..idf.partition.rules import PartitionSpec
from . import schema

# gen_esp32part's field syntax (formats) is read only for a list layout, so it is imported there:
# a preset costs a no-op run nothing more (bench/noop.py).

__all__ = ["layout_value", "rows_for_release", "spec_from_mapping"]

_ROW_KEYS = ("name", "type", "subtype", "offset", "size", "flags")


def layout_value(value: object, path: KeyPath) -> tuple[str, tuple[PartitionSpec, ...]]:
    """(preset name, "custom" or the CSV path, rows); every bad row is reported, not just the first.

    A CSV path comes back with no rows: its file is read when the table is placed. A row with
    a type or subtype keyword of no release is left out here: the loader reads the rows again
    with idf.version's keywords, which also names the keywords of that release.
    """
    if isinstance(value, str) and value.strip().lower().endswith(".csv"):
        return schema.relative_file(value.strip(), path), ()
    if isinstance(value, str):
        name = schema.one_of(*rules.PRESET_NAMES, "<file>.csv")(value, path)
        return name, rules.preset(name)
    if not isinstance(value, list) or not value:
        raise ConfigError(
            path, f"expected a preset name or a list of partitions, got {schema.shown(value)}"
        )
    from ..idf.partition import formats

    rows: list[PartitionSpec] = []
    errors: list[ConfigError] = []
    for index, row in enumerate(value):
        try:
            rows.append(spec_from_mapping(row, (*path, index)))
        except formats.KeywordError:
            continue  # the loader reads the rows again with idf.version's keywords
        except ConfigError as error:
            errors.append(error)
        except schema.Invalid as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise schema.Invalid(errors)
    return "custom", tuple(rows)


def _number(value: object, path: KeyPath) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(
            path, f"expected a size like 0x10000, 64K or 1M, got {schema.shown(value)}"
        )
    from ..idf.partition import formats

    try:
        return formats.parse_number(value)
    except ValueError:
        raise ConfigError(
            path, f"expected a size like 0x10000, 64K or 1M, got {schema.shown(value)}"
        ) from None


def rows_for_release(value: object, path: KeyPath, release: str) -> tuple[PartitionSpec, ...]:
    """A list layout read again with the keywords `release`'s gen_esp32part knows: the schema
    pass reads it with every release's keywords, before idf.version is known."""
    if not isinstance(value, list):
        return ()
    rows, errors = [], []
    for index, row in enumerate(value):
        try:
            rows.append(spec_from_mapping(row, (*path, index), release=release))
        except ConfigError as error:
            errors.append(error)
    if errors:
        raise schema.Invalid(errors)
    return tuple(rows)


def spec_from_mapping(
    value: object, path: KeyPath, *, release: str = releases.VERSIONS[-1]
) -> PartitionSpec:  # the newest release knows every keyword
    """One {name, type, subtype, offset?, size, flags?} row; offset absent means automatic.
    Type and subtype keywords are those of `release` (by default the newest: every keyword)."""
    data = schema.mapping(value, path, what="a partition {name, type, subtype, size}")
    errors = schema.key_errors(data, path, dict.fromkeys(_ROW_KEYS, ""), ("name", "type", "size"))
    if errors:
        raise schema.Invalid(errors)
    from ..idf.partition import formats

    type_ = formats.parse_type(data["type"], (*path, "type"), release=release)
    offset = data.get("offset")
    encrypted, readonly = formats.parse_flags(data.get("flags"), (*path, "flags"))
    return PartitionSpec(
        name=schema.string(data["name"], (*path, "name")),
        type=type_,
        subtype=formats.parse_subtype(
            type_, data.get("subtype"), (*path, "subtype"), release=release
        ),
        offset=None if offset is None else _number(offset, (*path, "offset")),
        size=_number(data["size"], (*path, "size")),
        encrypted=encrypted,
        readonly=readonly,
    )
