"""The project.yaml model: declared once as frozen dataclasses whose field metadata drives the
loader, the error messages and the README reference table (reference.py). `load()` is pure
given its inputs (text, environment, host resolver, project dir).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ConfigErrors, KeyPath
from ..idf import app as idfapp
from ..idf import chips, kconfig, partition_files, partitions, releases
from ..idf.kconfig_rules import AppKconfig
from ..idf.partitions import Partition, PartitionSpec, PartitionTable
from ..idf.sdkconfig import owner_of
from . import kconfig_checks, schema
from .layout import layout_value
from .schema import Invalid, UnknownKeyError
from .yamlsource import HexInt, SourceMap, parse

__all__ = [
    "App",
    "CertSpec",
    "Flash",
    "Idf",
    "KconfigSource",
    "Ota",
    "Partitions",
    "Project",
    "SdkValue",
    "Wifi",
    "load",
]

REQUIRED: Any = object()
SdkValue = bool | int | str
Sdkconfig = tuple[tuple[str, SdkValue], ...]
_APP_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
_sdkconfig = schema.config_options(owner_of)  # refuses options that project.yaml keys set


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


def _load_section(cls: type[Any], value: object, path: KeyPath, **extra: object) -> Any:
    data = schema.mapping(value, path)
    declared = {f.name: f.metadata for f in dataclasses.fields(cls) if "check" in f.metadata}
    required = [name for name, meta in declared.items() if meta["default"] is REQUIRED]
    examples = {name: meta["example"] for name, meta in declared.items()}
    errors = schema.key_errors(data, path, examples, required)
    values: dict[str, object] = {}
    for name, meta in declared.items():
        if name not in data and name in required:
            continue
        try:
            values[name] = meta["check"](data.get(name, meta["default"]), (*path, name))
        except ConfigError as error:
            errors.append(error)
        except Invalid as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise Invalid(errors)
    return cls(**values, **extra)


# --- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Idf:
    version: str = option(
        doc="ESP-IDF major.minor the apps are built with ("
        + ", ".join(releases.VERSIONS)
        + '); v5.3.x matches "5.3"; null = the ESP-IDF found ($IDF_PATH), else 5.3',
        check=schema.optional(schema.idf_version),
        default=None,
        example='"5.3"',
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Flash:
    size: int = option(
        doc="flash chip size (1MB … 128MB); the partition table must fit",
        check=schema.flash_size,
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
        check=schema.table_offset,
        default=HexInt(0x8000),
    )
    layout: tuple[str, tuple[PartitionSpec, ...]] = option(
        doc="an ESP-IDF preset (" + ", ".join(partitions.PRESET_NAMES) + "), an ESP-IDF "
        "partition CSV relative to project.yaml, or a list of {name, type, subtype, offset?, "
        "size, flags?}",
        check=layout_value,
        default="two_ota",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    name: str
    path: str = option(
        doc="the app project: idf:<path inside ESP-IDF>, or a folder relative to project.yaml",
        check=schema.app_path,
        example="idf:examples/get-started/hello_world",
    )
    version: str = option(
        doc="PROJECT_VER, the version in esp_app_desc_t (at most 31 bytes)",
        check=schema.version,
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
    wifi_ssid_option: str | None = option(
        doc="the app's Kconfig option for the Wi-Fi SSID; null = protocol_examples_common's",
        check=schema.optional(schema.pattern(r"CONFIG_[A-Z0-9_]+", "a CONFIG_ option name")),
        default=None,
    )
    wifi_password_option: str | None = option(
        doc="the app's Kconfig option for the Wi-Fi password; null = protocol_examples_common's",
        check=schema.optional(schema.pattern(r"CONFIG_[A-Z0-9_]+", "a CONFIG_ option name")),
        default=None,
    )
    ca_cert: str = option(
        doc="where an ota_client app embeds the server CA, relative to the app folder",
        check=schema.relative_path,
        default="server_certs/ca_cert.pem",
    )
    sdkconfig: Sdkconfig = option(
        doc="CONFIG_ options for this app only (win over the project-wide ones)",
        check=_sdkconfig,
        default={},
    )
    secure_version: int | None = option(
        doc="anti-rollback: CONFIG_BOOTLOADER_APP_SECURE_VERSION, burnt into eFuse on a real "
        "board once this app runs; needs ota.rollback and a layout without factory; null = off",
        check=schema.optional(schema.integer(0, 32)),
        default=None,
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
                UnknownKeyError(
                    where, f"app name {schema.shown(name)} is not valid", "use a-z, 0-9 and _"
                )
            )
            continue
        try:
            apps.append(_load_section(App, raw, where, name=name))
        except ConfigError as error:
            errors.append(error)
        except Invalid as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise Invalid(errors)
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
    # Every interface: boards reach the server over the LAN, at an address `auto` picks.
    bind: str = option(
        doc="address the server listens on", check=schema.bind_address, default="0.0.0.0"
    )
    max_connections: int = option(
        doc="built-in server: connections held at once (kept under the open-files limit); when "
        "full, the one idle longest is closed for a newcomer, never one mid-transfer",
        check=schema.integer(16, 16384),
        default=1024,
    )
    max_per_client: int = option(
        doc="built-in server: connections held at once from one client address; more are "
        "refused at once (boards behind one NAT share an address)",
        check=schema.integer(1, 16384),
        default=32,
    )
    cert: CertSpec = option(doc="server certificate", check=_section_check(CertSpec), default={})
    sign: str | None = option(
        doc="sign every app image (rsa3072, or ecdsa256 where the target has it) with "
        "keys/signing_key.pem or $OTA_SIGNING_KEY; boards accept only images signed by the key "
        "of the app they run; null = unsigned",
        check=schema.optional(schema.sign_scheme),
        default=None,
    )
    rollback: bool = option(
        doc="app rollback: a new app boots in pending verify and must confirm itself "
        "(esp_ota_mark_app_valid_cancel_rollback), or the next reset boots the previous app",
        check=schema.boolean,
        default=False,
    )
    host: str = derived("")  # the URL host after `auto` and $OTA_HOST are resolved

    @property
    def url_text(self) -> str:
        """The URL as the device uses it, with the resolved host."""
        return self.url.with_host(self.host)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wifi:
    ssid: str = option(
        doc="network name (CONFIG_EXAMPLE_WIFI_SSID)", check=schema.ssid, example="myssid"
    )
    password: str = option(
        doc='passphrase; keep it in the environment: "${WIFI_PASSWORD}"',
        check=schema.wifi_password,
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
    # Each app's Kconfig as ESP-IDF's kconfgen evaluated it; () when no ESP-IDF was found.
    kconfig: tuple[tuple[str, AppKconfig], ...] = derived(())

    def app(self, name: str) -> App:
        return next(app for app in self.apps if app.name == name)

    def kconfig_of(self, name: str) -> AppKconfig | None:
        return next((found for app, found in self.kconfig if app == name), None)

    @property
    def ota_clients(self) -> tuple[App, ...]:
        return tuple(app for app in self.apps if app.ota_client)

    @property
    def anti_rollback(self) -> bool:
        """CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK, on for every app once one sets secure_version."""
        return any(app.secure_version is not None for app in self.apps)


# --- cross-field rules ---------------------------------------------------------------------------


def _app_path_checks(project: Project, app: App, idf_root: Path | None) -> Iterator[ConfigError]:
    """A local app must be an ESP-IDF app; an idf: one must exist in the ESP-IDF found here."""
    where = ("apps", app.name, "path")
    if app.in_idf:
        if idf_root is not None and not (idf_root / app.idf_subpath).is_dir():
            yield ConfigError(
                where,
                f"'{app.idf_subpath}' does not exist in the ESP-IDF at {idf_root}",
                "fix the path (it is relative to $IDF_PATH), or check IDF_PATH",
            )
        return
    folder = project.project_dir / app.path
    if not folder.is_dir():
        yield ConfigError(
            where,
            f"folder {schema.shown(app.path)} does not exist next to project.yaml",
            "fix the path or write idf:<path inside ESP-IDF>",
        )
    elif not idfapp.is_idf_app(folder):
        yield ConfigError(
            where,
            f"folder {schema.shown(app.path)} is not an ESP-IDF app (no CMakeLists.txt that calls "
            "project())",
            "name the folder that holds the app's top-level CMakeLists.txt",
        )


def _owned_options(app: App) -> Iterator[ConfigError]:
    """The app's own URL and Wi-Fi options come from ota: and wifi:, never from sdkconfig:."""
    owned = {
        option: key
        for option, key in (
            (app.url_option, "ota.url"),
            (app.wifi_ssid_option, "wifi.ssid"),
            (app.wifi_password_option, "wifi.password"),
        )
        if option
    }
    for name, _ in app.sdkconfig:
        if name in owned:
            yield ConfigError(
                ("apps", app.name, "sdkconfig", name),
                f"is set from {owned[name]}",
                "remove it here",
            )
    if (app.wifi_ssid_option is None) != (app.wifi_password_option is None):
        yield ConfigError(
            ("apps", app.name, "wifi_ssid_option"),
            "wifi_ssid_option and wifi_password_option go together",
            "set both, or neither for protocol_examples_common's",
        )


