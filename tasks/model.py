"""The project.yaml model: declared once as frozen dataclasses whose field metadata drives the
loader, the error messages and the README reference table.

`load()` is pure given its inputs (text, environment, host resolver, project dir).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks import chips, partitions, schema
from tasks.errors import ConfigError, ConfigErrors, KeyPath
from tasks.partitions import PartitionSpec, PartitionTable
from tasks.sdkconfig import owner_of
from tasks.yamlsource import HexInt, SourceMap, parse

__all__ = [
    "App",
    "CertSpec",
    "Flash",
    "Idf",
    "Ota",
    "Partitions",
    "Project",
    "SdkValue",
    "Wifi",
    "load",
    "reference_rows",
    "reference_table",
]

REQUIRED: Any = object()
SdkValue = bool | int | str
Sdkconfig = tuple[tuple[str, SdkValue], ...]


class UnknownKeyError(ConfigError):
    """Reported at the key, not the value."""


class _Invalid(Exception):
    """A section with one or more errors; the parent collects them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors


def option(*, doc: str, check: schema.Check, default: object = REQUIRED, example: str = "") -> Any:
    """A project.yaml key: its doc line, validator, default (as YAML would spell it) and example."""
    meta = {"doc": doc, "check": check, "default": default, "example": example}
    return field(metadata=meta)


def derived(default: object) -> Any:
    """A field computed after validation; not a project.yaml key."""
    return field(default=default)


def _section_check(cls: type[Any]) -> schema.Check:
    def check(value: object, path: KeyPath) -> Any:
        return _load_section(cls, value, path)

    return check


def _key_errors(
    data: Mapping[Any, Any], path: KeyPath, known: Mapping[str, str], required: Collection[str]
) -> list[ConfigError]:
    """Unknown keys (with did-you-mean) and missing required ones; `known` maps key -> example.

    A misspelt required key is reported once, as unknown, not also as missing.
    """
    errors: list[ConfigError] = []
    meant: set[str] = set()
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            meant.update(close)
            hint = schema.did_you_mean(str(key), known)
            errors.append(UnknownKeyError((*path, key), f"unknown key '{key}'", hint))
    for key in required:
        if key not in data and key not in meant:
            hint = f"add {key}: {known[key]}" if known[key] else ""
            errors.append(ConfigError(path, f"missing key '{key}'", hint))
    return errors


def _load_section(cls: type[Any], value: object, path: KeyPath, **extra: object) -> Any:
    data = schema.mapping(value, path)
    declared = {f.name: f.metadata for f in dataclasses.fields(cls) if "check" in f.metadata}
    required = [name for name, meta in declared.items() if meta["default"] is REQUIRED]
    examples = {name: meta["example"] for name, meta in declared.items()}
    errors = _key_errors(data, path, examples, required)
    values: dict[str, object] = {}
    for name, meta in declared.items():
        if name not in data and name in required:
            continue
        try:
            values[name] = meta["check"](data.get(name, meta["default"]), (*path, name))
        except ConfigError as error:
            errors.append(error)
        except _Invalid as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise _Invalid(errors)
    return cls(**values, **extra)


# --- validators specific to this schema -------------------------------------------------------

_APP_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
_SDK_NAME = re.compile(r"CONFIG_[A-Z0-9_]+")


def _flash_size(value: object, path: KeyPath) -> int:
    text = schema.one_of(*chips.FLASH_SIZES)(value, path)
    return int(text[:-2]) * 1024 * 1024


def _table_offset(value: object, path: KeyPath) -> int:
    offset = schema.integer(0x1000, 0xFF000)(value, path)
    if offset % 0x1000:
        raise ConfigError(path, f"{offset:#x} is not a multiple of 0x1000", "use 0x8000 or 0x9000")
    return int(offset)


def _version(value: object, path: KeyPath) -> str:
    if isinstance(value, float):
        raise ConfigError(path, f"{value!r} reads as a number", f'quote it: "{value!r}"')
    text = schema.string(value, path)
    if not text or len(text.encode()) > 31:
        # esp_app_desc_t.version is char[32]; ESP-IDF truncates silently.
        raise ConfigError(path, f"'{text}' must be 1 to 31 bytes (esp_app_desc_t.version)")
    return text


