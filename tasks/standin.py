"""A stand-in for idf.py (ESP-IDF v5.3.2's CLI and build outputs) for machines without ESP-IDF.

`python -m tasks.standin <args>` takes idf.py's options and actions, keeps a small Kconfig model
(sdkconfig, SDKCONFIG_DEFAULTS, choices) and writes the build outputs of facts §5.5. The app and
bootloader are real ESP images made with esptool's image classes; the .elf is *not* an ELF (the
0x7f 'ELF' magic, then the stand-in's inputs): only its SHA-256 matters, in the app descriptor.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tasks import partitions
from tasks.chips import CHIPS, FLASH_SIZES, TARGETS
from tasks.errors import ConfigError, ProjectError, warn
from tasks.render import write_if_changed

__all__ = ["main"]

Value = bool | int | str
_IDF_VER = "v5.3.2"
_MB = 1024 * 1024
_USAGE = "Usage: idf.py [OPTIONS] COMMAND1 [ARGS]... [COMMAND2 [ARGS]...]..."
_TARGETS_CMAKE = "tools/cmake/targets.cmake"
_KEPT_ENTRIES = ("SDKCONFIG", "SDKCONFIG_DEFAULTS")  # cache entries later calls inherit
_STOPPED = {
    "ninja": "ninja: build stopped: subcommand failed.",
    "cmake": "-- Configuring incomplete, errors occurred!",
}
_Table = partitions.PartitionTable
# The tools' own wording, verbatim (str.format fields), so that searching for it still works.
_TEXTS = {
    "idf": "Espressif IoT Development Framework (ESP-IDF)",
    "env-target": "Project sdkconfig '{cfg}' was generated for target '{old}', but environment "
    "variable IDF_TARGET is set to '{new}'. Run 'idf.py set-target {new}' to generate new "
    "sdkconfig file for target {new}.",
    "cli-target": "Target '{new}' specified on command line is not consistent with target '{old}' "
    "in the environment.",
    "cache-target": "IDF_TARGET '{old}' in CMake cache does not match currently selected "
    "IDF_TARGET '{new}'. To change the target, clear the build directory and sdkconfig file, and "
    "build the project again.",
    "sdkconfig-target": "Target '{old}' in sdkconfig '{cfg}' does not match currently selected "
    "IDF_TARGET '{new}'. To change the target, clear the build directory and sdkconfig file, and "
    "build the project again.",
    "csv-not-found": "Partition table CSV {csv} not found. Change custom partition CSV path in "
    "menuconfig.",
    "app-size": "{name} binary size {size:#x} bytes. Smallest app partition is {smallest:#x} "
    "bytes. {free:#x} bytes ({pct}%) free.",
    "part": "  - Part '{p.name}' {p.type}/{p.subtype} @ {p.offset:#x} size {p.size:#x} "
    "(overflow {over:#x})",
    "bootloader-big": "Error: Bootloader binary size {size:#x} bytes is too large for partition "
    "table offset {offset:#x}. Bootloader binary can be maximum {room:#x} ({room}) bytes unless "
    "the partition table offset is increased in the Partition Table section of the project "
    "configuration menu.",
    "flash-size": "Change the flash size in menuconfig under the 'Serial Flasher Config' menu.",
    "not-a-build-dir": "Directory '{build}' doesn't seem to be a CMake build directory. Refusing "
    "to automatically delete files in this directory. Delete the directory manually to 'clean' it.",
    "refuse-clean": "Refusing to automatically delete files in directory containing '{name}'. "
    "Delete files manually if you're sure.",
    "generator": "Build is configured for generator '{old}' not '{new}'. Run 'idf.py fullclean' "
    "to start again.",
    "build-is-project": "Setting the build directory to the project directory is not supported. "
    "Suggest dropping --build-dir option, the default is a 'build' subdirectory inside the "
    "project directory.",
}
_VALUE_OPTIONS = {"-C": "project_dir", "--project-dir": "project_dir", "-B": "build_dir"}
_VALUE_OPTIONS |= {"--build-dir": "build_dir", "-D": "define", "--define-cache-entry": "define"}
_VALUE_OPTIONS |= {"-G": "generator", "--generator": "generator", "-p": "port", "--port": "port"}
_VALUE_OPTIONS |= {"-b": "baud", "--baud": "baud"}
_FLAGS = {"--ccache", "--no-ccache", "-v", "--verbose", "--no-hints", "-n", "--no-warnings", "-w"}
_FLAGS |= {"--cmake-warn-uninitialized", "--preview", "--dry-run", "--version", "--list-targets"}
# The stand-in builds everything for any build action: it has no per-target ninja graph.
_ACTIONS = {"build": "all", "all": "all", "app": "all", "bootloader": "all"}
_ACTIONS |= {"partition-table": "all", "reconfigure": "reconfigure", "set-target": "set-target"}
_ACTIONS |= {"fullclean": "fullclean", "menuconfig": "menuconfig"}
_TABLES = {"SINGLE_APP": "singleapp", "SINGLE_APP_LARGE": "singleapp_large", "TWO_OTA": "two_ota"}
_TABLES |= {"CUSTOM": "", "SINGLE_APP_ENCRYPTED_NVS": "singleapp_encr_nvs"}
_TABLES |= {"SINGLE_APP_LARGE_ENC_NVS": "singleapp_large_encr_nvs"}
_TABLES |= {"TWO_OTA_ENCRYPTED_NVS": "two_ota_encr_nvs"}
_LOG_LEVELS = ("NONE", "ERROR", "WARN", "INFO", "DEBUG", "VERBOSE")
_ESPTOOL_FREQ = {"120m": "80m", "64m": "48m", "32m": "24m"}  # Kconfig choice -> esptool string
_NOT_COMPILED = {"PARTITION_TABLE_CUSTOM_FILENAME", "PARTITION_TABLE_FILENAME"}  # paths only
_CMAKE_KEYWORDS = {"SRCS", "SRC_DIRS", "EXCLUDE_SRCS", "INCLUDE_DIRS", "PRIV_INCLUDE_DIRS"}
_CMAKE_KEYWORDS |= {"REQUIRES", "PRIV_REQUIRES", "LDFRAGMENTS", "REQUIRED_IDF_TARGETS", "KCONFIG"}
_CMAKE_KEYWORDS |= {"EMBED_FILES", "EMBED_TXTFILES", "KCONFIG_PROJBUILD", "WHOLE_ARCHIVE"}


class _Fatal(ProjectError):
    """What idf.py reports before exiting 2; `tool` names the cmake or ninja run that failed."""

    def __init__(self, lines: Sequence[str], *, tool: str = "", failed: str = "") -> None:
        super().__init__("\n".join(lines))
        self.lines, self.tool, self.failed = list(lines), tool, failed


def _cmake_error(text: str, where: str = "tools/cmake/project.cmake") -> _Fatal:
    return _Fatal([f"CMake Error at {where} (message):", f"  {text}"], tool="cmake")


# --- Kconfig model ---------------------------------------------------------------------------


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
        tables=" ".join(_TABLES),
    )
    first = [
        f'string IDF_TARGET "{target}" hidden',
        f"bool IDF_TARGET_{target.upper()} y hidden",
        f"hex IDF_FIRMWARE_CHIP_ID {loader.IMAGE_CHIP_ID:#x} hidden",
        f"hex BOOTLOADER_OFFSET_IN_FLASH {loader.BOOTLOADER_FLASH_OFFSET:#x} hidden",
        "bool SOC_WIFI_SUPPORTED y hidden" if chip.has_wifi else "",
    ]
    symbols = _table_symbols("\n".join(first) + text)
    filename = symbols.index(next(s for s in symbols if s.name == "PARTITION_TABLE_FILENAME"))
    pairs = [(f'"partitions_{v}.csv"', f"PARTITION_TABLE_{k}") for k, v in _TABLES.items() if v]
    symbols[filename] = replace(
        symbols[filename], defaults=symbols[filename].defaults + tuple(pairs)
    )
    return symbols


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


# --- the project: name, version, component files --------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ctx:
    """The global options of one idf.py call."""

    project: Path
    build: Path
    defines: Mapping[str, str]
    idf_ver: str
    generator: str = "Ninja"
    ccache: bool = False
    baud: str = "460800"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Config:
    """What the configure step decided."""

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


def _project_name(project: Path) -> str:
    path = project / "CMakeLists.txt"
    if not path.is_file():
        raise _Fatal([f"CMakeLists.txt not found in project directory {project}"])
    match = re.search(r"^\s*project\s*\(\s*([^\s)]+)", path.read_text(), re.M | re.I)
    if match is None:
        raise _cmake_error("No project() command is present in the top-level CMakeLists.txt")
    return match[1]


def _project_version(project: Path, values: Mapping[str, Value]) -> str:
    """PROJECT_VER in the order of facts §6.3; `git describe` is not tried."""
    if values.get("APP_PROJECT_VER_FROM_CONFIG") is True:
        return str(values["APP_PROJECT_VER"])
    cmake = (project / "CMakeLists.txt").read_text()
    if match := re.search(r'set\s*\(\s*PROJECT_VER\s+"?([^")]*)"?\s*\)', cmake, re.I):
        return match[1]
    if (project / "version.txt").is_file():
        return next(iter((project / "version.txt").read_text().splitlines()), "")
    if match := re.search(r"project\s*\([^)]*\bVERSION\s+([^\s)]+)", cmake, re.I):
        return match[1]
    return "1"  # after `git describe`, which the stand-in does not try


def _component_args(project: Path) -> dict[str, list[str]]:
    """idf_component_register()'s keyword arguments in main/CMakeLists.txt."""
    path = project / "main" / "CMakeLists.txt"
    text = re.sub(r"#.*", "", path.read_text()) if path.is_file() else ""
    match = re.search(r"idf_component_register\s*\((.*?)\)", text, re.S)
    groups: dict[str, list[str]] = {}
    key = ""
    for token in re.findall(r'"[^"]*"|[^\s"]+', match[1] if match else ""):
        token = token.strip('"')
        if token in _CMAKE_KEYWORDS:
            key = token
            groups.setdefault(key, [])
        elif key:
            groups[key].append(token)
    return groups