def _cross_checks(project: Project, idf_root: Path | None) -> Iterator[ConfigError]:
    names = [app.name for app in project.apps]
    if project.flash_app not in names:
        yield ConfigError(
            ("flash_app",),
            f"no app {schema.shown(project.flash_app)} in apps",
            schema.did_you_mean(project.flash_app, names),
        )
    ota = project.ota
    if ota is not None and ota.image not in names:
        yield ConfigError(
            ("ota", "image"),
            f"no app {schema.shown(ota.image)} in apps",
            schema.did_you_mean(ota.image, names),
        )
    for app in project.apps:
        if app.ota_client and ota is None:
            yield ConfigError(
                ("apps", app.name, "ota_client"),
                "an OTA client needs the ota: section",
                "add ota: {url: ..., image: ...}",
            )
        yield from _app_path_checks(project, app, idf_root)
        yield from _owned_options(app)
    chip = chips.CHIPS[project.target]
    yield from _security_checks(project, chip)
    if project.flash.freq not in chip.flash_freqs:
        yield ConfigError(
            ("flash", "freq"),
            f"{schema.shown(project.flash.freq)} is not a flash frequency of {project.target}",
            "use one of: " + ", ".join(chip.flash_freqs),
        )
    if project.wifi is not None and not chip.has_wifi:
        yield ConfigError(
            ("wifi",),
            f"{project.target} has no Wi-Fi",
            "remove wifi: (the OTA examples use Ethernet there)",
        )


