"""The virtual ESP-IDF tree's Kconfig set: a small, real-format subset of ESP-IDF v5.3.2's Kconfig
files (root Kconfig, soc caps per target, components' Kconfig and Kconfig.projbuild,
sdkconfig.rename) that ESP-IDF's own kconfgen evaluates for the idf.py stand-in and for render.

Written in our own words after ESP-IDF's menus; option names, types, defaults, ranges and
dependencies follow ESP-IDF v5.3.2. Per-target facts come from idf/chips.py and esptool.
"""

from __future__ import annotations

from ..idf.chips import CHIPS, FLASH_SIZES
from ..idf.partition.rules import PRESET_OPTIONS
from .idf_kconfig_components import APP_FORMAT, COMPONENTS
from .idf_kconfig_examples import EXAMPLES_COMMON, env_caps
from .idf_kconfig_features import FEATURES, SECURITY

__all__ = ["files"]

_IDF_VERSION = (5, 3, 2)
# ESPTOOLPY_FLASHFREQ_<N>M -> the header value esptool writes (esptool_py/Kconfig.projbuild):
# frequencies an image header cannot hold become the nearest one it can.
_ESPTOOL_FREQ = {"120m": "80m", "64m": "48m", "32m": "24m", "16m": "12m", "15m": "20m"}
# Per-target SoC capabilities the set reads (soc/<target>/include/soc/Kconfig.soc_caps.in).
_EMAC = {"esp32", "esp32p4"}
_SPIRAM = {"esp32", "esp32s2", "esp32s3", "esp32p4"}
_BT = {"esp32", "esp32s3", "esp32c2", "esp32c3", "esp32c6", "esp32h2"}
_SECURE_BOOT_V1 = {"esp32"}
_EFUSE_DIS_DOWNLOAD_ICACHE = {"esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c6", "esp32c61"}
# ESP_REV_MIN_FULL's default and ESP_REV_MAX_FULL per target (esp_hw_support/port/<target>/
# Kconfig.hw_support of v5.3.2); the ESP32's minimum is its own ESP32_REV_MIN choice.
_REV_FULL = {
    "esp32": ("ESP32_REV_MIN_FULL", 399),
    "esp32s2": ("0", 199),
    "esp32s3": ("0", 99),
    "esp32c2": ("100", 299),
    "esp32c3": ("3", 199),
    "esp32c6": ("0", 99),
    "esp32h2": ("0", 99),
    "esp32p4": ("1", 199),
    "esp32c5": ("0", 99),
    "esp32c61": ("0", 99),
}
_BOOTLOADER_OFFSET = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32p4": 0x2000, "esp32c5": 0x2000}

_ROOT_HEAD = """\
mainmenu "Espressif IoT Development Framework Configuration"

    orsource "./components/soc/$IDF_TARGET/include/soc/Kconfig.soc_caps.in"

    config IDF_CMAKE
        bool
        default "y"

    config IDF_ENV_FPGA
        bool
        option env="IDF_ENV_FPGA"

    config IDF_TARGET
        string
        default "$IDF_TARGET"
"""
_ROOT_TAIL = """\
    menu "Build type"
        config APP_REPRODUCIBLE_BUILD
            bool "Enable reproducible build"
            default n
            select COMPILER_HIDE_PATHS_MACROS
    endmenu # Build type

    source "$COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE"

    menu "Compiler options"
        choice COMPILER_OPTIMIZATION
            prompt "Optimization Level"
            default COMPILER_OPTIMIZATION_DEBUG
            config COMPILER_OPTIMIZATION_DEBUG
                bool "Debug (-Og)"
            config COMPILER_OPTIMIZATION_SIZE
                bool "Optimize for size (-Os with GCC, -Oz with Clang)"
            config COMPILER_OPTIMIZATION_PERF
                bool "Optimize for performance (-O2)"
            config COMPILER_OPTIMIZATION_NONE
                bool "Debug without optimization (-O0)"
        endchoice

        config COMPILER_HIDE_PATHS_MACROS
            bool "Replace ESP-IDF and project paths in binaries"
            default y
    endmenu # Compiler Options

    menu "Component config"
        source "$COMPONENT_KCONFIGS_SOURCE_FILE"
    endmenu
"""
_ROOT_RENAMES = """\
# sdkconfig replacement configurations for deprecated options formatted as
# CONFIG_DEPRECATED_OPTION CONFIG_NEW_OPTION

CONFIG_OPTIMIZATION_LEVEL_DEBUG               CONFIG_COMPILER_OPTIMIZATION_DEBUG
CONFIG_OPTIMIZATION_LEVEL_RELEASE             CONFIG_COMPILER_OPTIMIZATION_SIZE
CONFIG_COMPILER_OPTIMIZATION_LEVEL_RELEASE    CONFIG_COMPILER_OPTIMIZATION_SIZE
"""

