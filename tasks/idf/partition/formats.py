"""ESP-IDF's two partition table formats, CSV and binary, read and written, and the field syntax
(gen_esp32part's parse_int, type and subtype keywords, flags) that CSV rows and project.yaml share.
"""

from __future__ import annotations

import difflib
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import ConfigError, KeyPath, ProjectError
from .model import (
    APP_TYPE,
    DATA_SUBTYPES,
    DEFAULT_RELEASE,
    FLAGS,
    MAX_TABLE_LENGTH,
    K,
    M,
    Partition,
    PartitionRules,
    PartitionSpec,
    PartitionTable,
    RuleError,
    check_byte,
    keyword,
    rules,
)
from .rules import forced_offset, forced_size, layout

__all__ = [
    "KeywordError",
    "PartitionBinError",
    "PartitionCsvError",
    "csv_rows",
    "from_bin",
    "from_csv",
    "parse_flags",
    "parse_number",
    "parse_subtype",
    "parse_type",
    "row_lines",
    "to_bin",
    "to_csv",
]

_ENTRY = struct.Struct("<2sBBLL16sL")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb"
_END_MARKER = b"\xff" * 32
_CSV_PARSE_TAIL = "Please check extra_partition_subtypes.inc file in build/config directory"


class PartitionCsvError(ProjectError):
    """A partition CSV that gen_esp32part rejects; str() is the tool's own output.

    `line` is the CSV line at fault, `problem` the tool's words for it without the line prefix,
    and `hint` what to do, when this project knows better than the tool.
    """

    def __init__(self, text: str, *, line: int, problem: str, hint: str = "") -> None:
        self.line = line
        self.problem = problem
        self.hint = hint
        super().__init__(text)


class PartitionBinError(ProjectError):
    """A binary partition table that cannot be decoded (or encoded)."""


class KeywordError(RuleError):
    """A type or subtype the release's gen_esp32part has no keyword for: which keywords exist
    depends on the release."""


# --- field parsers --------------------------------------------------------------------------


def _parse_int(text: str, keywords: Mapping[str, int]) -> int:
    """gen_esp32part's parse_int: k/m suffixes stripped first (recursively), int(x, 0), keywords."""
    for suffix, scale in (("k", K), ("m", M)):
        if text.lower().endswith(suffix):
            return _parse_int(text[:-1], keywords) * scale
    try:
        return int(text, 0)  # so '010' is rejected and '0x', '0o', '0b' prefixes work
    except ValueError:
        pass
    if not keywords:
        raise ValueError(f"Invalid field value {text}")
    if text.lower() not in keywords:
        raise ValueError(f"Value '{text}' is not valid. Known keywords: {', '.join(keywords)}")
    return keywords[text.lower()]


def parse_number(value: str | int) -> int:
    """An offset or size as gen_esp32part reads it: int(v, 0) plus k/K and m/M suffixes.

    Raises:
        ValueError: with ESP-IDF's text "Invalid field value <v>".
    """
    if isinstance(value, bool):
        raise ValueError(f"Invalid field value {value}")
    return value if isinstance(value, int) else _parse_int(value, {})


def _keyword_hint(text: str, keywords: Mapping[str, int]) -> str:
    word = text.lower()
    if "ota_0" in keywords and word.startswith("ota_") and word[4:].isdigit():
        return "ESP-IDF supports at most 16 OTA slots (ota_0 … ota_15)"
    close = difflib.get_close_matches(word, keywords, n=1)
    return f"did you mean '{close[0]}'?" if close else ""


def _parse_byte(value: str | int, keywords: Mapping[str, int], path: KeyPath, what: str) -> int:
    try:
        number = parse_number(value) if isinstance(value, int) else _parse_int(value, keywords)
    except ValueError as err:
        raise KeywordError(path, str(err), _keyword_hint(str(value), keywords)) from None
    check_byte(number, path, what)
    return number


def parse_type(value: str | int, path: KeyPath, *, release: str = DEFAULT_RELEASE) -> int:
    """A type keyword of `release` ('app', 'data'; from v5.4 'bootloader', 'partition_table'),
    in any case, or a number 0..0xfe."""
    if value == "":
        raise RuleError(path, "Field 'type' can't be left empty.", "use app, data or a number")
    return _parse_byte(value, rules(release).types, path, "type")


