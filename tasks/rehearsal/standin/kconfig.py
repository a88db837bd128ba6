"""The idf.py stand-in's tiny Kconfig model (after ESP-IDF v5.3.2's kconfgen, much reduced).

Owns the option registry, Kconfig parsing, how sdkconfig.defaults and sdkconfig combine, and the
sdkconfig, sdkconfig.h and sdkconfig.json texts.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...errors import warn
from ...idf import partitions
from ...idf.chips import CHIPS, FLASH_SIZES

__all__ = [
    "TABLE_PRESETS",
    "Config",
    "Symbol",
    "Value",
    "flash_settings",
    "kconfig_files",
    "load_values",
    "parse_kconfig",
    "project_symbols",
    "sdkconfig_h",
    "sdkconfig_json",
    "sdkconfig_target",
    "sdkconfig_text",
]

Value = bool | int | str
# PARTITION_TABLE_<member> -> the partitions.preset() it selects; CUSTOM reads a CSV instead.
TABLE_PRESETS = partitions.PRESET_OPTIONS
_ESPTOOL_FREQ = {"120m": "80m", "64m": "48m", "32m": "24m"}  # Kconfig choice -> esptool string
_IDF = "Espressif IoT Development Framework (ESP-IDF)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Symbol:
    """A Kconfig symbol; kind 'choice' is a choice head, whose defaults name a member."""

    name: str
    kind: str  # bool | int | hex | string | choice
    defaults: tuple[tuple[str, str], ...] = ()  # (value text, condition); the first that holds
    prompt: str | None = ""  # None: hidden (assignments ignored); else the prompt's condition
    depends: str = ""
    choice: str = ""
    range: tuple[int, int] | None = None


# One option a line: KIND NAME DEFAULT [depends=C] [prompt=C] [if=C] [range=A..B] [hidden], or
# `choice NAME[/MEMBER_PREFIX] DEFAULT MEMBER[=VALUE]...`; member values make a hidden symbol
# NAME (a string, or an int when all are numbers) that follows the selected member.
_OPTIONS = """
bool APP_REPRODUCIBLE_BUILD n
bool APP_COMPILE_TIME_DATE y depends=!APP_REPRODUCIBLE_BUILD
bool APP_EXCLUDE_PROJECT_VER_VAR n
bool APP_EXCLUDE_PROJECT_NAME_VAR n
bool APP_PROJECT_VER_FROM_CONFIG n
string APP_PROJECT_VER "1" depends=APP_PROJECT_VER_FROM_CONFIG
int APP_RETRIEVE_LEN_ELF_SHA 9 range=8..64
int BOOTLOADER_PROJECT_VER 1 range=0..4294967295
bool BOOTLOADER_COMPILE_TIME_DATE y depends=!APP_REPRODUCIBLE_BUILD
bool BOOTLOADER_APP_ROLLBACK_ENABLE n
bool BOOTLOADER_APP_ANTI_ROLLBACK n depends=BOOTLOADER_APP_ROLLBACK_ENABLE
int BOOTLOADER_APP_SECURE_VERSION 0 depends=BOOTLOADER_APP_ANTI_ROLLBACK
bool SECURE_SIGNED_APPS_NO_SECURE_BOOT n
bool SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT y depends=SECURE_SIGNED_APPS_NO_SECURE_BOOT
bool SECURE_BOOT_BUILD_SIGNED_BINARIES y depends=SECURE_SIGNED_APPS_NO_SECURE_BOOT
bool ESPTOOLPY_NO_STUB n
choice ESPTOOLPY_FLASHMODE DIO QIO=dio QOUT=dio DIO=dio DOUT=dout
choice ESPTOOLPY_FLASHFREQ {freq} {freqs}
choice ESPTOOLPY_FLASHSIZE 2MB {sizes}
choice ESPTOOLPY_BEFORE RESET RESET=default_reset NORESET=no_reset
choice ESPTOOLPY_AFTER RESET RESET=hard_reset NORESET=no_reset
int ESP_CONSOLE_UART_BAUDRATE 115200 range=1200..4000000
int ESPTOOLPY_MONITOR_BAUD ESP_CONSOLE_UART_BAUDRATE hidden
choice PARTITION_TABLE_TYPE/PARTITION_TABLE SINGLE_APP {tables}
string PARTITION_TABLE_CUSTOM_FILENAME "partitions.csv" prompt=PARTITION_TABLE_CUSTOM
string PARTITION_TABLE_FILENAME PARTITION_TABLE_CUSTOM_FILENAME hidden if=PARTITION_TABLE_CUSTOM
hex PARTITION_TABLE_OFFSET 0x8000
bool PARTITION_TABLE_MD5 y
choice COMPILER_OPTIMIZATION DEBUG DEBUG SIZE PERF NONE
bool COMPILER_HIDE_PATHS_MACROS y
choice LOG_DEFAULT_LEVEL INFO NONE=0 ERROR=1 WARN=2 INFO=3 DEBUG=4 VERBOSE=5
int FREERTOS_HZ 100 range=1..1000
int ESP_MAIN_TASK_STACK_SIZE 3584
bool LWIP_IPV6 y
bool MBEDTLS_CERTIFICATE_BUNDLE y
choice MBEDTLS_DEFAULT_CERTIFICATE_BUNDLE/MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT FULL FULL CMN NONE
bool MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE n depends=MBEDTLS_CERTIFICATE_BUNDLE
string MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH "" depends=MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE
int MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS 200 depends=MBEDTLS_CERTIFICATE_BUNDLE range=1..200
bool ESP_TLS_INSECURE n
bool ESP_TLS_SKIP_SERVER_CERT_VERIFY n depends=ESP_TLS_INSECURE
bool ESP_HTTP_CLIENT_ENABLE_HTTPS y
bool ESP_HTTPS_OTA_DECRYPT_CB n
bool ESP_HTTPS_OTA_ALLOW_HTTP n
"""
# protocol_examples_common (examples/common_components), pulled in through idf_component.yml.
_EXAMPLES_COMMON = """
bool EXAMPLE_CONNECT_WIFI y if=SOC_WIFI_SUPPORTED depends=SOC_WIFI_SUPPORTED
bool EXAMPLE_WIFI_SSID_PWD_FROM_STDIN n depends=EXAMPLE_CONNECT_WIFI
string EXAMPLE_WIFI_SSID "myssid" depends=EXAMPLE_CONNECT_WIFI
string EXAMPLE_WIFI_PASSWORD "mypassword" depends=EXAMPLE_CONNECT_WIFI
int EXAMPLE_WIFI_CONN_MAX_RETRY 6 depends=EXAMPLE_CONNECT_WIFI
bool EXAMPLE_CONNECT_ETHERNET y if=!SOC_WIFI_SUPPORTED
bool EXAMPLE_CONNECT_IPV4 y hidden
bool EXAMPLE_CONNECT_IPV6 y depends=LWIP_IPV6
"""


def _registry(target: str) -> list[Symbol]:
    """The ESP-IDF options this stand-in knows for `target` (facts §2.5, §6, §8; our words)."""
    from esptool.targets import CHIP_DEFS

    chip, loader = CHIPS[target], CHIP_DEFS[target]
    text = _OPTIONS.format(
        freq=chip.default_freq.upper(),
        freqs=" ".join(f"{f.upper()}={_ESPTOOL_FREQ.get(f, f)}" for f in chip.flash_freqs),
        sizes=" ".join(f"{s}={s}" for s in FLASH_SIZES),
        tables=" ".join(TABLE_PRESETS),
    )
    first = [
        f'string IDF_TARGET "{target}" hidden',
        f"bool IDF_TARGET_{target.upper()} y hidden",
        f"hex IDF_FIRMWARE_CHIP_ID {loader.IMAGE_CHIP_ID:#x} hidden",
        f"hex BOOTLOADER_OFFSET_IN_FLASH {loader.BOOTLOADER_FLASH_OFFSET:#x} hidden",
        "bool SOC_WIFI_SUPPORTED y hidden" if chip.has_wifi else "",
    ]
    symbols = _table_symbols("\n".join(first) + text + "\n".join(_signing_lines(target)))
    filename = symbols.index(next(s for s in symbols if s.name == "PARTITION_TABLE_FILENAME"))
    pairs = [
        (f'"partitions_{v}.csv"', f"PARTITION_TABLE_{k}") for k, v in TABLE_PRESETS.items() if v
    ]
    symbols[filename] = replace(
        symbols[filename], defaults=symbols[filename].defaults + tuple(pairs)
    )
    return symbols


def _signing_lines(target: str) -> list[str]:
    """SECURE_SIGNED_APPS_SCHEME with the members `target` supports (SOC_SECURE_BOOT_V2_*)."""
    schemes = CHIPS[target].sign_schemes
    members = {"rsa3072": "RSA_SCHEME", "ecdsa256": "ECDSA_V2_SCHEME"}
    depends = "SECURE_SIGNED_APPS_NO_SECURE_BOOT"
    lines = []
    if target == "esp32":  # RSA needs revision v3.0 there
        lines.append(
            "choice ESP32_REV_MIN_FULL/ESP32_REV_MIN 0 0=0 1=100 1_1=101 2=200 3=300 3_1=301"
        )
        depends += "&&ESP32_REV_MIN_3"
    names = " ".join(members[s] for s in schemes)
    lines.append(
        f"choice SECURE_SIGNED_APPS_SCHEME/SECURE_SIGNED_APPS {names.split()[0]} "
        f"{names} depends={depends}"
    )
    if "ecdsa256" in schemes:
        lines.append(
            "choice SECURE_BOOT_ECDSA_KEY_LEN_SIZE/SECURE_BOOT_ECDSA_KEY_LEN 256_BITS 192_BITS "
            "256_BITS depends=SECURE_SIGNED_APPS_ECDSA_V2_SCHEME"
        )
    return lines


def _table_symbols(text: str) -> list[Symbol]:
    symbols: list[Symbol] = []
    for line in filter(None, map(str.split, text.splitlines())):
        kind, name, default, *rest = line
        extra = dict(word.partition("=")[::2] for word in rest)
        if kind == "choice":
            symbols += _choice(name, default, rest, extra.get("depends", ""))
            continue
        low, _, high = extra.get("range", "").partition("..")
        symbols.append(
            Symbol(
                name=name,
                kind=kind,
                defaults=((default, extra.get("if", "")),),
                prompt=None if "hidden" in extra else extra.get("prompt", ""),
                depends=extra.get("depends", ""),
                range=(int(low), int(high)) if high else None,
            )
        )
    return symbols


def _choice(name: str, default: str, members: Sequence[str], depends: str) -> list[Symbol]:
    name, _, prefix = name.partition("/")
    head = f"choice {name}"
    pairs = [m.partition("=")[::2] for m in members if not m.startswith("depends=")]
    found = [Symbol(name=head, kind="choice", defaults=((f"{prefix or name}_{default}", ""),))]
    found += [Symbol(name=f"{prefix or name}_{m}", kind="bool", choice=head) for m, _ in pairs]
    if any(value for _, value in pairs):
        kind = "int" if all(v.isdigit() for _, v in pairs) else "string"
        shown = [(v if kind == "int" else f'"{v}"', f"{prefix or name}_{m}") for m, v in pairs]
        found.append(Symbol(name=name, kind=kind, defaults=tuple(shown), prompt=None))
    return [replace(s, depends=depends) for s in found]


def parse_kconfig(text: str) -> list[Symbol]:
    """The symbols of a Kconfig file: config/choice, type, prompt, default, range, `depends on`.

    `if` blocks, `select`, `visible if` and menus' own dependencies are beyond this model.
    """
    symbols: list[Symbol] = []
    current: dict[str, object] | None = None
    choice, help_indent = "", -1
    for line in text.splitlines():
        indent, stripped = len(line) - len(line.lstrip()), line.strip()
        if help_indent >= 0 and (not stripped or indent > help_indent):
            continue
        help_indent = -1
        word, _, rest = stripped.partition(" ")
        rest = rest.strip()
        if not stripped or word.startswith("#"):
            continue
        if word in (
            "config",
            "menuconfig",
            "choice",
            "endchoice",
            "menu",
            "endmenu",
            "if",
            "endif",
            "comment",
            "source",
            "rsource",
            "osource",
            "orsource",
        ):
            if current is not None:
                symbols.append(Symbol(**current))  # type: ignore[arg-type]
            current = None
            if word in ("config", "menuconfig"):
                current = {"name": rest, "kind": "bool", "prompt": None, "choice": choice}
            elif word == "choice":
                choice = f"choice {rest or len(symbols)}"
                current = {"name": choice, "kind": "choice"}
            elif word == "endchoice":
                choice = ""
        elif word in ("help", "---help---"):
            help_indent = indent
        elif current is not None:
            _kconfig_attribute(current, word, rest)
    return symbols


def _kconfig_attribute(current: dict[str, object], word: str, rest: str) -> None:
    value, _, cond = rest.partition(" if ")
    if word in ("bool", "int", "hex", "string", "prompt"):
        if current["kind"] != "choice" and word != "prompt":
            current["kind"] = word
        if value.startswith('"') or word == "prompt":
            current["prompt"] = cond.strip()
    elif word == "default":
        current["defaults"] = (*current.get("defaults", ()), (value.strip(), cond.strip()))  # type: ignore[misc]
    elif word == "range" and len(parts := value.split()) == 2:
        with contextlib.suppress(ValueError):  # a range bounded by symbols is not modelled
            current["range"] = (int(parts[0], 0), int(parts[1], 0))
    elif word == "depends" and rest.startswith("on "):
        current["depends"] = rest[3:].strip()


def _holds(cond: str, values: Mapping[str, Value]) -> bool:
    """A condition `A`, `!A`, `A = "x"` or `A != x`, joined by &&; anything richer counts as met."""
    if not cond.strip():
        return True
    if "||" in cond or "(" in cond:
        return True
    return all(_term(term.strip(), values) for term in cond.split("&&"))


def _term(term: str, values: Mapping[str, Value]) -> bool:
    negate = term.startswith("!")
    term = term.lstrip("! ")
    if match := re.fullmatch(r'(\w+)\s*(!?=)\s*"?([^"]*)"?', term):
        result = (_text(values.get(match[1], "")) == match[3]) != (match[2] == "!=")
    else:
        result = values.get(term) is True
    return result != negate


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


def _parse(kind: str, raw: str) -> Value | None:
    raw = raw.strip()
    if kind == "bool":
        return {"y": True, "n": False}.get(raw)
    if kind in ("int", "hex"):
        try:
            return int(raw, 16 if kind == "hex" else 10)
        except ValueError:
            return None
    if kind == "string":
        quoted = len(raw) >= 2 and raw[0] == raw[-1] == '"'
        return re.sub(r"\\(.)", r"\1", raw[1:-1]) if quoted else None
    return raw


def _format(kind: str, value: Value) -> str:
    if kind == "hex" and isinstance(value, int):
        return hex(value)
    if kind == "string":
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return _text(value)


def _assign(
    symbols: Mapping[str, Symbol], user: dict[str, Value], name: str, raw: str, where: str
) -> None:
    sym = symbols.get(name)
    if sym is None or sym.kind == "choice":
        warn(f"unknown kconfig symbol '{name}' assigned to '{raw}' in {where}")
        return
    value = _parse(sym.kind, raw)
    if value is None:
        warn(f"the value '{raw}' is not a valid {sym.kind} for {name} in {where}; it is ignored")
        return
    if sym.range and sym.kind in ("int", "hex") and not sym.range[0] <= int(value) <= sym.range[1]:
        low, high = sym.range
        warn(f"the value '{raw}' of {name} in {where} is outside its range {low}..{high}; ignored")
        return
    if sym.choice and value is True:  # selecting a choice member unselects the others
        user.update({s.name: False for s in symbols.values() if s.choice == sym.choice})
    user[name] = value


def _assignments(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        if match := re.fullmatch(r"CONFIG_(\w+)=(.*)|# CONFIG_(\w+) is not set", line.strip()):
            yield (match[1], match[2]) if match[1] else (match[3], "n")


def _resolve(symbols: Mapping[str, Symbol], user: Mapping[str, Value]) -> dict[str, Value]:
    """Every visible symbol's value, in declaration order (choice heads left out)."""
    values: dict[str, Value] = {}
    for sym in symbols.values():
        if not _holds(sym.depends, values):
            continue
        if sym.kind == "choice":
            members = [s.name for s in symbols.values() if s.choice == sym.name]
            picked = [m for m in members if user.get(m) is True] or [str(_default(sym, values))]
            values[sym.name] = picked[-1] if picked[-1] in members else members[0]
        elif sym.choice:
            if sym.choice in values:
                values[sym.name] = values[sym.choice] == sym.name
        elif sym.prompt is not None and _holds(sym.prompt, values) and sym.name in user:
            values[sym.name] = user[sym.name]
        else:
            values[sym.name] = _default(sym, values)
    return {name: value for name, value in values.items() if symbols[name].kind != "choice"}