# components/bootloader/sdkconfig.rename of v5.3.2: the lines whose new option the stand-in has.
_BOOTLOADER_RENAMES = """\
CONFIG_APP_ROLLBACK_ENABLE CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
CONFIG_APP_ANTI_ROLLBACK CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
CONFIG_APP_SECURE_VERSION CONFIG_BOOTLOADER_APP_SECURE_VERSION
CONFIG_APP_SECURE_VERSION_SIZE_EFUSE_FIELD CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD
CONFIG_EFUSE_SECURE_VERSION_EMULATE CONFIG_BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE
"""

_BOOTLOADER = """\
menu "Bootloader config"
    config BOOTLOADER_OFFSET_IN_FLASH
        hex
{offsets}        default 0x0

    config BOOTLOADER_COMPILE_TIME_DATE
        bool "Use time/date stamp for bootloader"
        default y
        depends on !APP_REPRODUCIBLE_BUILD

    config BOOTLOADER_PROJECT_VER
        int "Project version"
        default 1
        range 0 4294967295

    choice BOOTLOADER_LOG_LEVEL
        bool "Bootloader log verbosity"
        default BOOTLOADER_LOG_LEVEL_INFO
        config BOOTLOADER_LOG_LEVEL_NONE
            bool "No output"
        config BOOTLOADER_LOG_LEVEL_ERROR
            bool "Error"
        config BOOTLOADER_LOG_LEVEL_WARN
            bool "Warning"
        config BOOTLOADER_LOG_LEVEL_INFO
            bool "Info"
        config BOOTLOADER_LOG_LEVEL_DEBUG
            bool "Debug"
        config BOOTLOADER_LOG_LEVEL_VERBOSE
            bool "Verbose"
    endchoice

    config BOOTLOADER_APP_ROLLBACK_ENABLE
        bool "Enable app rollback support"
        default n

    config BOOTLOADER_APP_ANTI_ROLLBACK
        bool "Enable app anti-rollback support"
        depends on BOOTLOADER_APP_ROLLBACK_ENABLE
        default n

    config BOOTLOADER_APP_SECURE_VERSION
        int "eFuse secure version of app"
        depends on BOOTLOADER_APP_ANTI_ROLLBACK
        default 0

    config BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD
        int "Size of the efuse secure version field"
        depends on BOOTLOADER_APP_ANTI_ROLLBACK
{sec_ver}
    config BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE
        bool "Emulate operations with efuse secure version(only test)"
        default n
        depends on BOOTLOADER_APP_ANTI_ROLLBACK

    config BOOTLOADER_RESERVE_RTC_MEM
        bool

    config BOOTLOADER_CUSTOM_RESERVE_RTC
        bool "Reserve RTC FAST memory for custom purposes"
        depends on SOC_RTC_FAST_MEM_SUPPORTED
        select BOOTLOADER_RESERVE_RTC_MEM
        default n

    config BOOTLOADER_CUSTOM_RESERVE_RTC_SIZE
        hex "Size in bytes for custom purposes"
        default 0
        depends on BOOTLOADER_CUSTOM_RESERVE_RTC
endmenu  # Bootloader

{security}"""

_ESPTOOL = """\
menu "Serial flasher config"
    config ESPTOOLPY_NO_STUB
        bool "Disable download stub"
        default n

    choice ESPTOOLPY_FLASHMODE
        prompt "Flash SPI mode"
        default ESPTOOLPY_FLASHMODE_DIO
        config ESPTOOLPY_FLASHMODE_QIO
            bool "QIO"
        config ESPTOOLPY_FLASHMODE_QOUT
            bool "QOUT"
        config ESPTOOLPY_FLASHMODE_DIO
            bool "DIO"
        config ESPTOOLPY_FLASHMODE_DOUT
            bool "DOUT"
    endchoice

    # The bootloader switches QIO/QOUT on itself: images are flashed in DIO.
    config ESPTOOLPY_FLASHMODE
        string
        default "dio" if ESPTOOLPY_FLASHMODE_QIO
        default "dio" if ESPTOOLPY_FLASHMODE_QOUT
        default "dio" if ESPTOOLPY_FLASHMODE_DIO
        default "dout" if ESPTOOLPY_FLASHMODE_DOUT

    choice ESPTOOLPY_FLASHFREQ
        prompt "Flash SPI speed"
{freq_defaults}{freq_members}    endchoice

    config ESPTOOLPY_FLASHFREQ
        string
{freq_strings}        default '20m' # if no clock can match in bin headers, go with minimal.

    choice ESPTOOLPY_FLASHSIZE
        prompt "Flash size"
        default ESPTOOLPY_FLASHSIZE_2MB
{size_members}    endchoice

    config ESPTOOLPY_FLASHSIZE
        string
{size_strings}
    choice ESPTOOLPY_BEFORE
        prompt "Before flashing"
        default ESPTOOLPY_BEFORE_RESET
        config ESPTOOLPY_BEFORE_RESET
            bool "Reset to bootloader"
        config ESPTOOLPY_BEFORE_NORESET
            bool "No reset"
    endchoice

    config ESPTOOLPY_BEFORE
        string
        default "default_reset" if ESPTOOLPY_BEFORE_RESET
        default "no_reset" if ESPTOOLPY_BEFORE_NORESET

    choice ESPTOOLPY_AFTER
        prompt "After flashing"
        default ESPTOOLPY_AFTER_RESET
        config ESPTOOLPY_AFTER_RESET
            bool "Reset after flashing"
        config ESPTOOLPY_AFTER_NORESET
            bool "Stay in bootloader"
    endchoice

    config ESPTOOLPY_AFTER
        string
        default "hard_reset" if ESPTOOLPY_AFTER_RESET
        default "no_reset" if ESPTOOLPY_AFTER_NORESET

    config ESPTOOLPY_MONITOR_BAUD
        int
        default ESP_CONSOLE_UART_BAUDRATE
endmenu
"""