def _idf_version(value: object, path: KeyPath) -> str:
    if isinstance(value, float):
        raise ConfigError(path, f"{value!r} reads as a number", f'quote it: "{value!r}"')
    return str(schema.pattern(r"\d+\.\d+", 'major.minor, like "5.3"')(value, path))


def _wifi_password(value: object, path: KeyPath) -> str:
    # Never echo the value: it is a secret.
    if not isinstance(value, str):
        raise ConfigError(path, "expected a string", 'write password: "${WIFI_PASSWORD}"')
    if value and not (8 <= len(value) <= 63 or re.fullmatch(r"[0-9a-fA-F]{64}", value)):
        raise ConfigError(
            path,
            f"a WPA2 passphrase has 8 to 63 characters, this one has {len(value)}",
            "check $WIFI_PASSWORD (empty means an open network)",
        )
    return value


def _ssid(value: object, path: KeyPath) -> str:
    text = schema.string(value, path)
    if not 1 <= len(text.encode()) <= 32:
        raise ConfigError(path, f"an SSID has 1 to 32 bytes, '{text}' has {len(text.encode())}")
    return text


def _sdkconfig(value: object, path: KeyPath) -> Sdkconfig:
    data = schema.mapping(value, path, what="a mapping of CONFIG_ options")
    items: list[tuple[str, SdkValue]] = []
    errors: list[ConfigError] = []
    for name, raw in data.items():
        where = (*path, name)
        if not isinstance(name, str) or not _SDK_NAME.fullmatch(name):
            hint = f"write CONFIG_{name}" if isinstance(name, str) and name.isupper() else ""
            errors.append(UnknownKeyError(where, f"'{name}' is not a CONFIG_ option name", hint))
        elif owner := owner_of(name):
            errors.append(
                UnknownKeyError(where, f"{name} is set from {owner}", f"set {owner} instead")
            )
        elif isinstance(raw, bool | int | str):
            items.append((name, raw))
        else:
            errors.append(
                ConfigError(where, f"expected a bool, number or string, got {schema.shown(raw)}")
            )
    if errors:
        raise _Invalid(errors)
    return tuple(items)


def _layout(value: object, path: KeyPath) -> tuple[str, tuple[PartitionSpec, ...]]:
    if isinstance(value, str):
        name = schema.one_of(*partitions.PRESET_NAMES)(value, path)
        return name, partitions.preset(name)
    if not isinstance(value, list) or not value:
        raise ConfigError(
            path, f"expected a preset name or a list of partitions, got {schema.shown(value)}"
        )
    rows: list[PartitionSpec] = []
    errors: list[ConfigError] = []
    for index, row in enumerate(value):
        try:
            rows.append(_partition_row(row, (*path, index)))
        except ConfigError as error:
            errors.append(error)
        except _Invalid as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise _Invalid(errors)
    return "custom", tuple(rows)


_ROW_KEYS = ("name", "type", "subtype", "offset", "size", "flags")


def _number(value: object, path: KeyPath) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(
            path, f"expected a size like 0x10000, 64K or 1M, got {schema.shown(value)}"
        )
    try:
        return partitions.parse_number(value)
    except ValueError:
        raise ConfigError(
            path, f"expected a size like 0x10000, 64K or 1M, got {schema.shown(value)}"
        ) from None


def _partition_row(value: object, path: KeyPath) -> PartitionSpec:
    data = schema.mapping(value, path, what="a partition {name, type, subtype, size}")
    errors = _key_errors(data, path, dict.fromkeys(_ROW_KEYS, ""), ("name", "type", "size"))
    if errors:
        raise _Invalid(errors)
    type_ = partitions.parse_type(data["type"], (*path, "type"))
    offset = data.get("offset")
    encrypted, readonly = partitions.parse_flags(data.get("flags"), (*path, "flags"))
    return PartitionSpec(
        name=schema.string(data["name"], (*path, "name")),
        type=type_,
        subtype=partitions.parse_subtype(type_, data.get("subtype"), (*path, "subtype")),
        offset=None if offset is None else _number(offset, (*path, "offset")),
        size=_number(data["size"], (*path, "size")),
        encrypted=encrypted,
        readonly=readonly,
    )


def _relative_path(value: object, path: KeyPath) -> str:
    text = schema.string(value, path)
    parts = Path(text).parts
    if not parts or Path(text).is_absolute() or ".." in parts:
        raise ConfigError(
            path, f"'{text}' must be a path inside the app folder", "like server_certs/ca_cert.pem"
        )
    return text


