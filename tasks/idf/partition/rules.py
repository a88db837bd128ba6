"""Partition tables laid out and checked as gen_esp32part.py of ESP-IDF v5.3.2 to v6.0.2 does it,
and the presets (components/partition_table/partitions_*.csv) of each release.

layout() places rows and applies every gen_esp32part rule of the release with its own wording.
The parts of a table and each release's rules are in partition/model.py; the CSV and binary
formats in partition/formats.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace

from ...errors import ConfigError, KeyPath, format_path
from ..releases import numbers
from .model import (
    APP_TYPE,
    BOOTLOADER_TYPE,
    DATA_SUBTYPES,
    DATA_TYPE,
    DEFAULT_RELEASE,
    ENTRY_SIZE,
    MAX_TABLE_LENGTH,
    PARTITION_TABLE_TYPE,
    TABLE_SECTOR_SIZE,
    K,
    M,
    Partition,
    PartitionRules,
    PartitionSpec,
    PartitionTable,
    RuleError,
    check_byte,
    rules,
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
    "forced_offset",
    "forced_size",
    "layout",
    "preset",
    "preset_since",
    "presets_of",
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
    # v5.4+: partitions_two_ota_large.csv (no factory; 1700K slots).
    "two_ota_large": (
        _row("nvs", DATA_TYPE, 0x02, 0x6000),
        _row("otadata", DATA_TYPE, 0x00, _OTADATA_SIZE),
        _PHY,
        _row("ota_0", APP_TYPE, 0x10, 1700 * K),
        _row("ota_1", APP_TYPE, 0x11, 1700 * K),
    ),
}
PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)
# The first release that ships a preset; the others are in every release.
_PRESET_SINCE = {"two_ota_large": "5.4"}
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
    "TWO_OTA_LARGE": "two_ota_large",
}


def preset(name: str) -> tuple[PartitionSpec, ...]:
    """The rows of ESP-IDF's built-in `partitions_<name>.csv`, offsets left automatic."""
    if name not in _PRESETS:
        raise ValueError(f"unknown partition preset '{name}'; known: {', '.join(PRESET_NAMES)}")
    return _PRESETS[name]


def preset_since(name: str) -> str:
    """The first ESP-IDF release whose components/partition_table ships preset `name`."""
    return _PRESET_SINCE.get(name, DEFAULT_RELEASE)


def presets_of(release: str) -> tuple[str, ...]:
    """The presets ESP-IDF `release` ships."""
    return tuple(name for name in PRESET_NAMES if numbers(preset_since(name)) <= numbers(release))


# --- layout and the gen_esp32part rules, in the order the tool applies them ----------------


def layout(
    specs: Sequence[PartitionSpec],
    *,
    table_offset: int,
    path: KeyPath,
    release: str = DEFAULT_RELEASE,
    bootloader_offset: int | None = None,
) -> PartitionTable:
    """Place rows after the table sector and check them as gen_esp32part of `release` does;
    `bootloader_offset` is what the build passes as --primary-bootloader-offset (v5.5+).

    Raises:
        ConfigError: at `path + (row, field)`, with ESP-IDF's text where ESP-IDF has the rule.
    """
    rule = rules(release)
    if rule.forced_rows and bootloader_offset is not None and bootloader_offset >= table_offset:
        raise ConfigError(
            path,
            "Unsupported configuration. Primary bootloader must be below partition table. "
            f"Check --primary-bootloader-offset={bootloader_offset:#x} and "
            f"--offset={table_offset:#x}",
            "set partitions.table_offset above the bootloader",
        )
    specs = [
        _forced(spec, rule, table_offset, bootloader_offset, (*path, index))
        for index, spec in enumerate(specs)
    ]
    for index, spec in enumerate(specs):
        _check_row(spec, (*path, index))
    parts = _place(specs, table_offset, path, rule)
    for index, part in enumerate(parts):
        _verify_partition(part, (*path, index), rule)
    _check_unique_names(parts, path)
    _check_overlaps(parts, table_offset, path, rule)
    _check_otadata(parts, path, DATA_SUBTYPES["ota"], "otadata", '"ota"(0)')
    if rule.tee_otadata:
        _check_otadata(parts, path, 0x90, "TEE otadata", '"tee_ota"(0x90)')
    _check_length(len(parts), path)
    return PartitionTable(offset=table_offset, partitions=parts, release=rule.release)


def _is_primary(type_: int, subtype: int, rule: PartitionRules) -> bool:
    """v5.5+ primary bootloader and partition_table rows: fixed offsets, not placed."""
    return rule.forced_rows and type_ in (BOOTLOADER_TYPE, PARTITION_TABLE_TYPE) and subtype == 0


def _no_bootloader_offset(path: KeyPath, which: str) -> RuleError:
    option = f"--{which}-bootloader-offset"
    text = f"{which.capitalize()} bootloader offset is not defined. Please use {option}"
    return RuleError(path, text, "this project does not configure a recovery bootloader")


