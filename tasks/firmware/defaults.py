"""Each app's sdkconfig.defaults, planned from project.yaml: the options it implies (target,
flash, the rendered partition table, version, security, the OTA URL and Wi-Fi for OTA clients),
then the project-wide and the app's own, each written by its Kconfig type where that is known.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config.model import App, Project
from ..idf.kconfig import symbols
from ..idf.kconfig.sdkconfig import (
    EXAMPLE_PASSWORD_OPTION,
    EXAMPLE_SSID_OPTION,
    EXAMPLE_URL_OPTION,
    format_value,
    redacted,
)
from ..idf.kconfig.symbols import HexInt, SdkValue

__all__ = ["PROJECT_WIDE", "SdkconfigPlan", "plan", "url_option", "wifi_options"]

PROJECT_WIDE = "project.yaml sdkconfig"  # the group title of the project-wide options


def wifi_options(app: App) -> tuple[str, str]:
    """The app's Kconfig options for the Wi-Fi SSID and password."""
    ssid = app.wifi_ssid_option or EXAMPLE_SSID_OPTION
    return ssid, app.wifi_password_option or EXAMPLE_PASSWORD_OPTION


def url_option(app: App) -> str:
    """The app's Kconfig option for the firmware URL: the one project.yaml names or the loader
    found in the app's Kconfig; where its folder is not here (an idf: app without ESP-IDF), the
    OTA examples' usual one, which the post-build check refuses if the app has no such option."""
    return app.url_option or EXAMPLE_URL_OPTION


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SdkconfigPlan:
    """The options for one app, in groups with a comment each; later groups win."""

    app: str
    groups: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    secret_options: tuple[str, ...]  # those set to a non-empty secret (the Wi-Fi password)

    @property
    def holds_secret(self) -> bool:
        return bool(self.secret_options)

    def __repr__(self) -> str:
        # `doit info` prints action arguments: never the option values (the Wi-Fi password).
        count = sum(len(items) for _, items in self.groups)
        return f"SdkconfigPlan(app={self.app!r}, {count} options)"

    def to_json(self) -> dict[str, object]:
        """The fingerprint doit stores and `doit info` prints: secrets only as a digest."""
        return {
            "app": self.app,
            "groups": [
                [
                    title,
                    [[name, redacted(name, value, self.secret_options)] for name, value in items],
                ]
                for title, items in self.groups
            ],
            "secret_options": list(self.secret_options),
        }

    def sections(self) -> list[tuple[str, list[str]]]:
        """Each group's title and its options as defaults-file lines (what the template writes)."""
        return [
            (
                title,
                [
                    f"# {name} is not set" if value == "n" else f"{name}={value}"
                    for name, value in items
                ],
            )
            for title, items in self.groups
        ]


def _core(
    project: Project, app: App, partitions_csv: Path
) -> Iterator[tuple[str, dict[str, SdkValue]]]:
    flash = project.flash
    yield "target", {"CONFIG_IDF_TARGET": project.target}
    yield (
        "flash",
        {
            f"CONFIG_ESPTOOLPY_FLASHSIZE_{flash.size_text}": True,
            f"CONFIG_ESPTOOLPY_FLASHMODE_{flash.mode.upper()}": True,
            f"CONFIG_ESPTOOLPY_FLASHFREQ_{flash.freq.upper()}": True,
        },
    )
    yield (
        "partition table",
        {
            "CONFIG_PARTITION_TABLE_CUSTOM": True,
            "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME": str(partitions_csv),
            "CONFIG_PARTITION_TABLE_OFFSET": HexInt(project.partitions.table_offset),
        },
    )
    yield (
        "app version",
        {
            "CONFIG_APP_PROJECT_VER_FROM_CONFIG": True,
            "CONFIG_APP_PROJECT_VER": app.version,
            "CONFIG_APP_REPRODUCIBLE_BUILD": True,
        },
    )
    yield from _security(project, app)
    if app.ota_client and project.ota is not None:
        yield "OTA client", {url_option(app): project.ota.url_text}
        if project.wifi is not None:
            ssid, password = wifi_options(app)
            if ssid == EXAMPLE_SSID_OPTION:
                title = "Wi-Fi (protocol_examples_common)"
                wifi: dict[str, SdkValue] = {"CONFIG_EXAMPLE_CONNECT_WIFI": True}
            else:
                title, wifi = f"Wi-Fi (apps.{app.name}.wifi_*_option)", {}
            wifi |= {ssid: project.wifi.ssid, password: project.wifi.password}
            yield title, wifi
    yield PROJECT_WIDE, dict(project.sdkconfig)
    yield f"project.yaml apps.{app.name}.sdkconfig", dict(app.sdkconfig)


