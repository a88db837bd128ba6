"""Per-target facts that ESP-IDF's Kconfig (v5.3 to v6.0) decides and esptool does not know.

Flash frequencies follow components/esptool_py/Kconfig.projbuild; the build checks that every
rendered option took effect, so a wrong entry here surfaces as a named option, not a silent drop.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHIPS", "FLASH_MODES", "FLASH_SIZES", "TARGETS", "Chip"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Chip:
    """One IDF_TARGET's facts."""

    target: str
    family: str  # as esp-web-tools and ESPHome name it ("ESP32-C3")
    flash_freqs: tuple[str, ...]  # Kconfig ESPTOOLPY_FLASHFREQ_<N>M choices, fastest first
    default_freq: str
    has_wifi: bool
    # Secure Boot V2 app-signing schemes (SOC_SECURE_BOOT_V2_RSA / _ECC in soc_caps).
    sign_schemes: tuple[str, ...]
    # CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD's default and maximum: the highest
    # secure_version, as it is burnt one eFuse bit per version.
    secure_version_bits: int
    since: str = "5.3"  # the first ESP-IDF release that supports it (not as a preview target)
    # CONFIG_BOOTLOADER_OFFSET_IN_FLASH (bootloader/Kconfig.projbuild), which the v5.5+ build
    # passes to gen_esp32part as --primary-bootloader-offset.
    bootloader_offset: int = 0x0
    # The chip revision of the silicon on sale, as esptool and ESP_REV_MIN_FULL count it
    # (major * 100 + minor): what the virtual board reports.
    revision: int = 0


def _chip(
    target: str,
    family: str,
    freqs: str,
    default: str,
    *,
    wifi: bool = True,
    sign: str = "rsa3072",
    sec_ver_bits: int = 16,
    since: str = "5.3",
    bootloader_offset: int = 0x0,
    revision: int = 0,
) -> Chip:
    return Chip(
        target=target,
        family=family,
        flash_freqs=tuple(freqs.split()),
        default_freq=default,
        has_wifi=wifi,
        sign_schemes=tuple(sign.split()),
        secure_version_bits=sec_ver_bits,
        since=since,
        bootloader_offset=bootloader_offset,
        revision=revision,
    )


CHIPS: dict[str, Chip] = {
    chip.target: chip
    for chip in (
        # RSA needs chip revision v3.0 (ESP32_REV_MIN_FULL >= 300); ECDSA is Secure Boot V1 only.
        _chip(
            "esp32",
            "ESP32",
            "80m 40m 26m 20m",
            "40m",
            sec_ver_bits=32,
            bootloader_offset=0x1000,
            revision=301,
        ),
        _chip(
            "esp32s2", "ESP32-S2", "80m 40m 26m 20m", "80m", bootloader_offset=0x1000, revision=100
        ),
        _chip("esp32s3", "ESP32-S3", "120m 80m 40m 20m", "80m", revision=2),
        _chip(
            "esp32c2",
            "ESP32-C2",
            "60m 30m 20m 15m",
            "60m",
            sign="ecdsa256",
            sec_ver_bits=4,
            revision=101,
        ),
        # ESP-IDF v5.3 builds for v0.3 and later by default (ESP32C3_REV_MIN_3).
        _chip("esp32c3", "ESP32-C3", "80m 40m 26m 20m", "80m", revision=4),
        _chip("esp32c6", "ESP32-C6", "80m 40m 20m", "80m", sign="rsa3072 ecdsa256", revision=1),
        # H2 and P4 have no radio for Wi-Fi; protocol_examples_common falls back to Ethernet.
        _chip(
            "esp32h2",
            "ESP32-H2",
            "64m 32m 16m",
            "64m",
            wifi=False,
            sign="rsa3072 ecdsa256",
            revision=1,
        ),
        _chip(
            "esp32p4",
            "ESP32-P4",
            "80m 40m 20m",
            "80m",
            wifi=False,
            sign="rsa3072 ecdsa256",
            bootloader_offset=0x2000,
            revision=100,
        ),
        # Preview targets in v5.3/v5.4 (tools/idf_py_actions/constants.py), supported from v5.5.
        _chip(
            "esp32c5",
            "ESP32-C5",
            "120m 80m 40m 20m",
            "80m",
            sign="rsa3072 ecdsa256",
            sec_ver_bits=9,
            since="5.5",
            bootloader_offset=0x2000,
            revision=100,
        ),
        _chip(
            "esp32c61",
            "ESP32-C61",
            "120m 80m 40m 20m",
            "80m",
            sign="ecdsa256",
            since="5.5",
            revision=100,
        ),
    )
}

TARGETS: tuple[str, ...] = tuple(CHIPS)
FLASH_MODES: tuple[str, ...] = ("qio", "qout", "dio", "dout")
# ESPTOOLPY_FLASHSIZE choices, as gen_esp32part's --flash-size takes them.
FLASH_SIZES: tuple[str, ...] = ("1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB")
