"""Partition tables per ESP-IDF release (v5.3.2, v5.4.4, v5.5.5, v6.0.2): our tables and error
texts against goldens made by each release's own gen_esp32part.py, and against the tool itself
when the release's Kconfig subset is in shared/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from esp_ota_doit.errors import ConfigError
from esp_ota_doit.idf import releases
from esp_ota_doit.idf.partition import formats, model, rules

from tests.conftest import IDF_TAGS, SHARED
from tests.partition_oracle import FLASH, GOLDEN, OFFSETS, RELEASE_OF_TAG, csv_cases, run

MENUCONFIG_TAIL = ". Change the flash size in menuconfig under the 'Serial Flasher Config' menu."
CASES = sorted(csv_cases(SHARED)) if SHARED.is_dir() else []
TAIL = "\nPlease check extra_partition_subtypes.inc file in build/config directory"


def ours(csv: str, release: str, table_offset: int) -> tuple[str, bytes]:
    """What we make of a CSV for `release`, shaped as gen_esp32part.py's output."""
    bootloader = OFFSETS[table_offset] if model.rules(release).forced_rows else None
    try:
        table = formats.from_csv(
            csv, table_offset=table_offset, release=release, bootloader_offset=bootloader
        )
        rules.check_flash_size(table, int(FLASH.removesuffix("MB")) << 20, ("flash", "size"))
    except formats.PartitionCsvError as error:
        return "txt", str(error).encode()
    except ConfigError as error:
        return "txt", (error.message + MENUCONFIG_TAIL).encode()
    return "bin", formats.to_bin(table)


def golden_file(tag: str, case: str, offset: int) -> tuple[str, bytes]:
    found = sorted((GOLDEN / tag).glob(f"{case}@{offset:#x}.*"))
    assert len(found) == 1, f"no golden for {tag}/{case}@{offset:#x}; run pytest --update-golden"
    return found[0].suffix[1:], found[0].read_bytes()


@pytest.mark.parametrize("offset", list(OFFSETS), ids=hex)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("tag", IDF_TAGS)
def test_golden__ours_match_the_release(tag: str, case: str, offset: int) -> None:
    csv = csv_cases(SHARED)[case].read_text()
    assert ours(csv, RELEASE_OF_TAG[tag], offset) == golden_file(tag, case, offset)