def _embedded(project: Path, args: Mapping[str, list[str]]) -> list[tuple[str, bytes]]:
    """(symbol stem, bytes) of EMBED_FILES and EMBED_TXTFILES; text files get their NUL."""
    main, found = project / "main", []
    for kind in ("EMBED_FILES", "EMBED_TXTFILES"):
        for raw in args.get(kind, []):
            text = raw.replace("${project_dir}", str(project)).replace(
                "${PROJECT_DIR}", str(project)
            )
            text = text.replace("${CMAKE_CURRENT_SOURCE_DIR}", str(main))
            path = main / text.replace("${COMPONENT_DIR}", str(main))
            if not path.is_file():
                stem = path.name
                message = f"ninja: error: '{path}', needed by 'esp-idf/main/{stem}.S', "
                raise _Fatal([message + "missing and no known rule to make it"], tool="ninja")
            data = path.read_bytes() + (b"\0" if kind == "EMBED_TXTFILES" else b"")
            found.append((re.sub(r"\W", "_", path.name), data))
    return found


def _sources(project: Path) -> list[tuple[str, bytes]]:
    """Every file of the app's own components, by path relative to the project."""
    roots = [project / "main", project / "components"]
    files = sorted(p for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file())
    return [(p.relative_to(project).as_posix(), p.read_bytes()) for p in files]


def _kconfig_files(project: Path) -> list[Path]:
    found = [project / "main" / "Kconfig.projbuild", project / "main" / "Kconfig"]
    found += sorted((project / "components").glob("*/Kconfig*"))
    return [p for p in found if p.is_file()]


def _symbols(project: Path, target: str, kconfigs: Sequence[Path]) -> dict[str, Symbol]:
    found = _registry(target)
    manifest = project / "main" / "idf_component.yml"
    if manifest.is_file() and "protocol_examples_common" in manifest.read_text():
        found += _table_symbols(_EXAMPLES_COMMON)
    for path in kconfigs:
        found += parse_kconfig(path.read_text())
    return {sym.name: sym for sym in found}


