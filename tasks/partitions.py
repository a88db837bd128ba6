"""Partition tables, as gen_esp32part.py of ESP-IDF v5.3.2 makes and checks them.

layout() places rows and applies every gen_esp32part rule with its own wording; the CSV and binary
formats and the field parsers live in partitions_io and are re-exported from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from .errors import ConfigError, KeyPath, format_path

__all__ = [
    "APP_TYPE",
    "DATA_TYPE",
    "MAX_TABLE_LENGTH",
    "PRESET_NAMES",
    "PRESET_OPTIONS",
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
    "row_lines",
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
_ENTRY_SIZE = 32  # one entry of the binary table (partitions_io), the MD5 entry too


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
# CONFIG_PARTITION_TABLE_<member> -> the preset it selects (partition_table/Kconfig.projbuild);
# with CONFIG_ESP_COREDUMP_ENABLE_TO_FLASH ESP-IDF takes the _coredump twin. CUSTOM reads a CSV.
PRESET_OPTIONS: dict[str, str] = {
    "SINGLE_APP": "singleapp",
    "SINGLE_APP_LARGE": "singleapp_large",
    "TWO_OTA": "two_ota",
    "CUSTOM": "",
    "SINGLE_APP_ENCRYPTED_NVS": "singleapp_encr_nvs",
    "SINGLE_APP_LARGE_ENC_NVS": "singleapp_large_encr_nvs",
    "TWO_OTA_ENCRYPTED_NVS": "two_ota_encr_nvs",
}


def preset(name: str) -> tuple[PartitionSpec, ...]:
    """The rows of ESP-IDF's built-in `partitions_<name>.csv`, offsets left automatic."""
    if name not in _PRESETS:
        raise ValueError(f"unknown partition preset '{name}'; known: {', '.join(PRESET_NAMES)}")
    return _PRESETS[name]


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


def _check_byte(number: int, path: KeyPath, what: str) -> None:
    # 0xff is ESP_PARTITION_TYPE_ANY / ESP_PARTITION_SUBTYPE_ANY, a search wildcard at run time.
    if not 0 <= number <= 0xFE:
        raise ConfigError(path, f"{what} {number:#x} is not in 0x00..0xfe", "0xff means 'any'")


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
    length = (count + 1) * _ENTRY_SIZE  # the entries and the MD5 entry
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


# --- the two file formats -------------------------------------------------------------------
# Imported last: partitions_io builds on the classes and rules above, and callers keep using
# partitions.from_csv, partitions.to_bin, partitions.PartitionBinError and the field parsers.

from .partitions_io import (  # noqa: E402
    PartitionBinError,
    PartitionCsvError,
    csv_rows,
    from_bin,
    from_csv,
    parse_flags,
    parse_number,
    parse_subtype,
    parse_type,
    row_lines,
    to_bin,
    to_csv,
)
