"""Partition tables laid out and checked as gen_esp32part.py of ESP-IDF v5.3.2 does it, and the
presets (components/partition_table/partitions_*.csv).

layout() places rows and applies every gen_esp32part rule with its own wording. The parts of a
table are in partition_table.py; the CSV and binary formats in partition_files.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from ..errors import ConfigError, KeyPath, format_path
from .partition_table import (
    APP_TYPE,
    DATA_SUBTYPES,
    DATA_TYPE,
    ENTRY_SIZE,
    MAX_TABLE_LENGTH,
    TABLE_SECTOR_SIZE,
    K,
    M,
    Partition,
    PartitionSpec,
    PartitionTable,
    RuleError,
    check_byte,
    is_otadata,
)

__all__ = [
    "APP_TYPE",
    "DATA_TYPE",
    "MAX_TABLE_LENGTH",
    "PRESET_NAMES",
    "PRESET_OPTIONS",
    "TABLE_SECTOR_SIZE",
    "Partition",
    "PartitionSpec",
    "PartitionTable",
    "check_flash_size",
    "layout",
    "preset",
]

_OTADATA_SIZE = 0x2000
_APP_SIZE_ALIGN = 0x1000  # 0x10000 only with --secure v1, which this project never passes
_MAX_ENTRIES = MAX_TABLE_LENGTH // 32 - 2  # room for the MD5 entry; ESP-IDF rejects length >= max
_FLASH_SIZES_MB = (1, 2, 4, 8, 16, 32, 64, 128)

# --- presets: the rows of ESP-IDF's components/partition_table/partitions_*.csv ---------------


def _row(
    name: str, type_: int, subtype: int, size: int, *, encrypted: bool = False
) -> PartitionSpec:
    return PartitionSpec(
        name=name, type=type_, subtype=subtype, offset=None, size=size, encrypted=encrypted
    )


_PHY = _row("phy_init", DATA_TYPE, 0x01, 0x1000)
_COREDUMP = _row("coredump", DATA_TYPE, 0x03, 64 * K)
_NVS_KEY = _row("nvs_key", DATA_TYPE, 0x04, 0x1000, encrypted=True)


def _single(factory_size: int) -> tuple[PartitionSpec, ...]:
    return _row("nvs", DATA_TYPE, 0x02, 0x6000), _PHY, _row("factory", APP_TYPE, 0x00, factory_size)


def _two_ota(after_factory: tuple[PartitionSpec, ...] = ()) -> tuple[PartitionSpec, ...]:
    return (
        _row("nvs", DATA_TYPE, 0x02, 0x4000),
        _row("otadata", DATA_TYPE, 0x00, _OTADATA_SIZE),
        _PHY,
        _row("factory", APP_TYPE, 0x00, M),
        *after_factory,
        _row("ota_0", APP_TYPE, 0x10, M),
        _row("ota_1", APP_TYPE, 0x11, M),
    )


_PRESETS: dict[str, tuple[PartitionSpec, ...]] = {
    "singleapp": _single(M),
    "singleapp_large": _single(1500 * K),
    "two_ota": _two_ota(),
    "singleapp_coredump": (*_single(M), _COREDUMP),
    "singleapp_large_coredump": (*_single(1500 * K), _COREDUMP),
    "two_ota_coredump": _two_ota((_COREDUMP,)),
    "singleapp_encr_nvs": (*_single(M), _NVS_KEY),
    "singleapp_large_encr_nvs": (*_single(1500 * K), _NVS_KEY),
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
    check_byte(spec.type, (*row, "type"), "type")
    check_byte(spec.subtype, (*row, "subtype"), "subtype")
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
) -> RuleError:
    where, offset = (*path, index, "offset"), spec.offset
    text = f"Partitions overlap. Partition sets offset 0x{offset:x}. "
    if index == 0:
        text += (
            f"But partition table occupies the whole sector 0x{table_offset:x}. "
            f"Use a free offset 0x{last_end:x} or higher."
        )
        return RuleError(where, text, placement=True)
    text += f"Previous partition ends 0x{last_end:x}"
    free = _align_up(last_end, _offset_alignment(spec.type))
    hint = f"use 0x{free:x} or higher, or leave offset out to place it automatically"
    return RuleError(where, text, hint, placement=True)


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
    always_rw = (DATA_SUBTYPES["ota"], DATA_SUBTYPES["coredump"])
    if part.type == DATA_TYPE and part.subtype in always_rw and part.readonly:
        text = (
            f"'{part.name}' partition of type {part.type} and subtype {part.subtype} "
            "is always read-write and cannot be read-only"
        )
        raise _invalid(part, (*row, "flags"), text, "remove readonly")


def _invalid(part: Partition, path: KeyPath, text: str, hint: str) -> RuleError:
    return RuleError(path, f"Partition {part.name} invalid: {text}", hint)


def _check_unique_names(parts: Sequence[Partition], path: KeyPath) -> None:
    first: dict[str, int] = {}
    for index, part in enumerate(parts):
        if part.name in first:
            hint = f"'{part.name}' is also the name of {format_path((*path, first[part.name]))}"
            raise RuleError((*path, index, "name"), "Partition names must be unique", hint)
        first[part.name] = index


def _check_otadata(parts: Sequence[Partition], path: KeyPath) -> None:
    found = [index for index, part in enumerate(parts) if is_otadata(part)]
    if len(found) > 1:
        text = (
            "Found multiple otadata partitions. Only one partition can be defined with "
            'type="data"(1) and subtype="ota"(0).'
        )
        raise RuleError((*path, found[1], "subtype"), text)
    if found and parts[found[0]].size != _OTADATA_SIZE:
        raise RuleError((*path, found[0], "size"), "otadata partition must have size = 0x2000")


def _check_length(count: int, path: KeyPath) -> None:
    length = (count + 1) * ENTRY_SIZE  # the entries and the MD5 entry
    if length >= MAX_TABLE_LENGTH:
        text = f"Binary partition table length ({length}) longer than max"
        hint = f"ESP-IDF fits at most {_MAX_ENTRIES} partitions"
        raise RuleError((*path, _MAX_ENTRIES, "name"), text, hint)


def check_flash_size(table: PartitionTable, flash_size: int, path: KeyPath) -> None:
    """Raise ConfigError at `path` when the table ends beyond `flash_size` bytes."""
    used = table.flash_used
    if used <= flash_size:
        return
    message = (
        f"Partitions tables occupies {used / M:.1f}MB of flash ({used} bytes) "
        f"which does not fit in configured flash size {flash_size // M}MB"
    )
    fits = next((mb for mb in _FLASH_SIZES_MB if mb * M >= used), None)
    if fits is None:
        raise ConfigError(path, message, "make partitions.layout smaller; 128MB is the largest")
    raise ConfigError(
        path, message, f"set flash.size to {fits}MB or larger, or make partitions.layout smaller"
    )