# --- configure: target, sdkconfig, defaults, CMakeCache --------------------------------------


def _read_cache(build: Path) -> dict[str, str]:
    path = build / "CMakeCache.txt"
    text = path.read_text() if path.is_file() else ""
    return {m[1]: m[2] for m in re.finditer(r"^(\w+):\w+=(.*)$", text, re.M)}


def _cache_text(ctx: _Ctx, entries: Mapping[str, str], target: str) -> str:
    lines = ["# CMakeCache of the ESP-IDF stand-in (tasks/standin.py)"]
    lines += [
        f"CMAKE_HOME_DIRECTORY:INTERNAL={ctx.project}",
        f"CMAKE_GENERATOR:INTERNAL={ctx.generator}",
    ]
    lines += [f"{k}:UNINITIALIZED={v}" for k, v in sorted(entries.items()) if k != "IDF_TARGET"]
    return "\n".join([*lines, f"IDF_TARGET:STRING={target}"]) + "\n"


def _sdkconfig_target(path: Path) -> str:
    text = path.read_text() if path.is_file() else ""
    match = re.search(r'^CONFIG_IDF_TARGET="([^"]*)"', text, re.M)
    return match[1] if match else ""


def _target(
    ctx: _Ctx, entries: Mapping[str, str], sdkconfig: Path, defaults: Sequence[Path]
) -> str:
    """IDF_TARGET as facts §5.3 choose it, with idf.py's and CMake's mismatch errors."""
    env, cached = os.environ.get("IDF_TARGET", ""), _read_cache(ctx.build).get("IDF_TARGET", "")
    old, given = _sdkconfig_target(sdkconfig), ctx.defines.get("IDF_TARGET", "")
    if env and old and env != old:
        raise _Fatal([_TEXTS["env-target"].format(cfg=sdkconfig, old=old, new=env)])
    if env and given and env != given:
        raise _Fatal([_TEXTS["cli-target"].format(old=env, new=given)])
    explicit = env or entries.get("IDF_TARGET", "")
    if cached and explicit and explicit != cached:
        raise _cmake_error(_TEXTS["cache-target"].format(old=cached, new=explicit), _TARGETS_CMAKE)
    requested = explicit or cached
    if requested and old and requested != old:
        text = _TEXTS["sdkconfig-target"].format(cfg=sdkconfig, old=old, new=requested)
        raise _cmake_error(text, _TARGETS_CMAKE)
    target = requested or old or next(filter(None, map(_sdkconfig_target, defaults)), "")
    if target and target not in CHIPS:
        text = f"IDF_TARGET '{target}' is not supported: use one of {' '.join(TARGETS)}"
        raise _cmake_error(text, _TARGETS_CMAKE)
    if not target:
        print("-- IDF_TARGET not set, using default target: esp32")
    return target or "esp32"


def _defaults_files(project: Path, entries: Mapping[str, str]) -> tuple[Path, ...]:
    listed = entries.get("SDKCONFIG_DEFAULTS", os.environ.get("SDKCONFIG_DEFAULTS"))
    if listed is None:
        default = project / "sdkconfig.defaults"
        return (default,) if default.is_file() else ()
    paths = tuple(project / item for item in listed.split(";") if item)  # absolute items stay so
    for path in paths:
        if not path.is_file():
            raise _cmake_error(f"SDKCONFIG_DEFAULTS '{path}' does not exist.")
    return paths


def _load(ctx: _Ctx, *, menu: str, force_target: str) -> _Config:
    cache = _read_cache(ctx.build)
    entries = {k: v for k, v in cache.items() if k in _KEPT_ENTRIES} | dict(ctx.defines)
    entries |= {"IDF_TARGET": force_target} if force_target else {}
    sdkconfig = ctx.project / entries.get("SDKCONFIG", "sdkconfig")
    defaults = _defaults_files(ctx.project, entries)
    target = _target(ctx, entries, sdkconfig, defaults)
    kconfigs = tuple(_kconfig_files(ctx.project))
    symbols = _symbols(ctx.project, target, kconfigs)
    user: dict[str, Value] = {}
    files = [x for path in defaults for x in (path, path.with_name(f"{path.name}.{target}"))]
    for path in [*files, sdkconfig]:  # defaults first: an existing sdkconfig keeps its values
        for name, raw in _assignments(path.read_text() if path.is_file() else ""):
            _assign(symbols, user, name, raw, str(path))
    menu_lines = re.findall(r'CONFIG_\w+=(?:"(?:[^"\\]|\\.)*"|[^;]*)', menu)
    for name, raw in _assignments("\n".join(menu_lines)):
        _assign(symbols, user, name, raw, "menuconfig")
    values = _resolve(symbols, user)
    table, missing = _table(ctx.project, values)
    version = _project_version(ctx.project, values)
    name = _project_name(ctx.project)
    return _Config(target=target, symbols=symbols, values=values, sdkconfig=sdkconfig,
                   defaults=defaults, name=name, version=version, table=table,
                   missing_csv=missing, kconfigs=kconfigs)  # fmt: skip


def _table(project: Path, values: Mapping[str, Value]) -> tuple[_Table | None, str]:
    """The partition table (and no CSV path), or None and the custom CSV that is missing."""
    offset = int(values["PARTITION_TABLE_OFFSET"])
    try:
        if values.get("PARTITION_TABLE_CUSTOM") is not True:
            member = next(k for k in _TABLES if values.get(f"PARTITION_TABLE_{k}") is True)
            preset = partitions.preset(_TABLES[member])
            return partitions.layout(preset, table_offset=offset, path=()), ""
        csv = project / str(values["PARTITION_TABLE_CUSTOM_FILENAME"])
        if not csv.is_file():
            print(f"CMake Warning: {_TEXTS['csv-not-found'].format(csv=csv)}", file=sys.stderr)
            return None, str(csv)
        return partitions.from_csv(csv.read_text(), table_offset=offset), ""
    except (partitions.PartitionCsvError, ConfigError) as err:
        text = err.message if isinstance(err, ConfigError) else str(err)
        raise _cmake_error(text, "components/partition_table/project_include.cmake") from None