def _app_path(value: object, path: KeyPath) -> str:
    text = schema.string(value, path)
    if not text.strip() or text.strip() == "idf:":
        raise ConfigError(
            path, "empty app path", "write idf:examples/... or a folder next to project.yaml"
        )
    return text


# --- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Idf:
    version: str = option(
        doc='ESP-IDF major.minor the apps are built with; v5.3.x matches "5.3"',
        check=_idf_version,
        default="5.3",
        example='"5.3"',
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Flash:
    size: int = option(
        doc="flash chip size (1MB … 128MB); the partition table must fit",
        check=_flash_size,
        example="4MB",
    )
    mode: str = option(doc="SPI flash mode", check=schema.one_of(*chips.FLASH_MODES), default="dio")
    freq: str = option(
        doc="SPI flash frequency; null = the target's ESP-IDF default",
        check=schema.optional(schema.pattern(r"\d+m", "a frequency like 40m or 80m")),
        default=None,
    )
    port: str | None = option(
        doc="serial port; null = $ESPPORT or auto-detect",
        check=schema.optional(schema.string),
        default=None,
    )
    baud: int = option(
        doc="flashing baud rate", check=schema.integer(9600, 5_000_000), default=460800
    )

    @property
    def size_text(self) -> str:
        return f"{self.size // (1024 * 1024)}MB"


@dataclass(frozen=True, slots=True, kw_only=True)
class Partitions:
    table_offset: int = option(
        doc="CONFIG_PARTITION_TABLE_OFFSET; the first partition starts one sector later",
        check=_table_offset,
        default=HexInt(0x8000),
    )
    layout: tuple[str, tuple[PartitionSpec, ...]] = option(
        doc="an ESP-IDF preset (" + ", ".join(partitions.PRESET_NAMES) + ") or a list of "
        "{name, type, subtype, offset?, size, flags?}",
        check=_layout,
        default="two_ota",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    name: str
    path: str = option(
        doc="the app project: idf:<path inside ESP-IDF>, or a folder relative to project.yaml",
        check=_app_path,
        example="idf:examples/get-started/hello_world",
    )
    version: str = option(
        doc="PROJECT_VER, the version in esp_app_desc_t (at most 31 bytes)",
        check=_version,
        example="1.0.0",
    )
    ota_client: bool = option(
        doc="this app downloads updates: it gets the OTA URL and Wi-Fi options",
        check=schema.boolean,
        default=False,
    )
    url_option: str | None = option(
        doc="the app's Kconfig option for the firmware URL; null = the OTA examples' own",
        check=schema.optional(schema.pattern(r"CONFIG_[A-Z0-9_]+", "a CONFIG_ option name")),
        default=None,
    )
    ca_cert: str = option(
        doc="where an ota_client app embeds the server CA, relative to the app folder",
        check=_relative_path,
        default="server_certs/ca_cert.pem",
    )
    sdkconfig: Sdkconfig = option(
        doc="CONFIG_ options for this app only (win over the project-wide ones)",
        check=_sdkconfig,
        default={},
    )

    @property
    def in_idf(self) -> bool:
        return self.path.startswith("idf:")

    @property
    def idf_subpath(self) -> str:
        return self.path.removeprefix("idf:").strip("/")


def _apps(value: object, path: KeyPath) -> tuple[App, ...]:
    data = schema.mapping(value, path, what="a mapping of app names to apps")
    if not data:
        raise ConfigError(path, "no apps", "add at least the app flashed over serial")
    apps: list[App] = []
    errors: list[ConfigError] = []
    for name, raw in data.items():
        where = (*path, name)
        if not isinstance(name, str) or not _APP_NAME.fullmatch(name):
            errors.append(
                UnknownKeyError(where, f"app name '{name}' is not valid", "use a-z, 0-9 and _")
            )
            continue
        try:
            apps.append(_load_section(App, raw, where, name=name))
        except ConfigError as error:
            errors.append(error)
        except _Invalid as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise _Invalid(errors)
    return tuple(apps)


@dataclass(frozen=True, slots=True, kw_only=True)
class CertSpec:
    key: str = option(
        doc="server key type: ec-p256 or rsa-2048 (what the OTA README's openssl line makes)",
        check=schema.one_of("ec-p256", "rsa-2048"),
        default="ec-p256",
    )
    days: int = option(
        doc="server certificate validity in days", check=schema.integer(1, 3650), default=825
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Ota:
    url: schema.Url = option(
        doc="where ota_client apps fetch updates; host auto = this machine's LAN address",
        check=schema.url,
        example="https://auto:8070/hello_world.bin",
    )
    image: str = option(
        doc="the app served at the URL's path",
        check=schema.pattern(r"[a-z][a-z0-9_]{0,30}", "an app name"),
        example="hello_world",
    )
    bind: str = option(doc="address the server listens on", check=schema.string, default="0.0.0.0")
    cert: CertSpec = option(doc="server certificate", check=_section_check(CertSpec), default={})
    host: str = derived("")  # the URL host after `auto` and $OTA_HOST are resolved

    @property
    def url_text(self) -> str:
        """The URL as the device uses it, with the resolved host."""
        return self.url.with_host(self.host)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wifi:
    ssid: str = option(doc="network name (CONFIG_EXAMPLE_WIFI_SSID)", check=_ssid, example="myssid")
    password: str = option(
        doc='passphrase; keep it in the environment: "${WIFI_PASSWORD}"',
        check=_wifi_password,
        default="",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    name: str = option(
        doc="project name (certificates, manifest)",
        check=schema.pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "letters, digits, '.', '_', '-'"),
        example="ota-demo",
    )
    target: str = option(doc="IDF_TARGET", check=schema.one_of(*chips.TARGETS), example="esp32")
    idf: Idf = option(doc="ESP-IDF version", check=_section_check(Idf), default={})
    flash: Flash = option(
        doc="flash chip and serial settings", check=_section_check(Flash), example="{size: 4MB}"
    )
    partitions: Partitions = option(
        doc="partition table", check=_section_check(Partitions), default={}
    )
    apps: tuple[App, ...] = option(
        doc="ESP-IDF app projects this project builds", check=_apps, example="{...}"
    )
    flash_app: str = option(
        doc="the app written over serial",
        check=schema.pattern(r"[a-z][a-z0-9_]{0,30}", "an app name"),
        example="factory",
    )
    ota: Ota | None = option(
        doc="OTA updates", check=schema.optional(_section_check(Ota)), default=None
    )
    wifi: Wifi | None = option(
        doc="Wi-Fi for ota_client apps", check=schema.optional(_section_check(Wifi)), default=None
    )
    sdkconfig: Sdkconfig = option(doc="CONFIG_ options for every app", check=_sdkconfig, default={})
    table: PartitionTable = derived(None)  # the placed, validated partition table
    project_dir: Path = derived(Path("."))

    def app(self, name: str) -> App:
        return next(app for app in self.apps if app.name == name)

    @property
    def ota_clients(self) -> tuple[App, ...]:
        return tuple(app for app in self.apps if app.ota_client)


# --- cross-field rules ---------------------------------------------------------------------------


def _cross_checks(project: Project) -> Iterator[ConfigError]:
    names = [app.name for app in project.apps]
    if project.flash_app not in names:
        yield ConfigError(
            ("flash_app",),
            f"no app '{project.flash_app}' in apps",
            schema.did_you_mean(project.flash_app, names),
        )
    ota = project.ota
    if ota is not None and ota.image not in names:
        yield ConfigError(
            ("ota", "image"), f"no app '{ota.image}' in apps", schema.did_you_mean(ota.image, names)
        )
    for app in project.apps:
        if app.ota_client and ota is None:
            yield ConfigError(
                ("apps", app.name, "ota_client"),
                "an OTA client needs the ota: section",
                "add ota: {url: ..., image: ...}",
            )
        if not app.in_idf and not (project.project_dir / app.path).is_dir():
            yield ConfigError(
                ("apps", app.name, "path"),
                f"folder '{app.path}' does not exist next to project.yaml",
                "fix the path or write idf:<path inside ESP-IDF>",
            )
    chip = chips.CHIPS[project.target]
    if project.flash.freq not in chip.flash_freqs:
        yield ConfigError(
            ("flash", "freq"),
            f"'{project.flash.freq}' is not a flash frequency of {project.target}",
            "use one of: " + ", ".join(chip.flash_freqs),
        )
    if project.wifi is not None and not chip.has_wifi:
        yield ConfigError(
            ("wifi",),
            f"{project.target} has no Wi-Fi",
            "remove wifi: (the OTA examples use Ethernet there)",
        )


def _ota_layout_checks(project: Project) -> Iterator[ConfigError]:
    table, layout_name = project.table, project.partitions.layout[0]
    if project.ota is None:
        return
    missing = [
        what
        for what, absent in (
            ("otadata partition", table.otadata is None),
            ("OTA app slot", not table.ota_slots),
        )
        if absent
    ]
    if missing:
        yield ConfigError(
            ("partitions", "layout"),
            f"layout '{layout_name}' has no {' and no '.join(missing)}, but ota: is set",
            "use layout two_ota (or add otadata and ota_0 rows), or remove ota:",
        )
    elif table.factory is None and len(table.ota_slots) < 2:
        yield ConfigError(
            ("partitions", "layout"),
            "with no factory partition OTA needs two slots (ota_0, ota_1)",
            "add ota_1",
        )


def _resolve(project: Project, resolve_host: Callable[[str], str]) -> Project:
    chip = chips.CHIPS[project.target]
    flash = dataclasses.replace(project.flash, freq=project.flash.freq or chip.default_freq)
    ota = project.ota
    if ota is not None:
        ota = dataclasses.replace(ota, host=resolve_host(ota.url.host))
    return dataclasses.replace(project, flash=flash, ota=ota)


def _place_table(project: Project) -> Project:
    layout_path: KeyPath = ("partitions", "layout")
    specs = project.partitions.layout[1]
    table = partitions.layout(specs, table_offset=project.partitions.table_offset, path=layout_path)
    partitions.check_flash_size(table, project.flash.size, ("flash", "size"))
    return dataclasses.replace(project, table=table)


def _format(errors: list[ConfigError], source: SourceMap) -> ConfigErrors:
    located = [
        (source.locate(error.path, at_key=isinstance(error, UnknownKeyError)), error)
        for error in errors
    ]
    located.sort(key=lambda item: (item[0].line, item[0].column))
    return ConfigErrors(f"{where}: {error.describe()}" for where, error in located)


def load(
    text: str,
    *,
    file: str,
    env: Mapping[str, str],
    resolve_host: Callable[[str], str],
    project_dir: Path,
) -> Project:
    """Validate project.yaml text into a Project.

    Raises:
        ConfigErrors: every independent problem, one `file:line:col: key.path: problem; fix` line
            each, in file order. Cross-field rules run only when each key is valid on its own.
    """
    data, source = parse(text, file=file, env=env)
    try:
        project: Project = _load_section(Project, data, (), project_dir=project_dir)
        project = _resolve(project, resolve_host)
        errors = list(_cross_checks(project))
        if not errors:
            project = _place_table(project)
            errors = list(_ota_layout_checks(project))
    except ConfigError as error:
        errors = [error]
    except _Invalid as invalid:
        errors = invalid.errors
    if errors:
        raise _format(errors, source)
    return project


def reference_rows() -> list[tuple[str, str, str]]:
    """(key, default, doc) for every project.yaml key, in declaration order (the README table)."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type[Any], prefix: str) -> None:
        for spec in dataclasses.fields(cls):
            if "check" not in spec.metadata:
                continue
            key = f"{prefix}{spec.name}"
            default = spec.metadata["default"]
            shown = "required" if default is REQUIRED else _yaml_text(default)
            rows.append((key, shown, spec.metadata["doc"]))
            section = _SECTIONS.get((cls, spec.name))
            if section is not None:
                walk(section, f"{key}." if section is not App else f"{key}.<name>.")

    walk(Project, "")
    return rows


_SECTIONS: dict[tuple[type[Any], str], type[Any]] = {
    (Project, "idf"): Idf,
    (Project, "flash"): Flash,
    (Project, "partitions"): Partitions,
    (Project, "apps"): App,
    (Project, "ota"): Ota,
    (Project, "wifi"): Wifi,
    (Ota, "cert"): CertSpec,
}


def _yaml_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, HexInt):
        return hex(value)
    return str(value) if value != "" else '""'


def reference_table() -> str:
    """The README's project.yaml reference, as a Markdown table."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in reference_rows():
        lines.append(f"| `{key}` | {default.replace('|', '/')} | {doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