def _default(sym: Symbol, values: Mapping[str, Value]) -> Value:
    for raw, cond in sym.defaults:
        if _holds(cond, values):
            if raw in values:  # a default that names another symbol takes its value
                return values[raw]
            if (value := _parse(sym.kind, raw)) is not None:
                return value
    return {"bool": False, "int": 0, "hex": 0}.get(sym.kind, "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """What the configure step decided: Kconfig values, and the project's name, version, table."""

    target: str
    symbols: Mapping[str, Symbol]
    values: Mapping[str, Value]
    sdkconfig: Path
    defaults: tuple[Path, ...]
    name: str
    version: str
    table: partitions.PartitionTable | None
    missing_csv: str = ""
    kconfigs: tuple[Path, ...] = field(default=())


# --- a project's options, and the files that set them ----------------------------------------


def kconfig_files(project: Path) -> list[Path]:
    """The project's own Kconfig files: main's, then each component's."""
    found = [project / "main" / "Kconfig.projbuild", project / "main" / "Kconfig"]
    found += sorted((project / "components").glob("*/Kconfig*"))
    return [p for p in found if p.is_file()]


def project_symbols(project: Path, target: str, kconfigs: Sequence[Path]) -> dict[str, Symbol]:
    """The registry, protocol_examples_common's options when used, and the project's `kconfigs`."""
    found = _registry(target)
    manifest = project / "main" / "idf_component.yml"
    if manifest.is_file() and "protocol_examples_common" in manifest.read_text():
        found += _table_symbols(_EXAMPLES_COMMON)
    for path in kconfigs:
        found += parse_kconfig(path.read_text())
    return {sym.name: sym for sym in found}


def sdkconfig_target(path: Path) -> str:
    """CONFIG_IDF_TARGET of an sdkconfig (or defaults) file; empty when absent."""
    text = path.read_text() if path.is_file() else ""
    match = re.search(r'^CONFIG_IDF_TARGET="([^"]*)"', text, re.M)
    return match[1] if match else ""


def load_values(
    symbols: Mapping[str, Symbol],
    *,
    defaults: Sequence[Path],
    target: str,
    sdkconfig: Path,
    menu: str,
) -> dict[str, Value]:
    """Each defaults file then its `.<target>` twin, then sdkconfig, then menuconfig's sets."""
    user: dict[str, Value] = {}
    files = [x for path in defaults for x in (path, path.with_name(f"{path.name}.{target}"))]
    for path in [*files, sdkconfig]:  # defaults first: an existing sdkconfig keeps its values
        for name, raw in _assignments(path.read_text() if path.is_file() else ""):
            _assign(symbols, user, name, raw, str(path))
    menu_lines = re.findall(r'CONFIG_\w+=(?:"(?:[^"\\]|\\.)*"|[^;]*)', menu)
    for name, raw in _assignments("\n".join(menu_lines)):
        _assign(symbols, user, name, raw, "menuconfig")
    return _resolve(symbols, user)


# --- what the configure step writes ------------------------------------------------------------


def sdkconfig_text(config: Config, idf_ver: str) -> str:
    """sdkconfig as kconfgen writes it; a symbol set to n is `# CONFIG_X is not set`."""
    title = f"# {_IDF} ({idf_ver.removeprefix('v')}) Project Configuration"
    lines = ["#", "# Automatically generated file. DO NOT EDIT.", title, "#"]
    for name, value in config.values.items():
        shown = _format(config.symbols[name].kind, value)
        lines.append(f"# CONFIG_{name} is not set" if value is False else f"CONFIG_{name}={shown}")
    return "\n".join(lines) + "\n"


def sdkconfig_h(config: Config) -> str:
    """build/config/sdkconfig.h: one #define per symbol that is not n."""
    lines = ["/* Automatically generated file; DO NOT EDIT */", "#pragma once"]
    for name, value in config.values.items():
        if value is not False:
            shown = "1" if value is True else _format(config.symbols[name].kind, value)
            lines.append(f"#define CONFIG_{name} {shown}")
    return "\n".join(lines) + "\n"


def sdkconfig_json(values: Mapping[str, Value]) -> str:
    """build/config/sdkconfig.json: typed values, names without CONFIG_."""
    return json.dumps(dict(values), indent=4) + "\n"


def flash_settings(values: Mapping[str, Value]) -> tuple[str, str, str]:
    """(flash mode, size, frequency) as esptool spells them."""
    return tuple(str(values[f"ESPTOOLPY_FLASH{k}"]) for k in ("MODE", "SIZE", "FREQ"))  # type: ignore[return-value]