def _sdkconfig_text(config: _Config, idf_ver: str) -> str:
    version = idf_ver.removeprefix("v")
    lines = ["#", "# Automatically generated file. DO NOT EDIT.", f"# {_TEXTS['idf']} ({version}) "
             "Project Configuration", "#"]  # fmt: skip
    for name, value in config.values.items():
        shown = _format(config.symbols[name].kind, value)
        lines.append(f"# CONFIG_{name} is not set" if value is False else f"CONFIG_{name}={shown}")
    return "\n".join(lines) + "\n"


def _sdkconfig_h(config: _Config) -> str:
    lines = ["/* Automatically generated file; DO NOT EDIT */", "#pragma once"]
    for name, value in config.values.items():
        if value is not False:
            shown = "1" if value is True else _format(config.symbols[name].kind, value)
            lines.append(f"#define CONFIG_{name} {shown}")
    return "\n".join(lines) + "\n"


# --- images: esptool's image classes with synthetic segments ---------------------------------


def _flash_settings(values: Mapping[str, Value]) -> tuple[str, str, str]:
    return tuple(str(values[f"ESPTOOLPY_FLASH{k}"]) for k in ("MODE", "SIZE", "FREQ"))  # type: ignore[return-value]


def _image(
    target: str, values: Mapping[str, Value], segments: Sequence[tuple[str, int, bytes]], entry: int
) -> bytes:
    """A saved image: header from the config, esptool's checksum and appended SHA-256."""
    from esptool.bin_image import ELFSection
    from esptool.cmds import FLASH_MODES as ESPTOOL_MODES
    from esptool.targets import CHIP_DEFS

    chip, (mode, size, freq) = CHIP_DEFS[target], _flash_settings(values)
    image = chip.BOOTLOADER_IMAGE()
    image.flash_mode = ESPTOOL_MODES[mode]
    image.flash_size_freq = chip.FLASH_SIZES[size] + chip.FLASH_FREQUENCY[freq]
    image.entrypoint = entry
    image.max_rev_full = 0xFFFF  # elf2image's 'no maximum'; CONFIG_ESP_REV_MAX_FULL is not modelled
    # esptool moves a segment named .flash.appdesc first even where IROM sits below DROM (C6, H2).
    image.segments = [ELFSection(name.encode(), addr, data, 0) for name, addr, data in segments]
    return bytes(image.save(None))


def _filler(seed: bytes, size: int) -> bytes:
    return hashlib.shake_256(seed).digest(size)


def _stamp(old: Path, inputs: str, wanted: bool) -> int:
    """Build time in ns, or 0; kept from the previous .elf when its inputs are unchanged (as
    ninja would not recompile)."""
    if not wanted:
        return 0
    head = old.read_bytes()[:200] if old.is_file() else b""
    match = re.search(rb"inputs (\w+)\nstamp (\d+)\n", head)
    return int(match[2]) if match and match[1].decode() == inputs else time.time_ns()


def _elf(inputs: str, stamp: int, body: bytes) -> bytes:
    ident = b"\x7fELF\x01\x01\x01" + bytes(9)
    text = f"ESP-IDF stand-in: not a real ELF\ninputs {inputs}\nstamp {stamp or ''}\n"
    return ident + text.encode() + body


def _app_desc(config: _Config, idf_ver: str, stamp: int, elf: bytes) -> bytes:
    values = config.values
    moment = dt.datetime.fromtimestamp(stamp / 1e9) if stamp else None
    when = (
        (f"{moment:%H:%M:%S}", f"{moment:%b} {moment.day:2d} {moment.year}") if moment else ("", "")
    )
    version = "" if values.get("APP_EXCLUDE_PROJECT_VER_VAR") is True else config.version
    name = "" if values.get("APP_EXCLUDE_PROJECT_NAME_VAR") is True else config.name
    secure = int(values.get("BOOTLOADER_APP_SECURE_VERSION", 0))
    fields = (version, name, *when, idf_ver)
    # esp_app_desc_t (facts §4.3): 256 bytes; strings cut to fit with their NUL; eFuse block
    # revisions 0.0 .. 0.99.
    text = [f.encode()[: (32 if i in (0, 1, 4) else 16) - 1] for i, f in enumerate(fields)]
    return struct.pack(
        "<II8s32s32s16s16s32s32sHH76s",
        0xABCD5432,
        secure,
        b"",
        *text,
        hashlib.sha256(elf).digest(),
        0,
        99,
        b"",
    )


def _wants_stamp(values: Mapping[str, Value], option: str) -> bool:
    return values.get(option) is True or os.environ.get("STANDIN_STAMP_TIME") == "1"