def parse_subtype(
    type_: int, value: str | int | None, path: KeyPath, *, release: str = DEFAULT_RELEASE
) -> int:
    """A subtype keyword of `type_` in `release`, or a number; an empty data subtype means
    'undefined'."""
    if value is None or value == "":
        if type_ == APP_TYPE:
            hint = "use factory, test or ota_0 … ota_15"
            raise RuleError(path, "App partition cannot have an empty subtype", hint)
        return DATA_SUBTYPES["undefined"]  # also for custom types, as gen_esp32part does
    return _parse_byte(value, rules(release).subtypes.get(type_, {}), path, "subtype")


def parse_flags(value: str | list[str] | None, path: KeyPath) -> tuple[bool, bool]:
    """(encrypted, readonly) from 'encrypted:readonly' or a list; empty items are ignored."""
    items = [] if value is None else value.split(":") if isinstance(value, str) else list(value)
    for flag in items:
        if flag and flag not in FLAGS:
            close = difflib.get_close_matches(flag, FLAGS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known flags: encrypted, readonly"
            raise RuleError(path, f"CSV flag column contains unknown flag '{flag}'", hint)
    return "encrypted" in items, "readonly" in items


# --- CSV ------------------------------------------------------------------------------------


def csv_rows(table: PartitionTable) -> list[tuple[str, str, str, str, str, str]]:
    """Each partition as the six CSV fields, with explicit hex offsets and sizes, and the
    keywords the table's release knows (numbers otherwise)."""
    rule, rows = rules(table.release), []
    for p in table.partitions:
        flags = ":".join(
            flag for flag, on in zip(FLAGS, (p.encrypted, p.readonly), strict=True) if on
        )
        type_name = keyword(p.type, rule.types)
        subtype_name = keyword(p.subtype, rule.subtypes.get(p.type, {}))
        rows.append((p.name, type_name, subtype_name, f"0x{p.offset:x}", f"0x{p.size:x}", flags))
    return rows


def to_csv(table: PartitionTable) -> str:
    """ESP-IDF CSV with explicit hex offsets and sizes; from_csv() reads it back unchanged."""
    lines = [f"# Name, Type, SubType, Offset, Size, Flags (table at 0x{table.offset:x})"]
    lines.extend(",".join(row) for row in csv_rows(table))
    return "\n".join(lines) + "\n"


def from_csv(
    text: str,
    *,
    table_offset: int = 0x8000,
    release: str = DEFAULT_RELEASE,
    bootloader_offset: int | None = None,
) -> PartitionTable:
    """Parse and lay out an ESP-IDF partition CSV as gen_esp32part of `release` does, given
    --offset `table_offset` and (v5.5+) --primary-bootloader-offset `bootloader_offset` (no
    $VAR expansion: that would read os.environ).

    Raises:
        PartitionCsvError: whose str() is what gen_esp32part prints for the same input.
    """
    specs: list[PartitionSpec] = []
    line_numbers = row_lines(text)
    lines = text.splitlines()
    rule = rules(release)
    forced = _Forced(rule=rule, table_offset=table_offset, bootloader=bootloader_offset)
    for number in line_numbers:
        try:
            specs.append(_spec_from_csv(lines[number - 1].strip(), (len(specs),), forced))
        except ConfigError as err:
            raise _csv_error(err, number, parsing=True) from None
    try:
        return layout(
            specs,
            table_offset=table_offset,
            path=(),
            release=release,
            bootloader_offset=bootloader_offset,
        )
    except ConfigError as err:
        row = err.path[0] if err.path else 0
        number = line_numbers[row] if isinstance(row, int) and row < len(line_numbers) else 0
        raise _csv_error(err, number, parsing=False) from None


def row_lines(text: str) -> list[int]:
    """The 1-based line number of each row of a partition CSV (blank and # lines are not rows)."""
    return [
        number
        for number, raw in enumerate(text.splitlines(), start=1)
        if raw.strip() and not raw.strip().startswith("#")
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Forced:
    """What decides v5.5+'s forced offsets and sizes: the rules and the tool's two offsets."""

    rule: PartitionRules
    table_offset: int
    bootloader: int | None

    def offset(self, type_: int, subtype: int) -> int | None:
        return forced_offset(type_, subtype, self.rule, self.table_offset, self.bootloader)

    def size(self, type_: int) -> int | None:
        return forced_size(type_, self.rule, self.table_offset, self.bootloader)


def _spec_from_csv(line: str, row: KeyPath, forced: _Forced) -> PartitionSpec:
    fields = [field.strip() for field in line.split(",")] + [""] * 5  # extra fields are ignored
    name, type_text, subtype_text, offset_text, size_text, flags_text = fields[:6]
    release = forced.rule.release
    type_ = parse_type(type_text, (*row, "type"), release=release)
    subtype = parse_subtype(type_, subtype_text, (*row, "subtype"), release=release)
    # v5.5+ ignores what bootloader and partition_table rows say (the examples write N/A).
    offset = forced.offset(type_, subtype)
    if offset is None and offset_text:
        offset = _csv_number(offset_text, (*row, "offset"))
    size = forced.size(type_)
    if size is None and not size_text:
        raise RuleError((*row, "size"), "Size field can't be empty")
    if size is None:
        size = _csv_number(size_text, (*row, "size"))
    encrypted, readonly = parse_flags(flags_text, (*row, "flags"))
    return PartitionSpec(
        name=name,
        type=type_,
        subtype=subtype,
        offset=offset,
        size=size,
        encrypted=encrypted,
        readonly=readonly,
    )


def _csv_number(text: str, path: KeyPath) -> int:
    try:
        return parse_number(text)
    except ValueError as err:
        raise RuleError(path, str(err)) from None


def _csv_error(err: ConfigError, line: int, *, parsing: bool) -> PartitionCsvError:
    if not isinstance(err, RuleError):  # one of our own rules: no ESP-IDF wording exists
        hint = f"; {err.hint}" if err.hint else ""
        text = f"Error at line {line}: {err.message}{hint}"
        return PartitionCsvError(text, line=line, problem=err.message, hint=err.hint)
    if parsing:
        text = f"Error at line {line}: {err.idf_text}\n{_CSV_PARSE_TAIL}"
    else:
        text = f"CSV Error at line {line}: {err.idf_text}" if err.placement else err.idf_text
    return PartitionCsvError(text, line=line, problem=err.idf_text, hint=err.hint)


# --- binary ---------------------------------------------------------------------------------


def to_bin(table: PartitionTable, *, md5: bool = True) -> bytes:
    """partition-table.bin: 32-byte entries, the MD5 entry, 0xFF padding to 3072 bytes."""
    body = b"".join(_encode(p) for p in table.partitions)
    if md5:
        body += _MD5_MAGIC + b"\xff" * 14 + hashlib.md5(body, usedforsecurity=False).digest()
    if len(body) >= MAX_TABLE_LENGTH:
        raise PartitionBinError(f"Binary partition table length ({len(body)}) longer than max")
    return body + b"\xff" * (MAX_TABLE_LENGTH - len(body))


def _encode(p: Partition) -> bytes:
    flags = int(p.encrypted) | int(p.readonly) << 1
    return _ENTRY.pack(_MAGIC, p.type, p.subtype, p.offset, p.size, p.name.encode(), flags)


def from_bin(
    data: bytes, *, table_offset: int = 0x8000, release: str = DEFAULT_RELEASE
) -> PartitionTable:
    """Decode a binary table up to its end marker, checking the MD5 entry when present.

    Raises:
        PartitionBinError: with gen_esp32part's texts.
    """
    digest = hashlib.md5(usedforsecurity=False)
    parts: list[Partition] = []
    for start in range(0, len(data), _ENTRY.size):
        entry = data[start : start + _ENTRY.size]
        if len(entry) != _ENTRY.size:
            raise PartitionBinError("Partition table length must be a multiple of 32 bytes")
        if entry == _END_MARKER:
            return PartitionTable(
                offset=table_offset, partitions=tuple(parts), release=rules(release).release
            )
        if entry[:2] == _MD5_MAGIC:  # only the magic is checked, as gen_esp32part does
            _check_md5(entry[16:], digest.digest())
            continue
        digest.update(entry)
        parts.append(_decode(entry))
    raise PartitionBinError("Partition table is missing an end-of-table marker")


def _check_md5(parsed: bytes, computed: bytes) -> None:
    if parsed != computed:
        # gen_esp32part prints the parsed digest as 0xb'…' (a Python 3 bytes repr); we print hex.
        raise PartitionBinError(
            f"MD5 checksums don't match! (computed: 0x{computed.hex()}, parsed: 0x{parsed.hex()})"
        )


def _decode(entry: bytes) -> Partition:
    magic, type_, subtype, offset, size, raw_name, flags = _ENTRY.unpack(entry)
    if magic != _MAGIC:
        raise PartitionBinError(f"Invalid magic bytes ({magic!r}) for partition definition")
    try:
        name = raw_name.split(b"\x00", 1)[0].decode()
    except UnicodeDecodeError:
        raise PartitionBinError(f"Partition name {raw_name!r} is not UTF-8") from None
    return Partition(
        name=name,
        type=type_,
        subtype=subtype,
        offset=offset,
        size=size,
        encrypted=bool(flags & 1),
        readonly=bool(flags & 2),  # unknown higher bits are dropped (ESP-IDF only warns)
    )