def forced_offset(
    type_: int, subtype: int, rule: PartitionRules, table_offset: int, bootloader: int | None
) -> int | None:
    """The offset gen_esp32part sets whatever the row says (parse_address), or None.

    Raises:
        RuleError: (path ()) the tool's "... bootloader offset is not defined" text.
    """
    if not rule.forced_rows:
        return None
    if type_ == BOOTLOADER_TYPE and subtype == 0x00:
        if bootloader is None:
            raise _no_bootloader_offset((), "primary")
        return bootloader
    if type_ == BOOTLOADER_TYPE and subtype == 0x02:  # CONFIG_BOOTLOADER_RECOVERY_OFFSET: unset
        raise _no_bootloader_offset((), "recovery")
    return table_offset if type_ == PARTITION_TABLE_TYPE and subtype == 0x00 else None


def forced_size(
    type_: int, rule: PartitionRules, table_offset: int, bootloader: int | None
) -> int | None:
    """The size gen_esp32part sets whatever the row says (parse_size), or None."""
    if not rule.forced_rows:
        return None
    if type_ == BOOTLOADER_TYPE:
        if bootloader is None:
            raise _no_bootloader_offset((), "primary")
        return table_offset - bootloader
    return TABLE_SECTOR_SIZE if type_ == PARTITION_TABLE_TYPE else None


def _forced(
    spec: PartitionSpec,
    rule: PartitionRules,
    table_offset: int,
    bootloader: int | None,
    row: KeyPath,
) -> PartitionSpec:
    try:
        offset = forced_offset(spec.type, spec.subtype, rule, table_offset, bootloader)
        size = forced_size(spec.type, rule, table_offset, bootloader)
    except RuleError as error:
        raise RuleError((*row, "subtype"), error.idf_text, error.hint) from None
    return replace(
        spec,
        offset=spec.offset if offset is None else offset,
        size=spec.size if size is None else size,
    )


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
    specs: Sequence[PartitionSpec], table_offset: int, path: KeyPath, rule: PartitionRules
) -> tuple[Partition, ...]:
    last_end = table_offset + TABLE_SECTOR_SIZE
    parts: list[Partition] = []
    for index, spec in enumerate(specs):
        offset = spec.offset
        if offset is not None and _is_primary(spec.type, spec.subtype, rule):
            parts.append(Partition(**{**asdict(spec), "offset": offset}))
            continue  # "They do not participate in the restoration of missing offsets"
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


def _verify_partition(part: Partition, row: KeyPath, rule: PartitionRules) -> None:
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
    minimum = rule.nvs_rw_min_size
    nvs = part.type == DATA_TYPE and part.subtype == DATA_SUBTYPES["nvs"]
    if nvs and part.size < minimum and not part.readonly:
        text = (
            f"'{part.name}' partition of type {part.type} and subtype {part.subtype} of this "
            f"size (0x{part.size:x}) must be flagged as 'readonly' (the size of read/write NVS "
            f"has to be at least 0x{minimum:x})"
        )
        hint = f"make it 0x{minimum:x} or larger, or flag it readonly"
        raise _invalid(part, (*row, "size"), text, hint)


def _invalid(part: Partition, path: KeyPath, text: str, hint: str) -> RuleError:
    return RuleError(path, f"Partition {part.name} invalid: {text}", hint)


def _check_unique_names(parts: Sequence[Partition], path: KeyPath) -> None:
    first: dict[str, int] = {}
    for index, part in enumerate(parts):
        if part.name in first:
            hint = f"'{part.name}' is also the name of {format_path((*path, first[part.name]))}"
            raise RuleError((*path, index, "name"), "Partition names must be unique", hint)
        first[part.name] = index


def _check_overlaps(
    parts: Sequence[Partition], table_offset: int, path: KeyPath, rule: PartitionRules
) -> None:
    """PartitionTable.verify()'s overlap pass, in offset order (placement catches the rest)."""
    first_free = table_offset + TABLE_SECTOR_SIZE
    last: Partition | None = None
    for index, part in sorted(enumerate(parts), key=lambda item: item[1].offset):
        where = (*path, index, "offset")
        if part.offset < first_free and not _is_primary(part.type, part.subtype, rule):
            text = f"Partition offset 0x{part.offset:x} is below 0x{first_free:x}"
            raise RuleError(where, text)
        if last is not None and part.offset < last.end:
            text = f"Partition at 0x{part.offset:x} overlaps 0x{last.offset:x}-0x{last.end - 1:x}"
            raise RuleError(where, text)
        last = part


def _check_otadata(
    parts: Sequence[Partition], path: KeyPath, subtype: int, what: str, spelled: str
) -> None:
    """One otadata (and, v5.5+, one TEE otadata) partition at most, of 0x2000 bytes."""
    found = [
        index
        for index, part in enumerate(parts)
        if part.type == DATA_TYPE and part.subtype == subtype
    ]
    if len(found) > 1:
        text = (
            f"Found multiple {what} partitions. Only one partition can be defined with "
            f'type="data"(1) and subtype={spelled}.'
        )
        raise RuleError((*path, found[1], "subtype"), text)
    if found and parts[found[0]].size != _OTADATA_SIZE:
        raise RuleError((*path, found[0], "size"), f"{what} partition must have size = 0x2000")


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