_TABLE_TITLES = {
    "SINGLE_APP": "Single factory app, no OTA",
    "SINGLE_APP_LARGE": "Single factory app (large), no OTA",
    "TWO_OTA": "Factory app, two OTA definitions",
    "CUSTOM": "Custom partition table CSV",
    "SINGLE_APP_ENCRYPTED_NVS": "Single factory app, no OTA, encrypted NVS",
    "SINGLE_APP_LARGE_ENC_NVS": "Single factory app (large), no OTA, encrypted NVS",
    "TWO_OTA_ENCRYPTED_NVS": "Factory app, two OTA definitions, encrypted NVS",
}
_PARTITION_TABLE = """\
menu "Partition Table"
    choice PARTITION_TABLE_TYPE
        prompt "Partition Table"
        default PARTITION_TABLE_SINGLE_APP
{members}    endchoice

    config PARTITION_TABLE_CUSTOM_FILENAME
        string "Custom partition CSV file" if PARTITION_TABLE_CUSTOM
        default "partitions.csv"

    config PARTITION_TABLE_FILENAME
        string
{filenames}        default PARTITION_TABLE_CUSTOM_FILENAME if PARTITION_TABLE_CUSTOM

    config PARTITION_TABLE_OFFSET
        hex "Offset of partition table"
        default 0x8000

    config PARTITION_TABLE_MD5
        bool "Generate an MD5 checksum for the partition table"
        default y
endmenu
"""


def _targets() -> str:
    from esptool.targets import CHIP_DEFS

    lines = []
    for target in CHIPS:
        lines += [
            f"    config IDF_TARGET_{target.upper()}",
            "        bool",
            f'        default "y" if IDF_TARGET="{target}"',
            "",
        ]
    lines += ["    config IDF_FIRMWARE_CHIP_ID", "        hex"]
    lines += [
        f"        default {CHIP_DEFS[t].IMAGE_CHIP_ID:#06x} if IDF_TARGET_{t.upper()}"
        for t in CHIPS
    ]
    return "\n".join([*lines, "        default 0xFFFF", ""]) + "\n"


def _soc_caps(target: str) -> str:
    """Kconfig.soc_caps.in: the SOC_ capabilities the set above reads."""
    chip = CHIPS[target]
    caps = ["SOC_RTC_FAST_MEM_SUPPORTED"]
    caps += ["SOC_WIFI_SUPPORTED"] if chip.has_wifi else []
    caps += ["SOC_EMAC_SUPPORTED"] if target in _EMAC else []
    caps += ["SOC_SPIRAM_SUPPORTED"] if target in _SPIRAM else []
    caps += ["SOC_BT_SUPPORTED"] if target in _BT else []
    caps += ["SOC_SECURE_BOOT_V1"] if target in _SECURE_BOOT_V1 else []
    caps += ["SOC_EFUSE_DIS_DOWNLOAD_ICACHE"] if target in _EFUSE_DIS_DOWNLOAD_ICACHE else []
    caps += [f"SOC_MEMSPI_SRC_FREQ_{f[:-1]}M_SUPPORTED" for f in chip.flash_freqs]
    names = {"rsa3072": "SOC_SECURE_BOOT_V2_RSA", "ecdsa256": "SOC_SECURE_BOOT_V2_ECC"}
    caps += [names[s] for s in chip.sign_schemes]
    head = "#####################################################\n"
    head += "# This file is auto-generated from SoC caps\n"
    head += "#####################################################\n\n"
    return head + "".join(f"config {cap}\n    bool\n    default y\n\n" for cap in caps)


