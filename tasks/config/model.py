"""The project.yaml model: declared once as frozen dataclasses whose field metadata drives the
loader (loader.py), the error messages and the README reference table (reference.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ..errors import ConfigError, KeyPath
from ..idf import chips, releases
from ..idf.kconfig.sdkconfig import owner_of
from ..idf.kconfig.symbols import AppKconfig, HexInt, SdkValue
from ..idf.partition import rules
from ..idf.partition.rules import PartitionSpec, PartitionTable
from . import schema
from .layout import layout_value
from .schema import Invalid, UnknownKeyError

__all__ = [
    "App",
    "CertSpec",
    "Flash",
    "Idf",
    "Ota",
    "Partitions",
    "Project",
    "SdkValue",
    "Sdkconfig",
    "Wifi",
    "load_section",
]

REQUIRED: Any = object()
Sdkconfig = tuple[tuple[str, SdkValue], ...]
_APP_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
_sdkconfig = schema.config_options(owner_of)  # refuses options that project.yaml keys set
_option_name = schema.optional(schema.pattern(r"CONFIG_[A-Z0-9_]+", "a CONFIG_ option name"))


def _defaults_files(value: object, path: KeyPath) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(path, "expected a list of defaults files", "like [sdkconfig.defaults]")
    return tuple(schema.relative_path(item, (*path, index)) for index, item in enumerate(value))


def option(*, doc: str, check: schema.Check, default: object = REQUIRED, example: str = "") -> Any:
    """A project.yaml key: its doc line, validator, default (as YAML would spell it) and example."""
    meta = {"doc": doc, "check": check, "default": default, "example": example}
    return field(metadata=meta)


def derived(default: object) -> Any:
    """A field computed after validation; not a project.yaml key."""
    return field(default=default)


def _section_check(cls: type[Any]) -> schema.Check:
    def check(value: object, path: KeyPath) -> Any:
        return load_section(cls, value, path)

    return check


def load_section(cls: type[Any], value: object, path: KeyPath, **extra: object) -> Any:
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
    """project.yaml's idf: section."""

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
    """project.yaml's flash: section."""

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
    """project.yaml's partitions: section."""

    table_offset: int = option(
        doc="CONFIG_PARTITION_TABLE_OFFSET; the first partition starts one sector later",
        check=schema.table_offset,
        default=HexInt(0x8000),
    )
    layout: tuple[str, tuple[PartitionSpec, ...]] = option(
        doc="an ESP-IDF preset ("
        + ", ".join(
            name if rules.preset_since(name) == "5.3" else f"{name} (v{rules.preset_since(name)}+)"
            for name in rules.PRESET_NAMES
        )
        + "), an ESP-IDF "
        "partition CSV relative to project.yaml, or a list of {name, type, subtype, offset?, "
        "size, flags?}",
        check=layout_value,
        default="two_ota",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    """One app of project.yaml's apps: section."""

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
        doc="the app's Kconfig option for the firmware URL; null = the string option its "
        "Kconfig defaults to an https:// URL",
        check=_option_name,
        default=None,
    )
    wifi_ssid_option: str | None = option(
        doc="the app's Kconfig option for the Wi-Fi SSID; null = its Kconfig's *_WIFI_SSID, "
        "else protocol_examples_common's",
        check=_option_name,
        default=None,
    )
    wifi_password_option: str | None = option(
        doc="the app's Kconfig option for the Wi-Fi password; null = its Kconfig's "
        "*_WIFI_PASSWORD, else protocol_examples_common's",
        check=_option_name,
        default=None,
    )
    ca_cert: str = option(
        doc="where an ota_client app embeds the server CA, relative to the app folder",
        check=schema.relative_path,
        default="server_certs/ca_cert.pem",
    )
    decrypt_key: str = option(
        doc="with ota.encrypt: where an OTA client app embeds the decryption key (a private "
        "key), relative to the app folder",
        check=schema.relative_path,
        default="rsa_key/private.pem",
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

    sdkconfig_defaults: tuple[str, ...] = option(
        doc="the app's own defaults files, in SDKCONFIG_DEFAULTS order (each followed by its "
        ".<target> twin; a later file wins), relative to the app folder; null = "
        "sdkconfig.defaults. Like ESP-IDF's CI variants: [sdkconfig.defaults, sdkconfig.ci.x]",
        check=schema.optional(_defaults_files),
        default=None,
        example="[sdkconfig.defaults, sdkconfig.ci.anti_rollback]",
    )
    compares_version: bool | None = option(
        doc="the app refuses an image whose esp_app_desc_t.version is the one it runs; null = "
        "read from its code (a memcmp/strcmp of version fields, under its configuration)",
        check=schema.optional(schema.boolean),
        default=None,
    )
    skips_host_check: bool | None = option(
        doc="the app sets skip_cert_common_name_check (accepts a server certificate for any "
        "host); null = read from its code",
        check=schema.optional(schema.boolean),
        default=None,
    )
    trusts: str | None = option(
        doc="what the app trusts for the server: embedded_ca (cert_pem) or bundle "
        "(crt_bundle_attach, ESP-IDF's certificate bundle); null = read from its code",
        check=schema.optional(schema.one_of("embedded_ca", "bundle")),
        default=None,
    )
    confirms_update: bool | None = option(
        doc="a new image of this app calls esp_ota_mark_app_valid_cancel_rollback() (needed "
        "under ota.rollback); null = read from its code",
        check=schema.optional(schema.boolean),
        default=None,
    )

    @property
    def defaults_files(self) -> tuple[str, ...]:
        """The app's own SDKCONFIG_DEFAULTS, in order."""
        return self.sdkconfig_defaults or ("sdkconfig.defaults",)

    @property
    def in_idf(self) -> bool:
        return self.path.startswith("idf:")

    @property
    def idf_subpath(self) -> str:
        return self.path.removeprefix("idf:").strip("/")

    def folder(self, project_dir: Path, idf_root: Path | None) -> Path | None:
        """The app's folder when it is here to read (an idf: app needs the ESP-IDF found)."""
        if self.in_idf:
            return idf_root / self.idf_subpath if idf_root is not None else None
        return project_dir / self.path


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
            apps.append(load_section(App, raw, where, name=name))
        except ConfigError as error:
            errors.append(error)
        except Invalid as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise Invalid(errors)
    return tuple(apps)


# The server key types certs can issue; validated here, and only here.
CertKey = Literal["ec-p256", "rsa-2048"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CertSpec:
    """project.yaml's ota.cert: section."""

    key: CertKey = option(
        doc="server key type: ec-p256 or rsa-2048 (what the OTA README's openssl line makes)",
        check=schema.one_of(*get_args(CertKey)),
        default="ec-p256",
    )
    days: int = option(
        doc="server certificate validity in days", check=schema.integer(1, 3650), default=825
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Ota:
    """project.yaml's ota: section."""

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
    sign_command: str | None = option(
        doc="sign with a key that never leaves an HSM or a signing service: a command that "
        "signs the file {data} into {signature} (RSA-PSS or ECDSA, SHA-256); "
        "keys/signing_pubkey.pem or $OTA_SIGNING_KEY then holds the public key only",
        check=schema.optional(schema.sign_command),
        default=None,
    )
    rollback: bool = option(
        doc="app rollback: a new app boots in pending verify and must confirm itself "
        "(esp_ota_mark_app_valid_cancel_rollback), or the next reset boots the previous app",
        check=schema.boolean,
        default=False,
    )
    delta: bool = option(
        doc="esp_delta_ota patches: each release also holds <app>-from-<version>.patch for the "
        "latest earlier releases, and <url path>.patch is served; needs two OTA slots",
        check=schema.boolean,
        default=False,
    )
    delta_bases: int = option(
        doc="with ota.delta: how many of the latest earlier releases get a patch",
        check=schema.integer(1, 16),
        default=3,
    )
    encrypt: str | None = option(
        doc="serve pre-encrypted images (esp_encrypted_img, rsa3072) made with "
        "keys/encryption_key.pem or $OTA_ENCRYPTION_KEY; the OTA client app must decrypt "
        "(like ESP-IDF's pre_encrypted_ota); null = plain images",
        check=schema.optional(schema.encrypt_scheme),
        default=None,
    )
    host: str = derived("")  # the URL host after `auto` and $OTA_HOST are resolved

    @property
    def url_text(self) -> str:
        """The URL as the device uses it, with the resolved host."""
        return self.url.with_host(self.host)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wifi:
    """project.yaml's wifi: section."""

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
    """project.yaml, loaded: what every planner reads."""

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
    # Each app's Kconfig as ESP-IDF's kconfgen evaluated it: () as loaded; an action fills it from
    # the kconfig task's build/kconfig/<app>.facts.json (graph._render_sdkconfig).
    kconfig: tuple[tuple[str, AppKconfig], ...] = derived(())

    def app(self, name: str) -> App:
        return next(app for app in self.apps if app.name == name)

    def kconfig_of(self, name: str) -> AppKconfig | None:
        return next((found for app, found in self.kconfig if app == name), None)

    @property
    def anti_rollback(self) -> bool:
        """CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK, on for every app once one sets secure_version."""
        return any(app.secure_version is not None for app in self.apps)