# Options that ota.sign / ota.rollback / secure_version set once they are on.
_SECURITY_OPTIONS = (
    ("CONFIG_SECURE_", "ota.sign"),
    ("CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE", "ota.rollback"),
    ("CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK", "apps.<app>.secure_version"),
    ("CONFIG_BOOTLOADER_APP_SECURE_VERSION", "apps.<app>.secure_version"),
)


def _security_checks(project: Project, chip: chips.Chip) -> Iterator[ConfigError]:
    ota = project.ota
    if ota is not None and ota.sign is not None and ota.sign not in chip.sign_schemes:
        yield ConfigError(
            ("ota", "sign"),
            f"{project.target} cannot verify {ota.sign} signatures (its Secure Boot V2 "
            f"supports {', '.join(chip.sign_schemes)} only)",
            f"use ota.sign: {chip.sign_schemes[0]}",
        )
    for app in project.apps:
        version = app.secure_version
        if version is None:
            continue
        where = ("apps", app.name, "secure_version")
        if ota is None or not ota.rollback:
            yield ConfigError(
                where,
                "anti-rollback needs app rollback (CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK depends "
                "on CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE)",
                "set ota.rollback: true",
            )
        if version > chip.secure_version_bits:
            yield ConfigError(
                where,
                f"Max secure version is {chip.secure_version_bits}. Given {version} version can "
                "not be written.",
                f"{project.target} keeps it in {chip.secure_version_bits} eFuse bits, one per "
                "version: use 0 to " + str(chip.secure_version_bits),
            )
    on = {
        "ota.sign": ota is not None and ota.sign is not None,
        "ota.rollback": ota is not None and ota.rollback,
        "apps.<app>.secure_version": project.anti_rollback,
    }
    sections: list[tuple[KeyPath, Sdkconfig]] = [(("sdkconfig",), project.sdkconfig)]
    sections += [(("apps", app.name, "sdkconfig"), app.sdkconfig) for app in project.apps]
    for path, options in sections:
        for name, _ in options:
            owner = next((key for prefix, key in _SECURITY_OPTIONS if name.startswith(prefix)), "")
            if on.get(owner):
                yield ConfigError(
                    (*path, name), f"{name} is set by {owner}", f"remove it here and keep {owner}"
                )


