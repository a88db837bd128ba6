"""A partition table's parts as gen_esp32part.py of ESP-IDF v5.3.2 to v6.0.2 names them: types,
subtypes, flags, rows (PartitionSpec), placed partitions and the table; what each release's tool
knows and checks (PartitionRules, as data); plus the error for its rules.

partition/rules.py lays tables out and checks them; partition/formats.py reads and writes CSV and
binary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from ...errors import ConfigError, KeyPath
from .. import releases

__all__ = [
    "APP_SUBTYPES",
    "APP_TYPE",
    "BOOTLOADER_TYPE",
    "DATA_SUBTYPES",
    "DATA_TYPE",
    "DEFAULT_RELEASE",
    "ENTRY_SIZE",
    "FLAGS",
    "MAX_TABLE_LENGTH",
    "OTA_COUNT",
    "OTA_FIRST",
    "PARTITION_TABLE_TYPE",
    "RULES",
    "SUBTYPES",
    "TABLE_SECTOR_SIZE",
    "TYPES",
    "K",
    "M",
    "Partition",
    "PartitionRules",
    "PartitionSpec",
    "PartitionTable",
    "RuleError",
    "check_byte",
    "is_otadata",
    "keyword",
    "rules",
]

APP_TYPE = 0x00
DATA_TYPE = 0x01
BOOTLOADER_TYPE = 0x02  # a keyword from v5.4
PARTITION_TABLE_TYPE = 0x03  # a keyword from v5.4
TABLE_SECTOR_SIZE = 0x1000
MAX_TABLE_LENGTH = 0xC00

K = 1024
M = 1024 * 1024
TYPES = {"app": APP_TYPE, "data": DATA_TYPE}
OTA_FIRST, OTA_COUNT = 0x10, 16
# Keyword order matters: ESP-IDF lists them in this order in "Known keywords: ...".
APP_SUBTYPES = {"factory": 0x00, "test": 0x20} | {f"ota_{i}": OTA_FIRST + i for i in range(16)}
DATA_SUBTYPES = {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04}
DATA_SUBTYPES |= {"efuse": 0x05, "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81}
DATA_SUBTYPES |= {"spiffs": 0x82, "littlefs": 0x83}
SUBTYPES = {APP_TYPE: APP_SUBTYPES, DATA_TYPE: DATA_SUBTYPES}
FLAGS = ("encrypted", "readonly")  # bit 0, bit 1 of the flags word
ENTRY_SIZE = 32  # one entry of the binary table (partitions_io), the MD5 entry too
DEFAULT_RELEASE = "5.3"  # the release a table is checked for when none is named


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionRules:
    """What gen_esp32part.py of one ESP-IDF release knows and checks beyond v5.3's rules."""

    release: str  # major.minor, as idf.version spells it
    types: Mapping[str, int]  # keyword order is the tool's "Known keywords: ..." order
    subtypes: Mapping[int, Mapping[str, int]]
    # v5.5+: a data/nvs partition below this size must be readonly (0: no such rule).
    nvs_rw_min_size: int = 0
    # v5.5+: bootloader rows take the --primary-bootloader-offset / table-offset sizes, and the
    # primary bootloader, recovery bootloader and primary partition_table rows fixed offsets.
    forced_rows: bool = False
    tee_otadata: bool = False  # v5.5+: at most one data/tee_ota partition, of 0x2000


_BOOT_TYPES = {"bootloader": BOOTLOADER_TYPE, "partition_table": PARTITION_TABLE_TYPE}
_TEE_APPS = {"tee_0": 0x30, "tee_1": 0x31}
_V54_SUBTYPES = {BOOTLOADER_TYPE: {"ota": 0x01}, PARTITION_TABLE_TYPE: {"ota": 0x01}}
_V55_SUBTYPES = {
    BOOTLOADER_TYPE: {"primary": 0x00, "ota": 0x01, "recovery": 0x02},
    PARTITION_TABLE_TYPE: {"primary": 0x00, "ota": 0x01},
    APP_TYPE: APP_SUBTYPES | _TEE_APPS,
    DATA_TYPE: DATA_SUBTYPES | {"tee_ota": 0x90},
}
_V55 = {"types": _BOOT_TYPES | TYPES, "subtypes": _V55_SUBTYPES}
RULES: dict[str, PartitionRules] = {
    "5.3": PartitionRules(release="5.3", types=TYPES, subtypes=SUBTYPES),
    "5.4": PartitionRules(
        release="5.4", types=_BOOT_TYPES | TYPES, subtypes=_V54_SUBTYPES | SUBTYPES
    ),
    **{
        version: PartitionRules(
            release=version,
            types=_BOOT_TYPES | TYPES,
            subtypes=_V55_SUBTYPES,
            nvs_rw_min_size=0x3000,
            forced_rows=True,
            tee_otadata=True,
        )
        for version in ("5.5", "6.0")
    },
}


def rules(release: str) -> PartitionRules:
    """The rules of a release such as "5.5" or "v5.5.5".

    Raises:
        KeyError: not a release this project builds with.
    """
    return RULES[releases.release(release).version]


class RuleError(ConfigError):
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
        return keyword(self.type, TYPES)

    @property
    def subtype_name(self) -> str:
        return keyword(self.subtype, SUBTYPES.get(self.type, {}))


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionTable:
    """A laid-out table at `offset` (CONFIG_PARTITION_TABLE_OFFSET), rows in CSV order, checked
    for the ESP-IDF `release` (which also decides the keywords its CSV is written with)."""

    offset: int
    partitions: tuple[Partition, ...]
    release: str = field(default=DEFAULT_RELEASE, compare=False)

    def to_json(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "partitions": [asdict(p) for p in self.partitions],
            "release": self.release,
        }

    def find(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    @property
    def ota_slots(self) -> tuple[Partition, ...]:
        slots = (
            p
            for p in self.partitions
            if p.type == APP_TYPE and 0 <= p.subtype - OTA_FIRST < OTA_COUNT
        )
        return tuple(sorted(slots, key=lambda p: p.subtype))

    @property
    def otadata(self) -> Partition | None:
        return next((p for p in self.partitions if is_otadata(p)), None)

    @property
    def factory(self) -> Partition | None:
        apps = (p for p in self.partitions if p.type == APP_TYPE)
        return next((p for p in apps if p.subtype == APP_SUBTYPES["factory"]), None)

    @property
    def flash_used(self) -> int:
        """End of the partition with the highest offset (gen_esp32part's flash_size())."""
        if not self.partitions:
            return 0
        return max(self.partitions, key=lambda p: p.offset).end


def is_otadata(p: Partition) -> bool:
    return p.type == DATA_TYPE and p.subtype == DATA_SUBTYPES["ota"]


def keyword(value: int, keywords: Mapping[str, int]) -> str:
    return next((word for word, v in keywords.items() if v == value), f"0x{value:02x}")


def check_byte(number: int, path: KeyPath, what: str) -> None:
    # 0xff is ESP_PARTITION_TYPE_ANY / ESP_PARTITION_SUBTYPE_ANY, a search wildcard at run time.
    if not 0 <= number <= 0xFE:
        raise ConfigError(path, f"{what} {number:#x} is not in 0x00..0xfe", "0xff means 'any'")
