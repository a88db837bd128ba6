"""sdkconfig.defaults per app: the CONFIG_ options project.yaml implies, as Kconfig reads them.

Option names are ESP-IDF v5.3.2's (esptool_py, partition_table, esp_app_format Kconfig; the OTA
examples' Kconfig.projbuild; protocol_examples_common).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.yamlsource import HexInt
from . import kconfig_rules

if TYPE_CHECKING:
    from ..config.model import App, Project, SdkValue

__all__ = [
    "SECRET_OPTIONS",
    "SdkconfigPlan",
    "format_value",
    "owner_of",
    "parse",
    "plan",
    "redacted",
    "url_option",
    "wifi_options",
    "yaml_lines",
]

# Options this tool derives from other project.yaml keys: setting them under sdkconfig: would
# make the rendered table, flash settings or URL disagree with what the build uses.
_OWNERS: tuple[tuple[str, str], ...] = (
    ("CONFIG_IDF_TARGET", "target"),
    ("CONFIG_ESPTOOLPY_FLASHSIZE", "flash.size"),
    ("CONFIG_ESPTOOLPY_FLASHMODE", "flash.mode"),
    ("CONFIG_ESPTOOLPY_FLASHFREQ", "flash.freq"),
    ("CONFIG_PARTITION_TABLE_OFFSET", "partitions.table_offset"),
    ("CONFIG_PARTITION_TABLE_", "partitions.layout"),
    ("CONFIG_APP_PROJECT_VER", "apps.<app>.version"),
    ("CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL", "ota.url"),
    ("CONFIG_EXAMPLE_FIRMWARE_UPG_URL", "ota.url"),
    ("CONFIG_EXAMPLE_WIFI_SSID", "wifi.ssid"),
    ("CONFIG_EXAMPLE_WIFI_PASSWORD", "wifi.password"),
)

# simple_ota_example, advanced_https_ota and pre_encrypted_ota name it ..._UPGRADE_URL;
# native_ota_example spells it ..._UPG_URL (facts §1.2).
_URL_OPTION = "CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL"
_NATIVE_URL_OPTION = "CONFIG_EXAMPLE_FIRMWARE_UPG_URL"


_PROJECT_WIDE = "project.yaml sdkconfig"

# protocol_examples_common's Wi-Fi options, which the OTA examples use (facts §1).
_EXAMPLE_SSID = "CONFIG_EXAMPLE_WIFI_SSID"
_EXAMPLE_PASSWORD = "CONFIG_EXAMPLE_WIFI_PASSWORD"
# Options whose values are secrets: never printed, and fingerprinted only as a slow digest.
SECRET_OPTIONS = frozenset({_EXAMPLE_PASSWORD})


@functools.lru_cache(maxsize=16)
def _digest(value: str) -> str:
    # Salted and slow: the fingerprint changes with the password, yet doit's database and
    # `doit info` do not give it away to a dictionary attack.
    key = hashlib.pbkdf2_hmac("sha256", value.encode(), b"esp-ota-doit fingerprint", 100_000)
    return f"pbkdf2-sha256:{key.hex()}"


def redacted(name: str, value: str, secrets: Collection[str] = SECRET_OPTIONS) -> str:
    """`value`, or a digest of it when option `name` is one of the `secrets`."""
    return _digest(value) if name in secrets and value not in ('""', "") else value


def owner_of(name: str) -> str | None:
    """The project.yaml key that sets option `name`, if this tool derives it."""
    return next((key for prefix, key in _OWNERS if name.startswith(prefix)), None)


def wifi_options(app: App) -> tuple[str, str]:
    """The app's Kconfig options for the Wi-Fi SSID and password."""
    return (app.wifi_ssid_option or _EXAMPLE_SSID, app.wifi_password_option or _EXAMPLE_PASSWORD)


def url_option(app: App) -> str:
    if app.url_option:
        return app.url_option
    return _NATIVE_URL_OPTION if app.idf_subpath.endswith("native_ota_example") else _URL_OPTION


def format_value(value: SdkValue) -> str:
    """A value as sdkconfig spells it: y / n, decimal or 0x-hex numbers, quoted strings."""
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, HexInt):
        return hex(value)
    if isinstance(value, int):
        return str(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


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
            if ssid == _EXAMPLE_SSID:
                title = "Wi-Fi (protocol_examples_common)"
                wifi: dict[str, SdkValue] = {"CONFIG_EXAMPLE_CONNECT_WIFI": True}
            else:
                title, wifi = f"Wi-Fi (apps.{app.name}.wifi_*_option)", {}
            wifi |= {ssid: project.wifi.ssid, password: project.wifi.password}
            yield title, wifi
    yield _PROJECT_WIDE, dict(project.sdkconfig)
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
        new, inverted = kconfig_rules.new_name(kconfig, name)
        if inverted and isinstance(value, bool):
            value = not value
        symbol = kconfig.symbol(new)
        if symbol is None and title == _PROJECT_WIDE:
            continue  # e.g. an lwip option and an app without lwip (MINIMAL_BUILD)
        text = kconfig_rules.typed(value, symbol)
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


def parse(text: str) -> dict[str, str]:
    """An sdkconfig file as {CONFIG_NAME: value as written}; `# X is not set` reads as `n`."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:].removesuffix(" is not set")] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            name, _, value = line.partition("=")
            values[name] = value
    return values


def _yaml_value(value: str) -> str:
    if value in ("y", "n"):
        return "true" if value == "y" else "false"
    return value  # numbers, 0x-hex and "quoted strings" read the same in YAML


def yaml_lines(app: str, before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The project.yaml lines that make the change from `before` to `after` stick."""
    changed = sorted(name for name in after if before.get(name) != after[name])
    lines = [f"apps:\n  {app}:\n    sdkconfig:"] if changed else []
    for name in changed:
        owner = owner_of(name)
        if owner:
            lines.append(f"      # {name}: set {owner} instead")
        else:
            lines.append(f"      {name}: {_yaml_value(after[name])}")
    return lines