def _security(project: Project, app: App) -> Iterator[tuple[str, dict[str, SdkValue]]]:
    """Signed app verification without hardware secure boot, app rollback, anti-rollback
    (components/bootloader/Kconfig.projbuild of ESP-IDF v5.3.2)."""
    ota = project.ota
    if ota is not None and ota.sign is not None:
        scheme = "RSA_SCHEME" if ota.sign == "rsa3072" else "ECDSA_V2_SCHEME"
        options: dict[str, SdkValue] = {
            "CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT": True,
            "CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT": True,
            f"CONFIG_SECURE_SIGNED_APPS_{scheme}": True,
            # Signed after the build with espsecure (signing.py): the key never enters the
            # build, and the unsigned image stays reproducible (signatures are randomised).
            "CONFIG_SECURE_BOOT_BUILD_SIGNED_BINARIES": False,
        }
        if ota.sign == "ecdsa256":
            options["CONFIG_SECURE_BOOT_ECDSA_KEY_LEN_256_BITS"] = True
        if project.target == "esp32":
            # SECURE_BOOT_V2_RSA_SUPPORTED needs ESP32_REV_MIN_FULL >= 300 on the ESP32.
            options["CONFIG_ESP32_REV_MIN_3"] = True
        yield "signed apps (ota.sign)", options
    if ota is not None and ota.rollback:
        yield "app rollback (ota.rollback)", {"CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE": True}
    if project.anti_rollback:
        yield (
            f"anti-rollback (apps.{app.name}.secure_version)",
            {
                "CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK": True,
                "CONFIG_BOOTLOADER_APP_SECURE_VERSION": app.secure_version or 0,
            },
        )


def _written(
    project: Project, app: App, title: str, options: dict[str, SdkValue]
) -> dict[str, str]:
    """Each option by the name and in the type of the app's Kconfig, when it is known:
    renamed options by their new name, project-wide ones only where the app has them."""
    kconfig = project.kconfig_of(app.name)
    if kconfig is None:
        return {name: format_value(value) for name, value in options.items()}
    written: dict[str, str] = {}
    for name, value in options.items():
        new, inverted = symbols.new_name(kconfig, name)
        if inverted and isinstance(value, bool):
            value = not value
        symbol = kconfig.symbol(new)
        if symbol is None and title == PROJECT_WIDE:
            continue  # e.g. an lwip option and an app without lwip (MINIMAL_BUILD)
        text = symbols.typed(value, symbol)
        written[new] = text if text is not None else format_value(value)
    return written


def plan(project: Project, app: App, *, partitions_csv: Path) -> SdkconfigPlan:
    """The defaults file for `app`: derived options first, then project-wide, then per-app ones."""
    groups = [(title, options) for title, options in _core(project, app, partitions_csv) if options]
    # A later group wins; drop the earlier copy so each option appears once.
    seen: set[str] = set()
    kept: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for title, options in reversed(groups):
        written = _written(project, app, title, options)
        items = tuple((name, value) for name, value in written.items() if name not in seen)
        seen.update(written)
        if items:
            kept.append((title, items))
    secret = bool(app.ota_client and project.wifi is not None and project.wifi.password)
    return SdkconfigPlan(
        app=app.name,
        groups=tuple(reversed(kept)),
        secret_options=(wifi_options(app)[1],) if secret else (),
    )