@pytest.mark.parametrize("tag", IDF_TAGS)
def test_golden__made_by_the_release_tool(
    tag: str,
    idf_tree: Callable[[str], Path],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The goldens are what that release's gen_esp32part.py prints (--update-golden rewrites
    them from the tool, never from our code)."""
    tree = idf_tree(tag)  # skips when shared/ lacks the subset
    update = bool(request.config.getoption("--update-golden"))
    differ = []
    for case, csv in csv_cases(SHARED).items():
        for offset in OFFSETS:
            kind, data = run(tree, csv, offset, tmp_path / "out.bin")
            if update:
                for old in (GOLDEN / tag).glob(f"{case}@{offset:#x}.*"):
                    old.unlink()
                (GOLDEN / tag).mkdir(parents=True, exist_ok=True)
                (GOLDEN / tag / f"{case}@{offset:#x}.{kind}").write_bytes(data)
            if golden_file(tag, case, offset) != (kind, data):
                differ.append(f"{case}@{offset:#x}")
    assert differ == []


# --- each release's rules, by name ------------------------------------------------------------

EXPECTED = {
    # case: (v5.3, v5.4, v5.5 and v6.0): "bin" or the start of the error text
    "boot_ota_rows": (
        "Error at line 5: Value 'bootloader' is not valid. Known keywords: app, data",
        "bin",
        "bin",
    ),
    "boot_primary": (
        "Error at line 2: Value 'bootloader' is not valid. Known keywords: app, data",
        "Error at line 2: Value 'primary' is not valid. Known keywords: ota",
        "bin",
    ),
    "boot_recovery": (
        "Error at line 6: Value 'bootloader' is not valid. Known keywords: app, data",
        "Error at line 6: Value 'recovery' is not valid. Known keywords: ota",
        "Error at line 6: Recovery bootloader offset is not defined. Please use "
        "--recovery-bootloader-offset" + TAIL,
    ),
    "boot_primary_twice": (
        "Error at line 2: Value 'bootloader' is not valid. Known keywords: app, data",
        "Error at line 2: Value 'primary' is not valid. Known keywords: ota",
        "Partition at 0x1000 overlaps 0x1000-0x7fff",
    ),
    "tee_two_ota": (
        "Error at line 2: Value 'tee_0' is not valid. Known keywords: factory, test, ota_0",
        "Error at line 2: Value 'tee_0' is not valid. Known keywords: factory, test, ota_0",
        "bin",
    ),
    "tee_otadata_twice": (
        "Error at line 1: Value 'tee_0'",
        "Error at line 1: Value 'tee_0'",
        'Found multiple TEE otadata partitions. Only one partition can be defined with type="data"'
        '(1) and subtype="tee_ota"(0x90).',
    ),
    "tee_otadata_size": (
        "Error at line 1: Value 'tee_0'",
        "Error at line 1: Value 'tee_0'",
        "TEE otadata partition must have size = 0x2000",
    ),
    "nvs_small": (
        "bin",
        "bin",
        "Partition nvs invalid: 'nvs' partition of type 1 and subtype 2 of this size (0x2000) "
        "must be flagged as 'readonly' (the size of read/write NVS has to be at least 0x3000)",
    ),
    "nvs_small_readonly": ("bin", "bin", "bin"),
    "nvs_min": ("bin", "bin", "bin"),
    "tee_numeric": ("bin", "bin", "bin"),
    "boot_numeric": ("bin", "bin", "bin"),
}


@pytest.mark.parametrize("case", list(EXPECTED))
@pytest.mark.parametrize("release", releases.VERSIONS)
def test_rules__per_release(case: str, release: str) -> None:
    expected = EXPECTED[case][min(releases.VERSIONS.index(release), 2)]
    kind, data = ours((Path(__file__).parent / "data/partitions" / f"{case}.csv").read_text(),
                      release, 0x8000)  # fmt: skip
    if expected == "bin":
        assert kind == "bin"
    else:
        assert (kind, data.decode()[: len(expected)]) == ("txt", expected)


def test_rules__forced_rows_v55() -> None:
    csv = (Path(__file__).parent / "data/partitions/boot_primary.csv").read_text()
    for bootloader, offset in ((0x1000, 0x8000), (0x0, 0xD000), (0x2000, 0x8000)):
        table = formats.from_csv(
            csv, table_offset=offset, release="6.0", bootloader_offset=bootloader
        )
        boot, pt, nvs = table.partitions[:3]
        assert (boot.offset, boot.size) == (bootloader, offset - bootloader)
        assert (pt.offset, pt.size) == (offset, 0x1000)
        assert nvs.offset == offset + 0x1000  # primary rows are not placed
    with pytest.raises(formats.PartitionCsvError) as info:
        formats.from_csv(csv, release="5.5")
    assert str(info.value) == (
        "Error at line 2: Primary bootloader offset is not defined. Please use "
        "--primary-bootloader-offset" + TAIL
    )


def test_layout__yaml_rows_forced_and_refused() -> None:
    rows = [
        model.PartitionSpec(name="bl", type=2, subtype=0, offset=None, size=0x1000),
        model.PartitionSpec(name="nvs", type=1, subtype=2, offset=None, size=0x2000),
    ]
    with pytest.raises(ConfigError) as info:
        rules.layout(
            rows, table_offset=0x8000, path=("p",), release="5.5", bootloader_offset=0x1000
        )
    assert info.value.path == ("p", 1, "size")
    assert info.value.hint == "make it 0x3000 or larger, or flag it readonly"
    table = rules.layout(rows[:1], table_offset=0x8000, path=(), release="5.5", bootloader_offset=0)
    assert (table.partitions[0].offset, table.partitions[0].size) == (0, 0x8000)
    assert table.release == "5.5" and table.to_json()["release"] == "5.5"
    assert rules.layout(rows, table_offset=0x8000, path=()).partitions[0].offset == 0x9000  # v5.3
    with pytest.raises(ConfigError, match="Primary bootloader must be below partition table"):
        rules.layout(rows, table_offset=0x8000, path=(), release="6.0", bootloader_offset=0x8000)


@pytest.mark.parametrize(
    ("release", "row"),
    [
        ("5.3", ("bl", "2", "0")),
        ("5.4", ("bl", "bootloader", "0")),
        ("5.5", ("bl", "bootloader", "primary")),
        ("6.0", ("tee", "app", "tee_1")),
    ],
)
def test_to_csv__keywords_of_the_release(release: str, row: tuple[str, str, str]) -> None:
    name, type_, subtype = row
    csv = f"{name},{type_},{subtype},0x20000,0x10000\n"
    table = formats.from_csv(csv, release=release, bootloader_offset=0x1000)
    assert formats.csv_rows(table)[0][:3] == (name, *(
        ("0x02", "0x00") if release == "5.3" else ("bootloader", "0x00") if release == "5.4"
        else (type_, subtype)
    ))  # fmt: skip
    again = formats.from_csv(formats.to_csv(table), release=release, bootloader_offset=0x1000)
    assert again == table


def test_presets__per_release() -> None:
    assert rules.preset_since("two_ota_large") == "5.4"
    assert rules.preset_since("two_ota") == "5.3"
    csv = (Path(__file__).parent / "data/partitions/two_ota_large.csv").read_text()
    for release in ("5.4", "5.5", "6.0"):
        table = rules.layout(
            rules.preset("two_ota_large"), table_offset=0x8000, path=(), release=release
        )
        assert table == formats.from_csv(csv, release=release, bootloader_offset=0x1000)
