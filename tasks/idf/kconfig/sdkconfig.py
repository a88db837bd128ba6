"""sdkconfig files as ESP-IDF writes them: values spelled by Kconfig type, parsed back, the
options this tool derives from project.yaml keys, and secrets kept out of fingerprints.

Option names are ESP-IDF v5.3.2's (esptool_py, partition_table, esp_app_format Kconfig; the OTA
examples' Kconfig.projbuild; protocol_examples_common).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection

__all__ = [
    "EXAMPLE_PASSWORD_OPTION",
    "EXAMPLE_SSID_OPTION",
    "EXAMPLE_URL_OPTION",
    "SECRET_OPTIONS",
    "HexInt",
    "SdkValue",
    "format_value",
    "json_value",
    "owner_of",
    "parse",
    "quote",
    "redacted",
    "unquote",
    "yaml_lines",
    "yaml_value",
]

SdkValue = bool | int | str  # a CONFIG_ value as project.yaml gives it


class HexInt(int):
    """An int written in hex (0x...) in project.yaml; sdkconfig writes it back in hex."""

    def __repr__(self) -> str:
        return hex(self)


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

# simple_ota_example, advanced_https_ota and pre_encrypted_ota name it ..._UPGRADE_URL (facts
# §1.2); any other app's is found in its Kconfig (config/loader.py) or named by url_option.
EXAMPLE_URL_OPTION = "CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL"


# protocol_examples_common's Wi-Fi options, which the OTA examples use (docs/esp-idf.md §1).
EXAMPLE_SSID_OPTION = "CONFIG_EXAMPLE_WIFI_SSID"
EXAMPLE_PASSWORD_OPTION = "CONFIG_EXAMPLE_WIFI_PASSWORD"
# Options whose values are secrets: never printed, and fingerprinted only as a slow digest.
SECRET_OPTIONS = frozenset({EXAMPLE_PASSWORD_OPTION})


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


def quote(text: str) -> str:
    """A string as sdkconfig and Kconfig write it: kconfgen's (kconfiglib's) escaping gives a
    backslash and a double quote a backslash each."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


_ESCAPED = re.compile(r"\\(.)")


def unquote(value: str) -> str:
    """The text of a quoted sdkconfig or Kconfig string (`quote` undone, left to right as
    kconfiglib's unescape reads it); a value without quotes as it is."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return _ESCAPED.sub(r"\1", value[1:-1])
    return value


_NUMBER = r"-?\d+"  # compiled by re on first use
_HEX = r"0[xX][0-9a-fA-F]+"


def json_value(value: str) -> bool | int | str:
    """An sdkconfig value as written, typed as config/sdkconfig.json holds it: y / n as a bool,
    numbers as int, strings unquoted (anything else, such as a tristate's m, as written)."""
    if value in ("y", "n"):
        return value == "y"
    if value.startswith('"'):
        return unquote(value)
    if re.fullmatch(_HEX, value):
        return int(value, 16)
    return int(value, 10) if re.fullmatch(_NUMBER, value) else value


def format_value(value: SdkValue) -> str:
    """A value as sdkconfig spells it: y / n, decimal or 0x-hex numbers, quoted strings."""
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, HexInt):
        return hex(value)
    if isinstance(value, int):
        return str(value)
    return quote(value)


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


def yaml_value(value: str) -> str:
    """An sdkconfig value as project.yaml spells it (ESP-IDF's string escapes are YAML's)."""
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
            lines.append(f"      {name}: {yaml_value(after[name])}")
    return lines
