"""Partition tables against gen_esp32part v5.3.2: golden binaries, verbatim texts, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from esp_ota_doit.errors import ConfigError
from esp_ota_doit.idf.partition import formats, rules
from esp_ota_doit.idf.partition.rules import (
    APP_TYPE,
    DATA_TYPE,
    Partition,
    PartitionSpec,
    PartitionTable,
)
from hypothesis import given, settings
from hypothesis import strategies as st

LAYOUT = ("partitions", "layout")
OFFSETS = (0x8000, 0x9000, 0xD000)
MENUCONFIG_TAIL = ". Change the flash size in menuconfig under the 'Serial Flasher Config' menu."
CSV_TAIL = "\nPlease check extra_partition_subtypes.inc file in build/config directory"
APP_KEYWORDS = "factory, test, " + ", ".join(f"ota_{i}" for i in range(16))
DATA_KEYWORDS = (
    "ota, phy, nvs, coredump, nvs_keys, efuse, undefined, esphttpd, fat, spiffs, littlefs"
)


def spec(
    name: str, type_: int, subtype: int, size: int, offset: int | None = None, **flags: bool
) -> PartitionSpec:
    return PartitionSpec(name=name, type=type_, subtype=subtype, offset=offset, size=size, **flags)


def part(name: str, type_: int, subtype: int, offset: int, size: int) -> Partition:
    return Partition(name=name, type=type_, subtype=subtype, offset=offset, size=size)


NVS = spec("nvs", DATA_TYPE, 0x02, 0x6000)
OTADATA = spec("otadata", DATA_TYPE, 0x00, 0x2000)
FACTORY = spec("factory", APP_TYPE, 0x00, 0x100000)


def table(*parts: Partition, offset: int = 0x8000) -> PartitionTable:
    return PartitionTable(offset=offset, partitions=parts)


def golden_cases(shared: Path) -> list[dict[str, str]]:
    cases: list[dict[str, str]] = json.loads((shared / "esp-idf/golden/index.json").read_text())
    return cases


def flash_bytes(text: str) -> int:
    return int(text.removesuffix("MB")) * 1024 * 1024


# --- golden data from ESP-IDF v5.3.2 ----------------------------------------------------------


def run_like_gen_esp32part(csv: str, table_offset: int, flash_size: int) -> tuple[str, object]:
    """What `gen_esp32part.py --offset … --flash-size …` produces: the binary or its error text."""
    try:
        t = formats.from_csv(csv, table_offset=table_offset)
        rules.check_flash_size(t, flash_size, ("flash", "size"))
    except formats.PartitionCsvError as err:
        return "error", str(err)
    except ConfigError as err:
        return "error", err.message + MENUCONFIG_TAIL
    return "bin", formats.to_bin(t)


def test_golden__every_index_case(shared: Path) -> None:
    folder = shared / "esp-idf/golden"
    cases = golden_cases(shared)
    assert len(cases) > 100
    failures = []
    for case in cases:
        offset, size = int(case["table_offset"], 16), flash_bytes(case["flash_size"])
        got = run_like_gen_esp32part((folder / case["csv"]).read_text(), offset, size)
        if "bin" in case:
            expected: tuple[str, object] = ("bin", (folder / case["bin"]).read_bytes())
        else:
            expected = ("error", case["error"])
        if got != expected:
            failures.append((case, got[1] if got[0] == "error" else "binary differs"))
    assert failures == []


def test_golden__from_bin_round_trips(shared: Path) -> None:
    for path in sorted((shared / "esp-idf/golden").glob("*.bin")):
        offset = int(path.stem.rpartition("@")[2], 16)
        data = path.read_bytes()
        t = formats.from_bin(data, table_offset=offset)
        assert formats.to_bin(t) == data, path.name
        assert formats.from_bin(formats.to_bin(t), table_offset=offset) == t
        csv = (path.parent / (path.stem.rpartition("@")[0] + ".csv")).read_text()
        assert t == formats.from_csv(csv, table_offset=offset), path.name


V53_PRESETS = [name for name in rules.PRESET_NAMES if rules.preset_since(name) == "5.3"]


@pytest.mark.parametrize("offset", OFFSETS, ids=hex)
@pytest.mark.parametrize("name", V53_PRESETS)
def test_preset__equals_esp_idf_csv(shared: Path, name: str, offset: int) -> None:
    csv = (shared / "esp-idf/partitions" / f"{name}.csv").read_text()
    t = rules.layout(rules.preset(name), table_offset=offset, path=LAYOUT)
    assert t == formats.from_csv(csv, table_offset=offset)
    assert formats.to_bin(t) == (shared / "esp-idf/golden" / f"{name}@{offset:#x}.bin").read_bytes()


def test_preset__names_and_unknown() -> None:
    assert rules.PRESET_NAMES == (
        "singleapp",
        "singleapp_large",
        "two_ota",
        "singleapp_coredump",
        "singleapp_large_coredump",
        "two_ota_coredump",
        "singleapp_encr_nvs",
        "singleapp_large_encr_nvs",
        "two_ota_encr_nvs",
        "two_ota_large",  # v5.4+
    )
    assert all(s.offset is None for name in rules.PRESET_NAMES for s in rules.preset(name))
    with pytest.raises(ValueError, match="unknown partition preset 'three_ota'"):
        rules.preset("three_ota")


def test_layout__two_ota_offsets_from_facts() -> None:
    t = rules.layout(rules.preset("two_ota"), table_offset=0x8000, path=LAYOUT)
    placed = [(p.name, p.offset, p.size) for p in t.partitions]
    assert placed == [
        ("nvs", 0x9000, 0x4000),
        ("otadata", 0xD000, 0x2000),
        ("phy_init", 0xF000, 0x1000),
        ("factory", 0x10000, 0x100000),
        ("ota_0", 0x110000, 0x100000),
        ("ota_1", 0x210000, 0x100000),
    ]
    assert t.flash_used == 0x310000 == 3211264


# --- the table model --------------------------------------------------------------------------


def test_table__queries() -> None:
    t = rules.layout(
        [
            spec("nvs", DATA_TYPE, 0x02, 0x4000),
            OTADATA,
            spec("b", APP_TYPE, 0x11, 0x10000),
            spec("a", APP_TYPE, 0x10, 0x10000),
            spec("fs", 0x40, 0x05, 0x3000, offset=0x100000),
            FACTORY,
        ],
        table_offset=0x8000,
        path=LAYOUT,
    )
    assert [p.name for p in t.ota_slots] == ["a", "b"]
    assert t.otadata == t.find("otadata") == t.partitions[1]
    assert t.factory is not None and t.factory.offset == 0x110000
    assert t.find("nope") is None
    assert t.flash_used == 0x210000  # factory, placed after the explicit 0x100000 row
    assert [(p.type_name, p.subtype_name) for p in t.partitions] == [
        ("data", "nvs"),
        ("data", "ota"),
        ("app", "ota_1"),
        ("app", "ota_0"),
        ("0x40", "0x05"),
        ("app", "factory"),
    ]
    assert t.partitions[0].end == 0xD000
    assert json.loads(json.dumps(t.to_json())) == t.to_json()
    assert t.to_json()["offset"] == 0x8000


def test_table__empty() -> None:
    t = rules.layout([], table_offset=0x8000, path=LAYOUT)
    assert t.flash_used == 0 and t.otadata is None and t.factory is None and t.ota_slots == ()
    assert formats.from_bin(formats.to_bin(t)) == t


def test_subtype_name__data_undefined_and_unknown_app() -> None:
    assert part("x", DATA_TYPE, 0x06, 0x9000, 0x1000).subtype_name == "undefined"
    assert part("x", APP_TYPE, 0x25, 0x10000, 0x1000).subtype_name == "0x25"


# --- field parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x1000", 0x1000),
        ("4096", 4096),
        ("4K", 0x1000),
        ("64k", 0x10000),
        ("1M", 0x100000),
        ("1m", 0x100000),
        ("1500K", 1500 * 1024),
        ("0x1C0000", 0x1C0000),
        ("0o10", 8),
        ("0b101", 5),
        ("0", 0),
        (0x2000, 0x2000),
    ],
)
def test_parse_number__accepts(text: str | int, value: int) -> None:
    assert formats.parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("010", "Invalid field value 010"),
        ("1.5M", "Invalid field value 1.5"),  # the suffix is stripped before int()
        ("lots", "Invalid field value lots"),
        ("", "Invalid field value "),
    ],
)
def test_parse_number__rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        formats.parse_number(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "value"), [("app", 0), ("APP", 0), ("data", 1), ("Data", 1), ("0x40", 0x40), (2, 2)]
)
def test_parse_type__accepts(text: str | int, value: int) -> None:
    assert formats.parse_type(text, (*LAYOUT, 0, "type")) == value


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("", "Field 'type' can't be left empty", "use app, data or a number"),
        ("dat", "Value 'dat' is not valid. Known keywords: app, data", "did you mean 'data'?"),
        ("0xff", "type 0xff is not in 0x00..0xfe", "0xff means 'any'"),
        (256, "type 0x100 is not in 0x00..0xfe", "0xff means 'any'"),
    ],
)
def test_parse_type__rejects(text: str | int, message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        formats.parse_type(text, (*LAYOUT, 2, "type"))
    assert (info.value.path, info.value.message, info.value.hint) == (
        (*LAYOUT, 2, "type"),
        message,
        hint,
    )


@pytest.mark.parametrize(
    ("type_", "text", "value"),
    [
        (APP_TYPE, "factory", 0x00),
        (APP_TYPE, "ota_0", 0x10),
        (APP_TYPE, "OTA_15", 0x1F),
        (APP_TYPE, "test", 0x20),
        (APP_TYPE, "0", 0x00),
        (DATA_TYPE, "ota", 0x00),
        (DATA_TYPE, "nvs_keys", 0x04),
        (DATA_TYPE, "littlefs", 0x83),
        (DATA_TYPE, "", 0x06),
        (DATA_TYPE, None, 0x06),
        (0x40, "", 0x06),  # custom types get 'undefined' too, as gen_esp32part does
        (0x40, "0x05", 0x05),
        (DATA_TYPE, 0x99, 0x99),
    ],
)
def test_parse_subtype__accepts(type_: int, text: str | int | None, value: int) -> None:
    assert formats.parse_subtype(type_, text, (*LAYOUT, 0, "subtype")) == value


@pytest.mark.parametrize(
    ("type_", "text", "message", "hint"),
    [
        (
            APP_TYPE,
            "ota_16",
            f"Value 'ota_16' is not valid. Known keywords: {APP_KEYWORDS}",
            "ESP-IDF supports at most 16 OTA slots (ota_0 … ota_15)",
        ),
        (
            DATA_TYPE,
            "nvs_key",
            f"Value 'nvs_key' is not valid. Known keywords: {DATA_KEYWORDS}",
            "did you mean 'nvs_keys'?",
        ),
        (
            DATA_TYPE,
            "bogus",
            f"Value 'bogus' is not valid. Known keywords: {DATA_KEYWORDS}",
            "",
        ),
        (
            APP_TYPE,
            "",
            "App partition cannot have an empty subtype",
            "use factory, test or ota_0 … ota_15",
        ),
        (
            APP_TYPE,
            None,
            "App partition cannot have an empty subtype",
            "use factory, test or ota_0 … ota_15",
        ),
        (0x40, "nvs", "Invalid field value nvs", ""),
        (DATA_TYPE, "0x100", "subtype 0x100 is not in 0x00..0xfe", "0xff means 'any'"),
    ],
)
def test_parse_subtype__rejects(type_: int, text: str | None, message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        formats.parse_subtype(type_, text, (*LAYOUT, 1, "subtype"))
    assert (info.value.path, info.value.message, info.value.hint) == (
        (*LAYOUT, 1, "subtype"),
        message,
        hint,
    )


@pytest.mark.parametrize(
    ("value", "flags"),
    [
        (None, (False, False)),
        ("", (False, False)),
        ("encrypted", (True, False)),
        ("readonly", (False, True)),
        ("encrypted:readonly", (True, True)),
        ("readonly:encrypted:", (True, True)),
        (["readonly"], (False, True)),
        ([], (False, False)),
    ],
)
def test_parse_flags__accepts(value: str | list[str] | None, flags: tuple[bool, bool]) -> None:
    assert formats.parse_flags(value, (*LAYOUT, 0, "flags")) == flags


@pytest.mark.parametrize(
    ("value", "bad", "hint"),
    [
        ("encrypted:ro", "ro", "known flags: encrypted, readonly"),
        ("encrypted: readonly", " readonly", "did you mean 'readonly'?"),  # ESP-IDF does not strip
        (["encrypt"], "encrypt", "did you mean 'encrypted'?"),
    ],
)
def test_parse_flags__unknown_flag(value: str | list[str], bad: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        formats.parse_flags(value, (*LAYOUT, 3, "flags"))
    assert info.value.path == (*LAYOUT, 3, "flags")
    assert info.value.message == f"CSV flag column contains unknown flag '{bad}'"
    assert info.value.hint == hint


# --- layout rules: (specs, table offset, path tail, message, hint) ------------------------------

ROWS_95 = [spec(f"d{i}", DATA_TYPE, 0x40, 0x1000) for i in range(95)]
OTADATA_RO = spec("otadata", DATA_TYPE, 0x00, 0x2000, readonly=True)
COREDUMP_RO = spec("coredump", DATA_TYPE, 0x03, 0x10000, readonly=True)

LAYOUT_ERRORS = {
    "overlap_table_sector": (
        [spec("nvs", DATA_TYPE, 0x02, 0x6000, offset=0x8000)],
        0x8000,
        (0, "offset"),
        "Partitions overlap. Partition sets offset 0x8000. But partition table occupies the whole "
        "sector 0x8000. Use a free offset 0x9000 or higher",
        "",
    ),
    "overlap_previous": (
        [
            NVS,
            spec("phy", DATA_TYPE, 1, 0x1000),
            FACTORY,
            spec("ota_0", APP_TYPE, 0x10, 0x100000, 0x100000),
        ],
        0x8000,
        (3, "offset"),
        "Partitions overlap. Partition sets offset 0x100000. Previous partition ends 0x110000",
        "use 0x110000 or higher, or leave offset out to place it automatically",
    ),
    "misaligned_app_offset": (
        [NVS, spec("factory", APP_TYPE, 0, 0x100000, offset=0x18000)],
        0x8000,
        (1, "offset"),
        "Partition factory invalid: Offset 0x18000 is not aligned to 0x10000",
        "use a multiple of 0x10000",
    ),
    "misaligned_app_size": (
        [NVS, spec("factory", APP_TYPE, 0, 0x100100)],
        0x8000,
        (1, "size"),
        "Partition factory invalid: Size 0x100100 is not aligned to 0x1000",
        "use a multiple of 0x1000 (4K)",
    ),
    "misaligned_data_offset": (
        [spec("nvs", DATA_TYPE, 2, 0x6000, offset=0x9800)],
        0x8000,
        (0, "offset"),
        "Partition nvs invalid: Offset 0x9800 is not aligned to 0x1000",
        "use a multiple of 0x1000",
    ),
    "misaligned_custom_type_offset": (
        [spec("x", 0x40, 0, 0x1000, offset=0x9100)],
        0x8000,
        (0, "offset"),
        "Partition x invalid: Offset 0x9100 is not aligned to 0x1000",
        "use a multiple of 0x1000",
    ),
    "duplicate_names": (
        [NVS, spec("phy_init", DATA_TYPE, 1, 0x1000), spec("nvs", DATA_TYPE, 2, 0x1000)],
        0x8000,
        (2, "name"),
        "Partition names must be unique",
        "'nvs' is also the name of partitions.layout[0]",
    ),
    "two_otadata": (
        [OTADATA, NVS, spec("otadata2", DATA_TYPE, 0, 0x2000)],
        0x8000,
        (2, "subtype"),
        'Found multiple otadata partitions. Only one partition can be defined with type="data"(1) '
        'and subtype="ota"(0)',
        "",
    ),
    "otadata_size": (
        [NVS, spec("otadata", DATA_TYPE, 0, 0x1000)],
        0x8000,
        (1, "size"),
        "otadata partition must have size = 0x2000",
        "",
    ),
    "readonly_otadata": (
        [NVS, OTADATA_RO],
        0x8000,
        (1, "flags"),
        "Partition otadata invalid: 'otadata' partition of type 1 and subtype 0 is always "
        "read-write and cannot be read-only",
        "remove readonly",
    ),
    "readonly_coredump": (
        [COREDUMP_RO],
        0x8000,
        (0, "flags"),
        "Partition coredump invalid: 'coredump' partition of type 1 and subtype 3 is always "
        "read-write and cannot be read-only",
        "remove readonly",
    ),
    "95_entries_too_long": (
        ROWS_95,
        0x8000,
        (94, "name"),
        "Binary partition table length (3072) longer than max",
        "ESP-IDF fits at most 94 partitions",
    ),
    "16_byte_name": (
        [spec("abcdefghijklmnop", DATA_TYPE, 2, 0x6000)],
        0x8000,
        (0, "name"),
        "name 'abcdefghijklmnop' is 16 bytes; ESP-IDF keeps at most 15 (16 with the NUL)",
        "shorten it",
    ),
    "17_byte_name": (
        [NVS, spec("xxxxxxxxxxxxxxxxx", DATA_TYPE, 2, 0x6000)],
        0x8000,
        (1, "name"),
        "name 'xxxxxxxxxxxxxxxxx' is 17 bytes; ESP-IDF keeps at most 15 (16 with the NUL)",
        "shorten it",
    ),
    "utf8_name_bytes": (
        [spec("ääääääää", DATA_TYPE, 2, 0x6000)],
        0x8000,
        (0, "name"),
        "name 'ääääääää' is 16 bytes; ESP-IDF keeps at most 15 (16 with the NUL)",
        "shorten it",
    ),
    "empty_name": (
        [spec("", DATA_TYPE, 2, 0x6000)],
        0x8000,
        (0, "name"),
        "name must not be empty",
        "",
    ),
    "comma_in_name": (
        [spec("a,b", DATA_TYPE, 2, 0x6000)],
        0x8000,
        (0, "name"),
        "name 'a,b' cannot be written to a partition CSV",
        "use letters, digits, '_' and '-'",
    ),
    "zero_size": (
        [spec("nvs", DATA_TYPE, 2, 0)],
        0x8000,
        (0, "size"),
        "size 0x0 must be greater than 0",
        "",
    ),
    "past_32_bits": (
        [NVS, spec("big", DATA_TYPE, 0x40, 0x1000, offset=0xFFFFF000)],
        0x8000,
        (1, "size"),
        "partition ends at 0x100000000, past 32-bit flash addresses",
        "",
    ),
    "type_out_of_range": (
        [spec("x", 0xFF, 0, 0x1000)],
        0x8000,
        (0, "type"),
        "type 0xff is not in 0x00..0xfe",
        "0xff means 'any'",
    ),
}


@pytest.mark.parametrize(
    ("specs", "table_offset", "where", "message", "hint"),
    list(LAYOUT_ERRORS.values()),
    ids=list(LAYOUT_ERRORS),
)
def test_layout__rejects(
    specs: list[PartitionSpec],
    table_offset: int,
    where: tuple[object, ...],
    message: str,
    hint: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        rules.layout(specs, table_offset=table_offset, path=LAYOUT)
    assert (info.value.path, info.value.message, info.value.hint) == (
        (*LAYOUT, *where),
        message,
        hint,
    )


def test_layout__94_entries_fit() -> None:
    t = rules.layout(ROWS_95[:94], table_offset=0x8000, path=LAYOUT)
    assert formats.from_bin(formats.to_bin(t)) == t


def test_layout__error_line_format() -> None:
    with pytest.raises(ConfigError) as info:
        rules.layout(
            [spec("factory", APP_TYPE, 0, 0x100000, offset=0x18000)],
            table_offset=0x8000,
            path=LAYOUT,
        )
    assert str(info.value) == (
        "partitions.layout[0].offset: Partition factory invalid: Offset 0x18000 is not aligned "
        "to 0x10000; use a multiple of 0x10000"
    )


def test_layout__rule_order_follows_gen_esp32part() -> None:
    # Placement runs before per-row verify; verify before duplicate names; names before otadata.
    specs = [NVS, spec("nvs", APP_TYPE, 0, 0x100100), OTADATA, OTADATA]
    with pytest.raises(ConfigError, match="Size 0x100100"):
        rules.layout(specs, table_offset=0x8000, path=LAYOUT)
    with pytest.raises(ConfigError, match="names must be unique"):
        rules.layout([NVS, NVS, OTADATA, OTADATA], table_offset=0x8000, path=LAYOUT)


# --- flash size -----------------------------------------------------------------------------------


def layout_of(name: str, table_offset: int = 0x8000) -> PartitionTable:
    return rules.layout(rules.preset(name), table_offset=table_offset, path=LAYOUT)


@pytest.mark.parametrize(
    ("t", "flash", "message", "hint"),
    [
        (
            layout_of("two_ota"),
            2,
            "Partitions tables occupies 3.1MB of flash (3211264 bytes) which does not fit in "
            "configured flash size 2MB",
            "set flash.size to 4MB or larger, or make partitions.layout smaller",
        ),
        (
            table(part("big", 1, 0x40, 0x10000, 0x700000)),
            4,
            "Partitions tables occupies 7.1MB of flash (7405568 bytes) which does not fit in "
            "configured flash size 4MB",
            "set flash.size to 8MB or larger, or make partitions.layout smaller",
        ),
        (
            table(part("huge", 1, 0x40, 0x10000, 128 * 1024 * 1024)),
            128,
            "Partitions tables occupies 128.1MB of flash (134283264 bytes) which does not fit in "
            "configured flash size 128MB",
            "make partitions.layout smaller; 128MB is the largest",
        ),
    ],
    ids=["two_ota_at_2MB", "7.1MB_at_4MB", "beyond_128MB"],
)
def test_check_flash_size__too_small(
    t: PartitionTable, flash: int, message: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as info:
        rules.check_flash_size(t, flash * 1024 * 1024, ("flash", "size"))
    assert (info.value.path, info.value.message, info.value.hint) == (
        ("flash", "size"),
        message,
        hint,
    )


def test_check_flash_size__fits_exactly() -> None:
    rules.check_flash_size(
        table(part("a", 1, 2, 0x9000, 0x200000 - 0x9000)), 0x200000, ("flash", "size")
    )
    rules.check_flash_size(layout_of("two_ota"), 4 * 1024 * 1024, ("flash", "size"))


# --- CSV ------------------------------------------------------------------------------------------


def test_from_csv__tolerant_syntax() -> None:
    text = (
        "# comment\r\n"
        "\r\n"
        "  nvs , data , nvs , , 24K\r\n"  # missing flags column
        "keys,data,nvs_keys,,0x1000,encrypted:readonly,extra,fields\r\n"
        "   # indented comment\r\n"
        "app0,APP,ota_0,0x20000,1M\r\n"
        "raw,0x40\r\n"  # missing subtype, offset and size ... size is required
    )
    with pytest.raises(formats.PartitionCsvError) as info:
        formats.from_csv(text)
    assert str(info.value) == "Error at line 7: Size field can't be empty" + CSV_TAIL
    t = formats.from_csv(text.replace("raw,0x40", "raw,0x40,,,4K"))
    assert [(p.name, p.type, p.subtype, p.offset, p.size) for p in t.partitions] == [
        ("nvs", 1, 2, 0x9000, 0x6000),
        ("keys", 1, 4, 0xF000, 0x1000),
        ("app0", 0, 0x10, 0x20000, 0x100000),
        ("raw", 0x40, 0x06, 0x120000, 0x1000),
    ]
    assert t.partitions[1].encrypted and t.partitions[1].readonly


CSV_ERRORS = {
    "overlap_table_sector": (
        "# Name, Type\n# note\nnvs, data, nvs, 0x8000, 0x6000,\n",
        "CSV Error at line 3: Partitions overlap. Partition sets offset 0x8000. But partition "
        "table occupies the whole sector 0x8000. Use a free offset 0x9000 or higher.",
    ),
    "overlap_previous": (
        "nvs,data,nvs,,0x6000\nfactory,app,factory,,1M\n\nota_0,app,ota_0,0x100000,1M\n",
        "CSV Error at line 4: Partitions overlap. Partition sets offset 0x100000. "
        "Previous partition ends 0x110000",
    ),
    "misaligned_offset": (
        "factory, app, factory, 0x18000, 1M\n",
        "Partition factory invalid: Offset 0x18000 is not aligned to 0x10000",
    ),
    "duplicate_names": ("a,data,nvs,,4K\na,data,nvs,,4K\n", "Partition names must be unique"),
    "otadata_size": ("otadata,data,ota,,4K\n", "otadata partition must have size = 0x2000"),
    "two_otadata": (
        "o1,data,ota,,8K\no2,data,ota,,8K\n",
        'Found multiple otadata partitions. Only one partition can be defined with type="data"(1) '
        'and subtype="ota"(0).',
    ),
    "empty_type": (
        "\nnvs,,nvs,,4K\n",
        "Error at line 2: Field 'type' can't be left empty." + CSV_TAIL,
    ),
    "empty_app_subtype": (
        "factory,app,,,1M\n",
        "Error at line 1: App partition cannot have an empty subtype" + CSV_TAIL,
    ),
    "ota_16": (
        "ota_16,app,ota_16,,1M\n",
        f"Error at line 1: Value 'ota_16' is not valid. Known keywords: {APP_KEYWORDS}" + CSV_TAIL,
    ),
    "bad_size": ("nvs,data,nvs,,lots\n", "Error at line 1: Invalid field value lots" + CSV_TAIL),
    "leading_zero_offset": (
        "nvs,data,nvs,010,4K\n",
        "Error at line 1: Invalid field value 010" + CSV_TAIL,
    ),
    "unknown_flag": (
        "nvs,data,nvs,,4K,secret\n",
        "Error at line 1: CSV flag column contains unknown flag 'secret'" + CSV_TAIL,
    ),
    "readonly_coredump": (
        "coredump,data,coredump,,64K,readonly\n",
        "Partition coredump invalid: 'coredump' partition of type 1 and subtype 3 is always "
        "read-write and cannot be read-only",
    ),
    "long_name_ours": (
        "# x\nabcdefghijklmnopq,data,nvs,,4K\n",
        "Error at line 2: name 'abcdefghijklmnopq' is 17 bytes; ESP-IDF keeps at most 15 "
        "(16 with the NUL); shorten it",
    ),
    "too_many_rows": (
        "".join(f"d{i},data,,,4K\n" for i in range(95)),
        "Binary partition table length (3072) longer than max",
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(CSV_ERRORS.values()), ids=list(CSV_ERRORS))
def test_from_csv__rejects(text: str, expected: str) -> None:
    with pytest.raises(formats.PartitionCsvError) as info:
        formats.from_csv(text)
    assert str(info.value) == expected


def test_to_csv__shape() -> None:
    t = rules.layout(
        [NVS, spec("keys", DATA_TYPE, 4, 0x1000, encrypted=True, readonly=True), FACTORY],
        table_offset=0x9000,
        path=LAYOUT,
    )
    assert formats.to_csv(t) == (
        "# Name, Type, SubType, Offset, Size, Flags (table at 0x9000)\n"
        "nvs,data,nvs,0xa000,0x6000,\n"
        "keys,data,nvs_keys,0x10000,0x1000,encrypted:readonly\n"
        "factory,app,factory,0x20000,0x100000,\n"
    )
    assert formats.from_csv(formats.to_csv(t), table_offset=0x9000) == t


# --- binary ---------------------------------------------------------------------------------------


def test_to_bin__layout_and_md5() -> None:
    t = table(part("nvs", 1, 2, 0x9000, 0x6000))
    data = formats.to_bin(t)
    assert len(data) == rules.MAX_TABLE_LENGTH == 3072
    assert data[:32] == bytes.fromhex("aa50 0102 00900000 00600000") + b"nvs".ljust(
        16, b"\0"
    ) + bytes(4)
    assert data[32:48] == b"\xeb\xeb" + b"\xff" * 14
    assert data[64:] == b"\xff" * (3072 - 64)
    assert formats.to_bin(t, md5=False)[32:] == b"\xff" * (3072 - 32)
    assert formats.from_bin(formats.to_bin(t, md5=False)) == t


def test_to_bin__too_long() -> None:
    rows = tuple(part(f"d{i}", 1, 0x40, 0x9000 + i * 0x1000, 0x1000) for i in range(95))
    with pytest.raises(
        formats.PartitionBinError, match=r"^Binary partition table length \(3072\) longer than max$"
    ):
        formats.to_bin(table(*rows))
    assert formats.from_bin(formats.to_bin(table(*rows), md5=False)) == table(
        *rows
    )  # 95 fit without MD5


def test_from_bin__sixteen_byte_name_and_flags() -> None:
    t = table(
        Partition(
            name="abcdefghijklmnop", type=1, subtype=0x81, offset=0x9000, size=0x1000, readonly=True
        ),
        offset=0xD000,
    )
    assert formats.from_bin(formats.to_bin(t), table_offset=0xD000) == t


def corrupt(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def two_ota_bin() -> bytes:
    return formats.to_bin(layout_of("two_ota"))


def test_from_bin__bad_md5() -> None:
    good = two_ota_bin()
    computed = good[6 * 32 + 16 : 7 * 32]
    bad = corrupt(good, 6 * 32 + 16, b"\x00" * 16)
    with pytest.raises(formats.PartitionBinError) as info:
        formats.from_bin(bad)
    assert str(info.value) == (
        f"MD5 checksums don't match! (computed: 0x{computed.hex()}, parsed: 0x{'00' * 16})"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (two_ota_bin()[:100], "Partition table length must be a multiple of 32 bytes"),
        (two_ota_bin()[: 7 * 32], "Partition table is missing an end-of-table marker"),
        (b"", "Partition table is missing an end-of-table marker"),
        (
            corrupt(two_ota_bin(), 32, b"\x00\x00"),
            "Invalid magic bytes (b'\\x00\\x00') for partition definition",
        ),
    ],
    ids=["bad_length", "no_end_marker", "empty", "bad_magic"],
)
def test_from_bin__rejects(data: bytes, message: str) -> None:
    with pytest.raises(formats.PartitionBinError) as info:
        formats.from_bin(data)
    assert str(info.value) == message


def test_from_bin__reads_a_whole_sector() -> None:
    data = two_ota_bin() + b"\xff" * 0x400  # a board's 4 KB table sector
    assert formats.from_bin(data) == layout_of("two_ota")


# --- property: random valid layouts round-trip through both formats ----------------------------

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=15)


@st.composite
def valid_specs(draw: st.DrawFn) -> tuple[int, list[PartitionSpec]]:
    table_offset = draw(st.sampled_from((0x8000, 0x9000, 0xD000, 0x10000)))
    names = draw(st.lists(NAMES, max_size=20, unique=True))
    last_end, have_otadata, specs = table_offset + 0x1000, False, []
    for name in names:
        kind = draw(st.sampled_from(("app", "data", "custom")))
        if kind == "app":
            type_, align = APP_TYPE, 0x10000
            subtype = draw(st.sampled_from((0x00, 0x20, 0x25, *range(0x10, 0x20))))
            size = draw(st.integers(1, 64)) * 0x1000
        else:
            type_ = DATA_TYPE if kind == "data" else draw(st.integers(0x02, 0xFE))
            subtype, align = draw(st.integers(0, 0xFE)), 0x1000
            if type_ == DATA_TYPE and subtype == 0 and have_otadata:
                subtype = 0x02
            have_otadata |= type_ == DATA_TYPE and subtype == 0
            size = 0x2000 if (type_, subtype) == (DATA_TYPE, 0) else draw(st.integers(1, 0x80000))
        always_rw = type_ == DATA_TYPE and subtype in (0x00, 0x03)
        readonly = draw(st.booleans()) and not always_rw
        aligned = -(-last_end // align) * align
        gap = draw(st.one_of(st.none(), st.integers(0, 4)))
        offset = None if gap is None else aligned + gap * align
        last_end = (aligned if offset is None else offset) + size
        specs.append(
            spec(
                name, type_, subtype, size, offset, encrypted=draw(st.booleans()), readonly=readonly
            )
        )
    return table_offset, specs


@settings(max_examples=200, deadline=None)
@given(valid_specs())
def test_layout__round_trips_csv_and_bin(case: tuple[int, list[PartitionSpec]]) -> None:
    table_offset, specs = case
    t = rules.layout(specs, table_offset=table_offset, path=LAYOUT)
    assert [p.name for p in t.partitions] == [s.name for s in specs]
    assert all(s.offset in (None, p.offset) for s, p in zip(specs, t.partitions, strict=True))
    assert formats.from_bin(formats.to_bin(t), table_offset=table_offset) == t
    assert formats.from_bin(formats.to_bin(t, md5=False), table_offset=table_offset) == t
    assert formats.from_csv(formats.to_csv(t), table_offset=table_offset) == t
    assert rules.layout(specs, table_offset=table_offset, path=LAYOUT) == t  # deterministic