def _esptool() -> str:
    every = {f for chip in CHIPS.values() for f in chip.flash_freqs}
    freqs = sorted(every, key=lambda f: -int(f[:-1]))
    defaults = "".join(
        f"        default ESPTOOLPY_FLASHFREQ_{chip.default_freq.upper()} "
        f"if IDF_TARGET_{target.upper()}\n"
        for target, chip in CHIPS.items()
    )
    members = "".join(
        f'        config ESPTOOLPY_FLASHFREQ_{f.upper()}\n            bool "{f[:-1]} MHz"\n'
        f"            depends on SOC_MEMSPI_SRC_FREQ_{f[:-1]}M_SUPPORTED\n"
        for f in freqs
    )
    strings = "".join(
        f"        default '{_ESPTOOL_FREQ.get(f, f)}' if ESPTOOLPY_FLASHFREQ_{f.upper()}\n"
        for f in freqs
    )
    sizes = "".join(
        f'        config ESPTOOLPY_FLASHSIZE_{s}\n            bool "{s[:-2]} MB"\n'
        for s in FLASH_SIZES
    )
    size_strings = "".join(
        f'        default "{s}" if ESPTOOLPY_FLASHSIZE_{s}\n' for s in FLASH_SIZES
    )
    return _ESPTOOL.format(
        freq_defaults=defaults,
        freq_members=members,
        freq_strings=strings,
        size_members=sizes,
        size_strings=size_strings,
    )


def _partition_table() -> str:
    # The tree is v5.3.2's: the tables that release ships (two_ota_large came in v5.4).
    shipped = {k: v for k, v in PRESET_OPTIONS.items() if k in _TABLE_TITLES}
    members = "".join(
        f'        config PARTITION_TABLE_{k}\n            bool "{_TABLE_TITLES[k]}"\n'
        for k in shipped
    )
    filenames = "".join(
        f'        default "partitions_{v}.csv" if PARTITION_TABLE_{k}\n'
        for k, v in shipped.items()
        if v
    )
    return _PARTITION_TABLE.format(members=members, filenames=filenames)


def _bootloader() -> str:
    offsets = "".join(
        f"        default {offset:#x} if IDF_TARGET_{target.upper()}\n"
        for target, offset in _BOOTLOADER_OFFSET.items()
    )
    sec_ver = "".join(
        f"        range 1 {chip.secure_version_bits} if IDF_TARGET_{target.upper()}\n"
        f"        default {chip.secure_version_bits} if IDF_TARGET_{target.upper()}\n"
        for target, chip in CHIPS.items()
    )
    return _BOOTLOADER.format(offsets=offsets, sec_ver=sec_ver, security=SECURITY)


def _revisions(target: str) -> str:
    """ESP_REV_MIN_FULL and ESP_REV_MAX_FULL: the chip revisions an image accepts."""
    low, high = _REV_FULL.get(target, ("0", 99))
    return (
        f"\nconfig ESP_REV_MIN_FULL\n    int\n    default {low}\n"
        f"\nconfig ESP_REV_MAX_FULL\n    int\n    default {high}\n"
    )


def files() -> dict[str, str]:
    """Every Kconfig-related file of the virtual tree, by path relative to IDF_PATH."""
    major, minor, patch = _IDF_VERSION
    found = {
        "Kconfig": _ROOT_HEAD + "\n" + _targets() + _ROOT_TAIL,
        "sdkconfig.rename": _ROOT_RENAMES,
        "tools/cmake/version.cmake": (
            f"set(IDF_VERSION_MAJOR {major})\nset(IDF_VERSION_MINOR {minor})\n"
            f"set(IDF_VERSION_PATCH {patch})\n"
        ),
        "components/bootloader/Kconfig.projbuild": _bootloader(),
        "components/bootloader/sdkconfig.rename": _BOOTLOADER_RENAMES,
        "components/esp_app_format/Kconfig.projbuild": APP_FORMAT,
        "components/esptool_py/Kconfig.projbuild": _esptool(),
        "components/partition_table/Kconfig.projbuild": _partition_table(),
        "examples/common_components/protocol_examples_common/Kconfig.projbuild": EXAMPLES_COMMON,
    }
    for target in CHIPS:
        found[f"components/soc/{target}/include/soc/Kconfig.soc_caps.in"] = _soc_caps(target)
        found[f"examples/common_components/env_caps/{target}/Kconfig.env_caps"] = env_caps(target)
    for component, texts in (COMPONENTS | FEATURES).items():
        found |= {f"components/{component}/{name}": text for name, text in texts.items()}
    for target in CHIPS:
        port = f"components/esp_hw_support/port/{target}/Kconfig.hw_support"
        found[port] = found.get(port, "") + _revisions(target)
    return found