def _ota_layout_checks(project: Project) -> Iterator[ConfigError]:
    table, layout_name = project.table, project.partitions.layout[0]
    if project.ota is None:
        return
    test = [p for p in table.partitions if p.type == partitions.APP_TYPE and p.subtype == 0x20]
    if project.anti_rollback and (table.factory is not None or test):
        yield ConfigError(
            ("partitions", "layout"),
            "Anti-rollback option is enabled. Partition table should consist of two ota "
            "app without factory or test partitions.",
            "use a layout of otadata, ota_0 and ota_1 only (apps.<name>.secure_version turns "
            "anti-rollback on)",
        )
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
    elif gap := _first_gap(table):
        slot, expected = gap
        path, where = _row(project, slot, "subtype")
        yield ConfigError(
            path,
            f"{where}partition '{slot.name}' is OTA slot {slot.subtype_name}, but there is no "
            f"ota_{expected}: ESP-IDF counts consecutive slots from ota_0",
            f"make it ota_{expected}",
        )
    elif table.factory is None and len(table.ota_slots) < 2:
        yield ConfigError(
            ("partitions", "layout"),
            "with no factory partition OTA needs two slots (ota_0, ota_1)",
            "add ota_1",
        )


def _first_gap(table: PartitionTable) -> tuple[Partition, int] | None:
    """The first OTA slot out of the ota_0, ota_1, ... sequence, and the slot expected there."""
    for expected, slot in enumerate(table.ota_slots):
        if slot.subtype - 0x10 != expected:
            return slot, expected
    return None


def _row(project: Project, partition: Partition, field: str) -> tuple[KeyPath, str]:
    """Where `partition` was written: its project.yaml row, its CSV line, or the preset name."""
    name, _ = project.partitions.layout
    index = project.table.partitions.index(partition)
    if name == "custom":
        return ("partitions", "layout", index, field), ""
    if name.lower().endswith(".csv"):
        text = (project.project_dir / name).read_text(encoding="utf-8")
        return ("partitions", "layout"), f"{name}:{partition_files.row_lines(text)[index]}: "
    return ("partitions", "layout"), ""


def _found_release(idf_root: Path | None) -> str:
    """The major.minor of the ESP-IDF found, when it is one this project builds with."""
    found = kconfig.idf_version(idf_root) if idf_root is not None else None
    try:
        return releases.release(found).version if found else _DEFAULT_RELEASE
    except KeyError:
        return _DEFAULT_RELEASE


_DEFAULT_RELEASE = "5.3"


def _resolve(
    project: Project, resolve_host: Callable[[str], str], idf_root: Path | None
) -> Project:
    chip = chips.CHIPS[project.target]
    flash = dataclasses.replace(project.flash, freq=project.flash.freq or chip.default_freq)
    ota = project.ota
    if ota is not None:
        ota = dataclasses.replace(ota, host=resolve_host(ota.url.host))
    idf = dataclasses.replace(project.idf, version=project.idf.version or _found_release(idf_root))
    return dataclasses.replace(project, flash=flash, ota=ota, idf=idf)