def _app(ctx: _Ctx, config: _Config, extra: int) -> tuple[bytes, bytes, str]:
    """(elf, bin, map text) of the app; `extra` more bytes of code pad it."""
    from esptool.targets import CHIP_DEFS

    sources, embedded = _sources(ctx.project), _embedded(ctx.project, _component_args(ctx.project))
    compiled = {k: v for k, v in config.values.items() if k not in _NOT_COMPILED}
    files = [[path, hashlib.sha256(data).hexdigest()] for path, data in sources]
    inputs = [config.name, config.version, config.target, ctx.idf_ver, compiled, files]
    seed = hashlib.sha256(json.dumps(inputs).encode()).digest()
    rodata = b"".join(b"_binary_%s_start\0" % stem.encode() + data for stem, data in embedded)
    rodata += _filler(seed + b"rodata", 2048 + seed[0] * 16)
    rodata += bytes(-len(rodata) % 4)
    size = 4096 + seed[1] * 32 + min(sum(len(data) for _, data in sources), 32768) + extra
    code = _filler(seed + b"text", size)
    digest = hashlib.sha256(seed + rodata + code).hexdigest()
    wanted = _wants_stamp(config.values, "APP_COMPILE_TIME_DATE")
    stamp = _stamp(ctx.build / f"{config.name}.elf", digest, wanted)
    elf = _elf(digest, stamp, rodata + code)
    chip = CHIP_DEFS[config.target]
    drom, drom_addr = (
        _app_desc(config, ctx.idf_ver, stamp, elf) + rodata,
        chip.DROM_MAP_START + 0x20,
    )
    after = 0x20 + len(drom) + 8  # the code's file offset; its address must match it mod 64K
    irom = chip.IROM_MAP_START + (after // 0x10000 + 1) * 0x10000 + after % 0x10000
    segments = [(".flash.appdesc", drom_addr, drom), (".flash.text", irom, code)]
    layout = [(".flash.appdesc", drom_addr, 256), (".flash.rodata", drom_addr + 256, len(rodata))]
    lines = [f"Link map of {config.name}.elf (ESP-IDF stand-in: no linker ran)"]
    lines += [f"{n:<16}0x{a:08x} 0x{s:x}" for n, a, s in [*layout, (".flash.text", irom, size)]]
    return elf, _image(config.target, config.values, segments, irom), "\n".join(lines) + "\n"


def _bootloader(ctx: _Ctx, config: _Config) -> tuple[bytes, bytes]:
    """(elf, bin): RAM segments only, DRAM starting with an esp_bootloader_desc_t."""
    from esptool.targets import CHIP_DEFS

    chip, values = CHIP_DEFS[config.target], config.values
    keys = ("FLASHMODE", "FLASHFREQ", "FLASHSIZE")
    inputs = [
        config.target,
        ctx.idf_ver,
        values["PARTITION_TABLE_OFFSET"],
        values["LOG_DEFAULT_LEVEL"],
    ]
    digest = hashlib.sha256(json.dumps(inputs + [values[f"ESPTOOLPY_{k}"] for k in keys]).encode())
    seed = digest.hexdigest()
    wanted = _wants_stamp(values, "BOOTLOADER_COMPILE_TIME_DATE")
    stamp = _stamp(ctx.build / "bootloader" / "bootloader.elf", seed, wanted)
    when = f"{dt.datetime.fromtimestamp(stamp / 1e9):%b %d %Y %H:%M:%S}" if stamp else ""
    version = int(values["BOOTLOADER_PROJECT_VER"])
    desc = struct.pack(
        "<B3sI32s24s16s", 0x50, b"", version, ctx.idf_ver.encode(), when.encode(), b""
    )
    dram = desc + _filler(seed.encode() + b"dram", 0x400)
    iram = _filler(seed.encode() + b"iram", 0x3000)
    start = {name: low for low, _, name in reversed(chip.MEMORY_MAP)}
    iram_addr = start["IRAM"] + 0x8000
    segments = [
        (".dram0.bootdesc", start["DRAM"] + 0x20000, dram),
        (".iram_loader.text", iram_addr, iram),
    ]
    return _elf(seed, stamp, dram + iram), _image(config.target, values, segments, iram_addr)


# --- configure-time outputs ------------------------------------------------------------------


def _flash_files(config: _Config) -> dict[str, tuple[int, str]]:
    """The images `idf.py flash` writes: name -> (offset, path relative to the build dir)."""
    offset = int(config.values["BOOTLOADER_OFFSET_IN_FLASH"])
    files = {"bootloader": (offset, "bootloader/bootloader.bin")}
    table = config.table
    if table is None:
        return files
    boot = table.factory or next(iter(table.ota_slots), None)
    if boot is not None:
        files["app"] = (boot.offset, f"{config.name}.bin")
    files["partition-table"] = (table.offset, "partition_table/partition-table.bin")
    if table.otadata is not None:
        files["otadata"] = (table.otadata.offset, "ota_data_initial.bin")
    return files


def _flasher_args(config: _Config) -> str:
    values, files = config.values, _flash_files(config)
    mode, size, freq = _flash_settings(values)
    data: dict[str, object] = {
        "write_flash_args": ["--flash_mode", mode, "--flash_size", size, "--flash_freq", freq],
        "flash_settings": {"flash_mode": mode, "flash_size": size, "flash_freq": freq},
        "flash_files": {hex(off): path for off, path in sorted(files.values())},
    }
    data |= {
        key: {"offset": hex(off), "file": path, "encrypted": "false"}
        for key, (off, path) in files.items()
    }
    data["extra_esptool_args"] = {
        "after": values["ESPTOOLPY_AFTER"],
        "before": values["ESPTOOLPY_BEFORE"],
        "stub": values["ESPTOOLPY_NO_STUB"] is not True,
        "chip": config.target,
    }
    return json.dumps(data, indent=4) + "\n"


def _args_file(config: _Config, keys: Sequence[str]) -> str:
    mode, size, freq = _flash_settings(config.values)
    files = _flash_files(config)
    lines = [f"--flash_mode {mode} --flash_freq {freq} --flash_size {size}"]
    lines += [f"{hex(off)} {path}" for off, path in sorted(files[k] for k in keys if k in files)]
    return "\n".join(lines) + "\n"


def _description(ctx: _Ctx, config: _Config) -> str:
    xtensa = config.target in ("esp32", "esp32s2", "esp32s3")
    prefix = f"xtensa-{config.target}-elf-" if xtensa else "riscv32-esp-elf-"
    components = ["bootloader", "esp_app_format", "esptool_py", "main", "partition_table"]
    if "EXAMPLE_CONNECT_IPV4" in config.values:
        components.append("protocol_examples_common")
    gdbinit = ctx.build / "prefix_map_gdbinit" if config.values["APP_REPRODUCIBLE_BUILD"] else ""
    data = {
        "version": "1.1",
        "project_name": config.name,
        "project_version": config.version,
        "project_path": str(ctx.project),
        "idf_path": os.environ.get("IDF_PATH", ""),
        "build_dir": str(ctx.build),
        "config_file": str(config.sdkconfig),
        "config_defaults": ";".join(map(str, config.defaults)),
        "bootloader_elf": str(ctx.build / "bootloader" / "bootloader.elf"),
        "app_elf": f"{config.name}.elf",
        "app_bin": f"{config.name}.bin",
        "build_type": "flash_app",
        "git_revision": ctx.idf_ver,
        "target": config.target,
        "rev": "",
        "min_rev": "",
        "max_rev": "",
        "phy_data_partition": "",
        "monitor_baud": config.values["ESPTOOLPY_MONITOR_BAUD"],
        "monitor_toolprefix": prefix,
        "c_compiler": f"{prefix}gcc",
        "config_environment": {
            "COMPONENT_KCONFIGS": "",
            "COMPONENT_KCONFIGS_PROJBUILD": ";".join(map(str, config.kconfigs)),
        },
        "common_component_reqs": [],
        "build_components": components,
        "build_component_paths": [str(ctx.project / "main")],
        "build_component_info": {},
        "all_component_info": {},
        "debug_prefix_map_gdbinit": str(gdbinit),
    }
    return json.dumps(data, indent=4) + "\n"


def _configure_outputs(ctx: _Ctx, config: _Config) -> dict[Path, tuple[bytes | str, int]]:
    build, values = ctx.build, config.values
    json_values = dict(values)
    outputs: dict[Path, tuple[bytes | str, int]] = {
        config.sdkconfig: (
            _sdkconfig_text(config, ctx.idf_ver),
            0o600,
        ),  # may hold the Wi-Fi password
        build / "config" / "sdkconfig.json": (json.dumps(json_values, indent=4) + "\n", 0o600),
        build / "config" / "sdkconfig.h": (_sdkconfig_h(config), 0o600),
        build / "project_description.json": (_description(ctx, config), 0o644),
        build / "flasher_args.json": (_flasher_args(config), 0o644),
    }
    for name, keys in (
        ("flash_args", ("bootloader", "app", "partition-table", "otadata")),
        ("flash_app_args", ("app",)),
        ("flash_bootloader_args", ("bootloader",)),
    ):
        outputs[build / name] = (_args_file(config, keys), 0o644)
    outputs[build / "flash_project_args"] = outputs[build / "flash_args"]
    if values["APP_REPRODUCIBLE_BUILD"]:
        idf = os.environ.get("IDF_PATH", "")
        pairs = [("/IDF", idf)] * bool(idf) + [
            ("/IDF_PROJECT", str(ctx.project)),
            ("/IDF_BUILD", str(build)),
        ]
        outputs[build / "prefix_map_gdbinit"] = (
            "".join(f"set substitute-path {a} {b}\n" for a, b in pairs),
            0o644,
        )
    return outputs


def _unchanged(path: Path, data: bytes | str) -> bool:
    content = data.encode() if isinstance(data, str) else data
    return path.is_file() and path.read_bytes() == content


def _configure(ctx: _Ctx, *, announce: bool, menu: str = "", force_target: str = "") -> _Config:
    """Run the configure step; print CMake's lines when it ran or ninja re-ran it."""
    if os.environ.get("STANDIN_FAIL") == "cmake":
        raise _cmake_error("STANDIN_FAIL=cmake: configure failure requested", "CMakeLists.txt")
    if announce:
        _announce_cmake(ctx, force_target)
    config = _load(ctx, menu=menu, force_target=force_target)
    outputs = _configure_outputs(ctx, config)
    kept = {k: v for k, v in _read_cache(ctx.build).items() if k in _KEPT_ENTRIES}
    cache = _cache_text(ctx, kept | dict(ctx.defines), config.target)
    outputs[ctx.build / "CMakeCache.txt"] = (cache, 0o644)
    changed = not all(_unchanged(path, data) for path, (data, _) in outputs.items())
    if changed and not announce:
        print("[0/1] Re-running CMake...")
    if announce or changed:
        print(f"-- Building ESP-IDF components for target {config.target}")
        print(f"-- Project sdkconfig file {config.sdkconfig}")
        print(f'-- App "{config.name}" version: {config.version}')
        print("-- Configuring done\n-- Generating done")
        print(f"-- Build files have been written to: {ctx.build}")
    for path, (data, mode) in outputs.items():
        write_if_changed(path, data, mode=mode)
    return config


def _announce_cmake(ctx: _Ctx, force_target: str) -> None:
    defines = dict(ctx.defines) | ({"IDF_TARGET": force_target} if force_target else {})
    flags = "".join(f" -D{k}={v}" for k, v in defines.items())
    print(f"Running cmake in directory {ctx.build}")
    command = f"cmake -G {ctx.generator} -DPYTHON_DEPS_CHECKED=1 -DPYTHON={sys.executable}"
    print(f'Executing "{command} -DESP_PLATFORM=1{flags} -DCCACHE_ENABLE={int(ctx.ccache)} '
          f'{ctx.project}"...')  # fmt: skip


# --- build: ninja's steps, size checks, failures ---------------------------------------------


_Step = tuple[str, Mapping[str, bytes | str], tuple[str, ...]]


def _app_size_lines(name: str, size: int, table: _Table) -> list[str]:
    """check_sizes.py's app check (facts §2.7); all partitions too small fails the build."""
    apps = [p for p in table.partitions if p.type == partitions.APP_TYPE]
    small = [p for p in apps if p.size < size]
    parts = [_TEXTS["part"].format(p=p, over=size - p.size) for p in small]
    if small and len(small) == len(apps):
        head = (
            "app partition is too small" if len(apps) == 1 else "All app partitions are too small"
        )
        lines = [f"Error: {head} for binary {name} size {size:#x}:", *parts]
        raise _Fatal(lines, tool="ninja", failed="esp-idf/esptool_py/CMakeFiles/app_check_size")
    if small or not apps:
        count = f"{len(small)}/{len(apps)}"
        return [f"Warning: {count} app partitions are too small for binary {name} size {size:#x}:",
                *parts] if small else []  # fmt: skip
    smallest = min(p.size for p in apps)
    free, pct = smallest - size, round(100 * (smallest - size) / smallest)
    lines = [_TEXTS["app-size"].format(name=name, size=size, smallest=smallest, free=free, pct=pct)]
    if free / smallest < 0.05:
        lines.append(
            f"Warning: The smallest app partition is nearly full ({pct}% free space left)!"
        )
    return lines


def _bootloader_size_line(size: int, config: _Config, table: _Table) -> str:
    room = table.offset - int(config.values["BOOTLOADER_OFFSET_IN_FLASH"])
    if size > room:
        text = _TEXTS["bootloader-big"].format(size=size, offset=table.offset, room=room)
        raise _Fatal(
            [text], tool="ninja", failed="bootloader-prefix/src/bootloader-stamp/bootloader-done"
        )
    pct = round(100 * (room - size) / room)
    return f"Bootloader binary size {size:#x} bytes. {room - size:#x} bytes ({pct}%) free."


def _checked_table(config: _Config) -> _Table:
    failed = "partition_table/partition-table.bin"
    if config.table is None:
        missing = f"Partition table CSV {config.missing_csv} does not exist."
        lines = [missing, "Either change partition table in menuconfig or create this input file."]
        raise _Fatal(lines, tool="ninja", failed=failed)
    size = str(config.values["ESPTOOLPY_FLASHSIZE"])
    try:
        partitions.check_flash_size(config.table, int(size.removesuffix("MB")) * _MB, ())
    except ConfigError as err:
        text = f"{err.message}. {_TEXTS['flash-size']}"
        raise _Fatal([text], tool="ninja", failed=failed) from None
    return config.table


def _compile_failure(ctx: _Ctx) -> _Fatal:
    source = next(iter(_component_args(ctx.project).get("SRCS", [])), "main.c")
    error = "error: 'standin_undeclared' undeclared (first use in this function)"
    lines = [f"main/{source}: In function 'app_main':", f"main/{source}:12:5: {error}"]
    return _Fatal(
        lines, tool="ninja", failed=f"esp-idf/main/CMakeFiles/__idf_main.dir/{source}.obj"
    )


def _steps(ctx: _Ctx, config: _Config) -> list[_Step]:
    """What ninja would (re)make: (progress label, files by build-relative path, lines after)."""
    table = _checked_table(config)
    if os.environ.get("STANDIN_FAIL") == "compile":
        raise _compile_failure(ctx)
    elf, image, link_map = _app(ctx, config, 0)
    wanted = int(os.environ.get("STANDIN_APP_SIZE", "0") or 0)
    if len(image) < wanted:
        elf, image, link_map = _app(ctx, config, (wanted - len(image) + 15) // 16 * 16)
    boot_elf, boot = _bootloader(ctx, config)
    name, md5 = config.name, config.values["PARTITION_TABLE_MD5"] is True
    app_lines = (
        f"Generated {ctx.build / name}.bin",
        *_app_size_lines(f"{name}.bin", len(image), table),
    )
    boot_line = _bootloader_size_line(len(boot), config, table)
    table_bin = {"partition_table/partition-table.bin": partitions.to_bin(table, md5=md5)}
    steps: list[_Step] = [("Generating ../../partition_table/partition-table.bin", table_bin, ())]
    if table.otadata is not None:
        blank = {"ota_data_initial.bin": b"\xff" * table.otadata.size}
        steps.append(("Generating ../../ota_data_initial.bin", blank, ()))
    steps.append(
        (f"Linking CXX executable {name}.elf", {f"{name}.elf": elf, f"{name}.map": link_map}, ())
    )
    steps.append(
        ("Generating binary image from built executable", {f"{name}.bin": image}, app_lines)
    )
    boot_files = {"bootloader/bootloader.elf": boot_elf, "bootloader/bootloader.bin": boot}
    steps.append(("Performing build step for 'bootloader'", boot_files, (boot_line,)))
    return steps


def _build(ctx: _Ctx, config: _Config) -> None:
    steps = _steps(ctx, config)
    todo = [s for s in steps if not all(_unchanged(ctx.build / k, v) for k, v in s[1].items())]
    if not todo:
        print("ninja: no work to do.")
    for number, (label, files, notes) in enumerate(todo, start=1):
        print(f"[{number}/{len(todo)}] {label}")
        for name, data in files.items():
            write_if_changed(ctx.build / name, data)
        for note in notes:
            print(note)
    _print_flash_hint(ctx, config)


def _print_flash_hint(ctx: _Ctx, config: _Config) -> None:
    values = config.values
    esptool = f"python -m esptool --chip {config.target} -b {ctx.baud} --before "
    esptool += f"{values['ESPTOOLPY_BEFORE']} --after {values['ESPTOOLPY_AFTER']}"
    esptool += " --no-stub" if values["ESPTOOLPY_NO_STUB"] is True else ""
    mode, size, freq = _flash_settings(values)
    files = sorted(_flash_files(config).values())
    listed = " ".join(f"{hex(off)} {os.path.relpath(ctx.build / path)}" for off, path in files)
    print("\nProject build complete. To flash, run:\n idf.py flash\nor\n idf.py -p PORT flash\nor")
    print(f" {esptool} write_flash --flash_mode {mode} --flash_size {size} --flash_freq {freq}",
          listed)  # fmt: skip
    print(f'or from the "{ctx.build}" directory\n {esptool} write_flash "@flash_args"')


def _write_logs(build: Path, err: _Fatal) -> tuple[Path, Path]:
    out, errors = (
        build / "log" / f"idf_py_{kind}_output_{os.getpid()}" for kind in ("stdout", "stderr")
    )
    stdout = [f"FAILED: {err.failed}"] * bool(err.failed) + [_STOPPED[err.tool]]
    write_if_changed(out, "".join(f"{line}\n" for line in stdout))
    write_if_changed(errors, "".join(f"{line}\n" for line in err.lines))
    return out, errors


def _report(build: Path | None, err: _Fatal) -> int:
    """Print a failure as idf.py does (tool output, then its own line); exit code 2."""
    if err.failed:
        print(f"FAILED: {err.failed}")
    for line in err.lines:
        print(line, file=sys.stderr)
    if err.tool:
        print(_STOPPED[err.tool])
    if err.tool and build is not None:
        out, errors = _write_logs(build, err)
        where = f"output of the command is in the {errors} and {out}"
        print(f"{err.tool} failed with exit code 1, {where}", file=sys.stderr)
    return 2


# --- actions and the command line ------------------------------------------------------------


def _fullclean(build: Path) -> None:
    if not build.is_dir() or not any(build.iterdir()):
        print(f"Build directory '{build}' not found. Nothing to clean.")
        return
    if not (build / "CMakeCache.txt").is_file():
        raise _Fatal([_TEXTS["not-a-build-dir"].format(build=build)])
    for name in ("CMakeLists.txt", ".git", ".svn"):
        if (build / name).exists():
            raise _Fatal([_TEXTS["refuse-clean"].format(name=name)])
    for child in build.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    print("Done")


def _set_target(ctx: _Ctx, target: str) -> None:
    env = os.environ.get("IDF_TARGET", "")
    if target not in CHIPS:
        choices = ", ".join(f"'{t}'" for t in TARGETS)
        raise _Fatal(
            [_USAGE, f"Error: Invalid value for 'TARGET': '{target}' is not one of {choices}."]
        )
    if env and env != target:
        raise _Fatal([_TEXTS["cli-target"].format(old=env, new=target)])
    _fullclean(ctx.build)
    sdkconfig = ctx.project / ctx.defines.get("SDKCONFIG", "sdkconfig")
    if sdkconfig.is_file():  # CMake does this under _IDF_PY_SET_TARGET_ACTION=1
        sdkconfig.replace(sdkconfig.with_name(f"{sdkconfig.name}.old"))
    _configure(ctx, announce=True, force_target=target)


def _needs_cmake(ctx: _Ctx) -> bool:
    """idf.py runs CMake for a new build dir or a new or changed -D entry (facts §5.1)."""
    cache = _read_cache(ctx.build)
    if cache and cache.get("CMAKE_GENERATOR", ctx.generator) != ctx.generator:
        text = _TEXTS["generator"].format(old=cache["CMAKE_GENERATOR"], new=ctx.generator)
        raise _Fatal([text])
    return not cache or any(cache.get(k) != v for k, v in ctx.defines.items())


def _run(ctx: _Ctx, action: str, argument: str) -> None:
    print(f"Executing action: {action}" + (" (aliases: build)" if action == "all" else ""))
    if action == "fullclean":
        _fullclean(ctx.build)
    elif action == "set-target":
        _set_target(ctx, argument)
    elif action == "all":
        announce = _needs_cmake(ctx)
        ninja = f'Running ninja in directory {ctx.build}\nExecuting "ninja all"...'
        if not announce:
            print(ninja)
        config = _configure(ctx, announce=announce)
        if announce:
            print(ninja)
        _build(ctx, config)
    else:
        _needs_cmake(ctx)
        menu = os.environ.get("STANDIN_MENUCONFIG_SET", "") if action == "menuconfig" else ""
        _configure(ctx, announce=True, menu=menu)
        if action == "menuconfig":
            print("menuconfig: non-interactive stand-in; applied $STANDIN_MENUCONFIG_SET and saved")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Cli:
    options: Mapping[str, str]
    defines: Mapping[str, str]
    flags: frozenset[str]
    actions: tuple[tuple[str, str], ...]


def _parse_cli(argv: Sequence[str]) -> _Cli:
    """idf.py's global options (anywhere on the line, as click allows) and chained actions."""
    args, options, defines = list(argv), {}, {}
    flags: set[str] = set()
    actions: list[tuple[str, str]] = []
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg.startswith("-D") and len(arg) > 2:
            name, eq, inline = "-D", "=", arg[2:]
        if name in _VALUE_OPTIONS:
            value = inline if eq else _value(args, name)
            if _VALUE_OPTIONS[name] != "define":
                options[_VALUE_OPTIONS[name]] = value
            elif "=" not in value:
                raise _Fatal(
                    [_USAGE, f"Error: Invalid value for '-D': '{value}' is not NAME=VALUE."]
                )
            else:
                key, _, val = value.partition("=")
                defines[key] = val
        elif arg in _FLAGS:
            flags.add(arg)
        elif arg in _ACTIONS:
            actions.append((_ACTIONS[arg], _value(args, arg) if arg == "set-target" else ""))
        else:
            problem = (
                f"No such option: {arg}" if arg.startswith("-") else f"No such command '{arg}'."
            )
            raise _Fatal([_USAGE, "Try 'idf.py --help' for help.", "", f"Error: {problem}"])
    return _Cli(options=options, defines=defines, flags=frozenset(flags), actions=tuple(actions))


def _value(args: list[str], name: str) -> str:
    if not args:
        raise _Fatal([_USAGE, f"Error: Option '{name}' requires an argument."])
    return args.pop(0)


def _context(cli: _Cli) -> _Ctx:
    project = Path(cli.options.get("project_dir", ".")).resolve()
    build = Path(cli.options.get("build_dir", project / "build")).resolve()
    if build == project:
        raise _Fatal([_TEXTS["build-is-project"]])
    ccache = os.environ.get("IDF_CCACHE_ENABLE") == "1" and "--no-ccache" not in cli.flags
    return _Ctx(
        project=project,
        build=build,
        defines=cli.defines,
        idf_ver=os.environ.get("STANDIN_IDF_VERSION", _IDF_VER),
        generator=cli.options.get("generator", "Ninja"),
        ccache=ccache or "--ccache" in cli.flags,
        baud=cli.options.get("baud", os.environ.get("ESPBAUD", "460800")),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run like `idf.py <argv>`; the exit code is idf.py's (0, or 2 for any failure)."""
    ctx: _Ctx | None = None
    try:
        cli = _parse_cli(sys.argv[1:] if argv is None else argv)
        if "--version" in cli.flags:
            print(f"ESP-IDF {os.environ.get('STANDIN_IDF_VERSION', _IDF_VER)}")
            return 0
        if "--list-targets" in cli.flags:
            print("\n".join(TARGETS))
            return 0
        ctx = _context(cli)
        for action, argument in cli.actions or (("all", ""),):
            _run(ctx, action, argument)
    except _Fatal as err:
        return _report(ctx.build if ctx else None, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
