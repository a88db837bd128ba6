"""Partition tables, as gen_esp32part.py of ESP-IDF v5.3.2 makes and checks them.

layout() places rows and applies every gen_esp32part rule with its own wording; from_csv() and
from_bin() read ESP-IDF's two formats, to_csv() and to_bin() write them.
"""

from __future__ import annotations

import difflib
import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from tasks.errors import ConfigError, KeyPath, ProjectError, format_path

__all__ = [
    "APP_TYPE",
    "DATA_TYPE",
    "MAX_TABLE_LENGTH",
    "PRESET_NAMES",
    "TABLE_SECTOR_SIZE",
    "KeyPath",
    "Partition",
    "PartitionBinError",
    "PartitionCsvError",
    "PartitionSpec",
    "PartitionTable",
    "check_flash_size",
    "csv_rows",
    "from_bin",
    "from_csv",
    "layout",
    "parse_flags",
    "parse_number",
    "parse_subtype",
    "parse_type",
    "preset",
    "to_bin",
    "to_csv",
]

APP_TYPE = 0x00
DATA_TYPE = 0x01
TABLE_SECTOR_SIZE = 0x1000
MAX_TABLE_LENGTH = 0xC00

_K = 1024
_M = 1024 * 1024
_TYPES = {"app": APP_TYPE, "data": DATA_TYPE}
_OTA_FIRST, _OTA_COUNT = 0x10, 16
# Keyword order matters: ESP-IDF lists them in this order in "Known keywords: ...".
_APP_SUBTYPES = {"factory": 0x00, "test": 0x20} | {f"ota_{i}": _OTA_FIRST + i for i in range(16)}
_DATA_SUBTYPES = {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04}
_DATA_SUBTYPES |= {"efuse": 0x05, "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81}
_DATA_SUBTYPES |= {"spiffs": 0x82, "littlefs": 0x83}
_SUBTYPES = {APP_TYPE: _APP_SUBTYPES, DATA_TYPE: _DATA_SUBTYPES}
_FLAGS = ("encrypted", "readonly")  # bit 0, bit 1 of the flags word
_OTADATA_SIZE = 0x2000
_APP_SIZE_ALIGN = 0x1000  # 0x10000 only with --secure v1, which this project never passes
_MAX_ENTRIES = MAX_TABLE_LENGTH // 32 - 2  # room for the MD5 entry; ESP-IDF rejects length >= max
_FLASH_SIZES_MB = (1, 2, 4, 8, 16, 32, 64, 128)

_ENTRY = struct.Struct("<2sBBLL16sL")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb"
_END_MARKER = b"\xff" * 32
_CSV_PARSE_TAIL = "Please check extra_partition_subtypes.inc file in build/config directory"


class PartitionCsvError(ProjectError):
    """A partition CSV that gen_esp32part rejects; str() is the tool's own output."""


class PartitionBinError(ProjectError):
    """A binary partition table that cannot be decoded (or encoded)."""


class _IdfError(ConfigError):
    """A gen_esp32part rule; `idf_text` is the tool's wording, which from_csv prints as is."""

    def __init__(self, path: KeyPath, text: str, hint: str = "", *, placement: bool = False):
        super().__init__(path, text.removesuffix("."), hint)
        self.idf_text = text
        self.placement = placement  # from_csv prefixes these with "CSV Error at line N: "


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionSpec:
    """One row as the user wrote it; offset None means placed automatically."""

    name: str
    type: int
    subtype: int
    offset: int | None
    size: int
    encrypted: bool = False
    readonly: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """A placed row."""

    name: str
    type: int
    subtype: int
    offset: int
    size: int
    encrypted: bool = False
    readonly: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def type_name(self) -> str:
        return _keyword(self.type, _TYPES)

    @property
    def subtype_name(self) -> str:
        return _keyword(self.subtype, _SUBTYPES.get(self.type, {}))


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionTable:
    """A laid-out table at `offset` (CONFIG_PARTITION_TABLE_OFFSET), rows in CSV order."""

    offset: int
    partitions: tuple[Partition, ...]

    def to_json(self) -> dict[str, object]:
        return {"offset": self.offset, "partitions": [asdict(p) for p in self.partitions]}

    def find(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    @property
    def ota_slots(self) -> tuple[Partition, ...]:
        slots = (
            p
            for p in self.partitions
            if p.type == APP_TYPE and 0 <= p.subtype - _OTA_FIRST < _OTA_COUNT
        )
        return tuple(sorted(slots, key=lambda p: p.subtype))

    @property
    def otadata(self) -> Partition | None:
        return next((p for p in self.partitions if _is_otadata(p)), None)

    @property
    def factory(self) -> Partition | None:
        apps = (p for p in self.partitions if p.type == APP_TYPE)
        return next((p for p in apps if p.subtype == _APP_SUBTYPES["factory"]), None)

    @property
    def flash_used(self) -> int:
        """End of the partition with the highest offset (gen_esp32part's flash_size())."""
        if not self.partitions:
            return 0
        return max(self.partitions, key=lambda p: p.offset).end


def _is_otadata(p: Partition) -> bool:
    return p.type == DATA_TYPE and p.subtype == _DATA_SUBTYPES["ota"]


def _keyword(value: int, keywords: Mapping[str, int]) -> str:
    return next((word for word, v in keywords.items() if v == value), f"0x{value:02x}")


# --- presets: the rows of ESP-IDF's components/partition_table/partitions_*.csv ---------------


def _row(
    name: str, type_: int, subtype: int, size: int, *, encrypted: bool = False
) -> PartitionSpec:
    return PartitionSpec(
        name=name, type=type_, subtype=subtype, offset=None, size=size, encrypted=encrypted
    )


_PHY = _row("phy_init", DATA_TYPE, 0x01, 0x1000)
_COREDUMP = _row("coredump", DATA_TYPE, 0x03, 64 * _K)
_NVS_KEY = _row("nvs_key", DATA_TYPE, 0x04, 0x1000, encrypted=True)


def _single(factory_size: int) -> tuple[PartitionSpec, ...]:
    return _row("nvs", DATA_TYPE, 0x02, 0x6000), _PHY, _row("factory", APP_TYPE, 0x00, factory_size)


def _two_ota(after_factory: tuple[PartitionSpec, ...] = ()) -> tuple[PartitionSpec, ...]:
    return (
        _row("nvs", DATA_TYPE, 0x02, 0x4000),
        _row("otadata", DATA_TYPE, 0x00, _OTADATA_SIZE),
        _PHY,
        _row("factory", APP_TYPE, 0x00, _M),
        *after_factory,
        _row("ota_0", APP_TYPE, 0x10, _M),
        _row("ota_1", APP_TYPE, 0x11, _M),
    )


_PRESETS: dict[str, tuple[PartitionSpec, ...]] = {
    "singleapp": _single(_M),
    "singleapp_large": _single(1500 * _K),
    "two_ota": _two_ota(),
    "singleapp_coredump": (*_single(_M), _COREDUMP),
    "singleapp_large_coredump": (*_single(1500 * _K), _COREDUMP),
    "two_ota_coredump": _two_ota((_COREDUMP,)),
    "singleapp_encr_nvs": (*_single(_M), _NVS_KEY),
    "singleapp_large_encr_nvs": (*_single(1500 * _K), _NVS_KEY),
    "two_ota_encr_nvs": (*_two_ota(), _NVS_KEY),
}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def preset(name: str) -> tuple[PartitionSpec, ...]:
    """The rows of ESP-IDF's built-in `partitions_<name>.csv`, offsets left automatic."""
    if name not in _PRESETS:
        raise ValueError(f"unknown partition preset '{name}'; known: {', '.join(PRESET_NAMES)}")
    return _PRESETS[name]


# --- field parsers --------------------------------------------------------------------------


def _parse_int(text: str, keywords: Mapping[str, int]) -> int:
    """gen_esp32part's parse_int: k/m suffixes stripped first (recursively), int(x, 0), keywords."""
    for suffix, scale in (("k", _K), ("m", _M)):
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
    if keywords is _APP_SUBTYPES and word.startswith("ota_") and word[4:].isdigit():
        return "ESP-IDF supports at most 16 OTA slots (ota_0 … ota_15)"
    close = difflib.get_close_matches(word, keywords, n=1)
    return f"did you mean '{close[0]}'?" if close else ""


def _parse_byte(value: str | int, keywords: Mapping[str, int], path: KeyPath, what: str) -> int:
    try:
        number = parse_number(value) if isinstance(value, int) else _parse_int(value, keywords)
    except ValueError as err:
        raise _IdfError(path, str(err), _keyword_hint(str(value), keywords)) from None
    _check_byte(number, path, what)
    return number


def _check_byte(number: int, path: KeyPath, what: str) -> None:
    # 0xff is ESP_PARTITION_TYPE_ANY / ESP_PARTITION_SUBTYPE_ANY, a search wildcard at run time.
    if not 0 <= number <= 0xFE:
        raise ConfigError(path, f"{what} {number:#x} is not in 0x00..0xfe", "0xff means 'any'")


def parse_type(value: str | int, path: KeyPath) -> int:
    """'app', 'data' (any case) or a number 0..0xfe."""
    if value == "":
        raise _IdfError(path, "Field 'type' can't be left empty.", "use app, data or a number")
    return _parse_byte(value, _TYPES, path, "type")


def parse_subtype(type_: int, value: str | int | None, path: KeyPath) -> int:
    """A subtype keyword of `type_` or a number; an empty data subtype means 'undefined'."""
    if value is None or value == "":
        if type_ == APP_TYPE:
            hint = "use factory, test or ota_0 … ota_15"
            raise _IdfError(path, "App partition cannot have an empty subtype", hint)
        return _DATA_SUBTYPES["undefined"]  # also for custom types, as gen_esp32part does
    return _parse_byte(value, _SUBTYPES.get(type_, {}), path, "subtype")


def parse_flags(value: str | list[str] | None, path: KeyPath) -> tuple[bool, bool]:
    """(encrypted, readonly) from 'encrypted:readonly' or a list; empty items are ignored."""
    items = [] if value is None else value.split(":") if isinstance(value, str) else list(value)
    for flag in items:
        if flag and flag not in _FLAGS:
            close = difflib.get_close_matches(flag, _FLAGS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known flags: encrypted, readonly"
            raise _IdfError(path, f"CSV flag column contains unknown flag '{flag}'", hint)
    return "encrypted" in items, "readonly" in items


# --- layout and the gen_esp32part rules, in the order the tool applies them ----------------


def layout(specs: Sequence[PartitionSpec], *, table_offset: int, path: KeyPath) -> PartitionTable:
    """Place rows after the table sector and check them as gen_esp32part v5.3 does.

    Raises:
        ConfigError: at `path + (row, field)`, with ESP-IDF's text where ESP-IDF has the rule.
    """
    for index, spec in enumerate(specs):
        _check_row(spec, (*path, index))
    parts = _place(specs, table_offset, path)
    for index, part in enumerate(parts):
        _verify_partition(part, (*path, index))
    _check_unique_names(parts, path)
    _check_overlaps(parts, table_offset, path)
    _check_otadata(parts, path)
    _check_length(len(parts), path)
    return PartitionTable(offset=table_offset, partitions=parts)


def _check_row(spec: PartitionSpec, row: KeyPath) -> None:
    """Our own rules, which gen_esp32part lacks."""
    size = len(spec.name.encode())
    if size == 0:
        raise ConfigError((*row, "name"), "name must not be empty")
    # ESP-IDF truncates names over 16 bytes silently, and 16 leaves no NUL; we reject both.
    if size > 15:
        message = f"name '{spec.name}' is {size} bytes; ESP-IDF keeps at most 15 (16 with the NUL)"
        raise ConfigError((*row, "name"), message, "shorten it")
    if not _csv_safe(spec.name):
        message = f"name '{spec.name}' cannot be written to a partition CSV"
        raise ConfigError((*row, "name"), message, "use letters, digits, '_' and '-'")
    _check_byte(spec.type, (*row, "type"), "type")
    _check_byte(spec.subtype, (*row, "subtype"), "subtype")
    if spec.size <= 0:
        raise ConfigError((*row, "size"), f"size {spec.size:#x} must be greater than 0")


def _csv_safe(name: str) -> bool:
    # gen_esp32part splits on ',', strips fields, skips '#' lines and expands $VARS.
    return name.isprintable() and name == name.strip() and not any(c in name for c in ",$#")


def _place(
    specs: Sequence[PartitionSpec], table_offset: int, path: KeyPath
) -> tuple[Partition, ...]:
    last_end = table_offset + TABLE_SECTOR_SIZE
    parts: list[Partition] = []
    for index, spec in enumerate(specs):
        offset = spec.offset
        if offset is not None and offset < last_end:
            raise _overlap_error(index, spec, last_end, table_offset, path)
        if offset is None:
            offset = _align_up(last_end, _offset_alignment(spec.type))
        if offset + spec.size >= 1 << 32:
            message = f"partition ends at 0x{offset + spec.size:x}, past 32-bit flash addresses"
            raise ConfigError((*path, index, "size"), message)
        parts.append(Partition(**{**asdict(spec), "offset": offset}))
        last_end = offset + spec.size
    return tuple(parts)


def _overlap_error(
    index: int, spec: PartitionSpec, last_end: int, table_offset: int, path: KeyPath
) -> _IdfError:
    where, offset = (*path, index, "offset"), spec.offset
    text = f"Partitions overlap. Partition sets offset 0x{offset:x}. "
    if index == 0:
        text += (
            f"But partition table occupies the whole sector 0x{table_offset:x}. "
            f"Use a free offset 0x{last_end:x} or higher."
        )
        return _IdfError(where, text, placement=True)
    text += f"Previous partition ends 0x{last_end:x}"
    free = _align_up(last_end, _offset_alignment(spec.type))
    hint = f"use 0x{free:x} or higher, or leave offset out to place it automatically"
    return _IdfError(where, text, hint, placement=True)


def _offset_alignment(type_: int) -> int:
    return 0x10000 if type_ == APP_TYPE else 0x1000  # custom types follow the data rule


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _verify_partition(part: Partition, row: KeyPath) -> None:
    """gen_esp32part's PartitionDefinition.verify()."""
    align = _offset_alignment(part.type)
    if part.offset % align:
        text = f"Offset 0x{part.offset:x} is not aligned to 0x{align:x}"
        raise _invalid(part, (*row, "offset"), text, f"use a multiple of 0x{align:x}")
    if part.type == APP_TYPE and part.size % _APP_SIZE_ALIGN:
        text = f"Size 0x{part.size:x} is not aligned to 0x{_APP_SIZE_ALIGN:x}"
        raise _invalid(part, (*row, "size"), text, "use a multiple of 0x1000 (4K)")
    always_rw = (_DATA_SUBTYPES["ota"], _DATA_SUBTYPES["coredump"])
    if part.type == DATA_TYPE and part.subtype in always_rw and part.readonly:
        text = (
            f"'{part.name}' partition of type {part.type} and subtype {part.subtype} "
            "is always read-write and cannot be read-only"
        )
        raise _invalid(part, (*row, "flags"), text, "remove readonly")


def _invalid(part: Partition, path: KeyPath, text: str, hint: str) -> _IdfError:
    return _IdfError(path, f"Partition {part.name} invalid: {text}", hint)


def _check_unique_names(parts: Sequence[Partition], path: KeyPath) -> None:
    first: dict[str, int] = {}
    for index, part in enumerate(parts):
        if part.name in first:
            hint = f"'{part.name}' is also the name of {format_path((*path, first[part.name]))}"
            raise _IdfError((*path, index, "name"), "Partition names must be unique", hint)
        first[part.name] = index


def _check_overlaps(parts: Sequence[Partition], table_offset: int, path: KeyPath) -> None:
    # Kept for fidelity: after _place() (sizes > 0, offsets never below the previous end) it
    # cannot fire, just as in gen_esp32part, whose from_csv runs the same placement first.
    table_end = table_offset + TABLE_SECTOR_SIZE
    last: Partition | None = None
    for index in sorted(range(len(parts)), key=lambda i: parts[i].offset):
        part, where = parts[index], (*path, index, "offset")
        if part.offset < table_end:
            raise _IdfError(where, f"Partition offset 0x{part.offset:x} is below 0x{table_end:x}")
        if last is not None and part.offset < last.end:
            text = f"Partition at 0x{part.offset:x} overlaps 0x{last.offset:x}-0x{last.end - 1:x}"
            raise _IdfError(where, text)
        last = part


def _check_otadata(parts: Sequence[Partition], path: KeyPath) -> None:
    found = [index for index, part in enumerate(parts) if _is_otadata(part)]
    if len(found) > 1:
        text = (
            "Found multiple otadata partitions. Only one partition can be defined with "
            'type="data"(1) and subtype="ota"(0).'
        )
        raise _IdfError((*path, found[1], "subtype"), text)
    if found and parts[found[0]].size != _OTADATA_SIZE:
        raise _IdfError((*path, found[0], "size"), "otadata partition must have size = 0x2000")


def _check_length(count: int, path: KeyPath) -> None:
    length = (count + 1) * _ENTRY.size  # the entries and the MD5 entry
    if length >= MAX_TABLE_LENGTH:
        text = f"Binary partition table length ({length}) longer than max"
        hint = f"ESP-IDF fits at most {_MAX_ENTRIES} partitions"
        raise _IdfError((*path, _MAX_ENTRIES, "name"), text, hint)


def check_flash_size(table: PartitionTable, flash_size: int, path: KeyPath) -> None:
    """Raise ConfigError at `path` when the table ends beyond `flash_size` bytes."""
    used = table.flash_used
    if used <= flash_size:
        return
    message = (
        f"Partitions tables occupies {used / _M:.1f}MB of flash ({used} bytes) "
        f"which does not fit in configured flash size {flash_size // _M}MB"
    )
    fits = next((mb for mb in _FLASH_SIZES_MB if mb * _M >= used), None)
    if fits is None:
        raise ConfigError(path, message, "make partitions.layout smaller; 128MB is the largest")
    raise ConfigError(
        path, message, f"set flash.size to {fits}MB or larger, or make partitions.layout smaller"
    )


# --- CSV ------------------------------------------------------------------------------------


def csv_rows(table: PartitionTable) -> list[tuple[str, str, str, str, str, str]]:
    """Each partition as the six CSV fields, with explicit hex offsets and sizes."""
    rows = []
    for p in table.partitions:
        flags = ":".join(
            flag for flag, on in zip(_FLAGS, (p.encrypted, p.readonly), strict=True) if on
        )
        rows.append(
            (p.name, p.type_name, p.subtype_name, f"0x{p.offset:x}", f"0x{p.size:x}", flags)
        )
    return rows


def to_csv(table: PartitionTable) -> str:
    """ESP-IDF CSV with explicit hex offsets and sizes; from_csv() reads it back unchanged."""
    lines = [f"# Name, Type, SubType, Offset, Size, Flags (table at 0x{table.offset:x})"]
    lines.extend(",".join(row) for row in csv_rows(table))
    return "\n".join(lines) + "\n"


def from_csv(text: str, *, table_offset: int = 0x8000) -> PartitionTable:
    """Parse and lay out an ESP-IDF partition CSV (no $VAR expansion: that would read os.environ).

    Raises:
        PartitionCsvError: whose str() is what gen_esp32part prints for the same input.
    """
    specs: list[PartitionSpec] = []
    line_numbers: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            specs.append(_spec_from_csv(line, (len(specs),)))
        except ConfigError as err:
            raise PartitionCsvError(_csv_error_text(err, number, parsing=True)) from None
        line_numbers.append(number)
    try:
        return layout(specs, table_offset=table_offset, path=())
    except ConfigError as err:
        row = err.path[0]
        assert isinstance(row, int)  # layout() always names the row first
        raise PartitionCsvError(_csv_error_text(err, line_numbers[row], parsing=False)) from None


def _spec_from_csv(line: str, row: KeyPath) -> PartitionSpec:
    fields = [field.strip() for field in line.split(",")] + [""] * 5  # extra fields are ignored
    name, type_text, subtype_text, offset_text, size_text, flags_text = fields[:6]
    type_ = parse_type(type_text, (*row, "type"))
    subtype = parse_subtype(type_, subtype_text, (*row, "subtype"))
    offset = _csv_number(offset_text, (*row, "offset")) if offset_text else None
    if not size_text:
        raise _IdfError((*row, "size"), "Size field can't be empty")
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
        raise _IdfError(path, str(err)) from None


def _csv_error_text(err: ConfigError, line: int, *, parsing: bool) -> str:
    if not isinstance(err, _IdfError):  # one of our own rules: no ESP-IDF wording exists
        hint = f"; {err.hint}" if err.hint else ""
        return f"Error at line {line}: {err.message}{hint}"
    if parsing:
        return f"Error at line {line}: {err.idf_text}\n{_CSV_PARSE_TAIL}"
    return f"CSV Error at line {line}: {err.idf_text}" if err.placement else err.idf_text


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


def from_bin(data: bytes, *, table_offset: int = 0x8000) -> PartitionTable:
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
            return PartitionTable(offset=table_offset, partitions=tuple(parts))
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