def _release_checks(project: Project) -> Iterator[ConfigError]:
    chip = chips.CHIPS[project.target]
    if releases.numbers(project.idf.version) < releases.numbers(chip.since):
        yield ConfigError(
            ("target",),
            f"{project.target} is supported from ESP-IDF {chip.since} (a preview target before)",
            f'set idf.version: "{chip.since}" or later',
        )


def _csv_table(project: Project, name: str, path: KeyPath) -> PartitionTable:
    """partitions.layout: <file>.csv, read with gen_esp32part's rules; errors name file:line."""
    csv_file = project.project_dir / name
    try:
        text = csv_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path,
            f"'{name}' does not exist next to project.yaml",
            "fix the path, or name a preset (" + ", ".join(partitions.PRESET_NAMES) + ")",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(path, f"'{name}' cannot be read ({reason})") from None
    try:
        return partition_files.from_csv(text, table_offset=project.partitions.table_offset)
    except partition_files.PartitionCsvError as error:
        raise ConfigError(path, f"{name}:{error.line}: {error.problem}", error.hint) from None


def _place_table(project: Project) -> Project:
    layout_path: KeyPath = ("partitions", "layout")
    name, specs = project.partitions.layout
    if name.lower().endswith(".csv"):
        table = _csv_table(project, name, layout_path)
    else:
        offset = project.partitions.table_offset
        table = partitions.layout(specs, table_offset=offset, path=layout_path)
    partitions.check_flash_size(table, project.flash.size, ("flash", "size"))
    return dataclasses.replace(project, table=table)


# The Kconfig of one app (kconfgen run over ESP-IDF's tree), injected by graph.load_project.
KconfigSource = Callable[["Project", App], AppKconfig | None]


def _with_kconfig(
    project: Project, source: KconfigSource
) -> tuple[Project, list[ConfigError], list[ConfigError]]:
    """The project with each app's Kconfig, and what is wrong (errors, warnings) with its
    sdkconfig: options under that Kconfig."""
    found: dict[str, AppKconfig] = {}
    errors: list[ConfigError] = []
    for app in project.apps:
        try:
            app_kconfig = source(project, app)
        except ConfigError as problem:
            errors.append(problem)
            continue
        if app_kconfig is not None:
            found[app.name] = app_kconfig
    project = dataclasses.replace(project, kconfig=tuple(found.items()))
    warnings: list[ConfigError] = []
    for is_warning, error in kconfig_checks.findings(project, found):
        (warnings if is_warning else errors).append(error)
    return project, errors, warnings


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
    idf_root: Path | None = None,
    kconfig: KconfigSource | None = None,
    warn: Callable[[str], None] | None = None,
) -> Project:
    """Validate project.yaml text into a Project; `idf_root` is the ESP-IDF found, if any, and
    `kconfig` gives each app's Kconfig (its options are checked against it; `warn` gets the
    warning lines, such as a renamed option).

    Raises:
        ConfigErrors: every independent problem, one `file:line:col: key.path: problem; fix` line
            each, in file order. Cross-field rules run only when each key is valid on its own.
    """
    data, source = parse(text, file=file, env=env)
    try:
        project: Project = _load_section(Project, data, (), project_dir=project_dir)
        project = _resolve(project, resolve_host, idf_root)
        errors = [*_cross_checks(project, idf_root), *_release_checks(project)]
        if not errors:
            project = _place_table(project)
            errors = list(_ota_layout_checks(project))
        if not errors and kconfig is not None:
            project, errors, warnings = _with_kconfig(project, kconfig)
            if warn is not None:
                for line in _format(warnings, source).lines:
                    warn(line)
    except ConfigError as error:
        errors = [error]
    except Invalid as invalid:
        errors = invalid.errors
    if errors:
        raise _format(errors, source)
    return project
