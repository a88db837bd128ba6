"""`esp-ota-doit init`: read an existing ESP-IDF app as ESP-IDF would, and plan the project.yaml
that builds, flashes and serves it (one app: flash_app = ota.image = the app, an OTA client).

`plan` reads the app folder and returns what to write plus one line per fact it took and where
from; `write` puts project.yaml and dodo.py next to the app, never over existing files.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ProjectError
from ..files import render_template
from ..idf import app_code, app_folder, chips, idftool
from ..idf.kconfig import app_config
from ..idf.kconfig.app_config import AppConfig
from ..idf.kconfig.sdkconfig import EXAMPLE_SSID_OPTION, owner_of, yaml_value
from ..idf.partition import formats, rules

__all__ = ["Adoption", "InitError", "plan", "write"]

DODO = "from esp_ota_doit.graph import *  # noqa: F403 - the esp-ota-doit tasks\n"
_DEFAULT_FLASH_SIZE = "2MB"  # CONFIG_ESPTOOLPY_FLASHSIZE's default in ESP-IDF v5.3
_DEFAULT_PORT = 8070  # the OTA examples' port
_CA_SUFFIXES = (".pem", ".crt", ".cer")


class InitError(ProjectError):
    """The app cannot be adopted as it stands; the message says why and what to do."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Adoption:
    """What init writes, and what it says it took from where."""

    folder: Path
    project_yaml: str
    said: tuple[str, ...]
    next_steps: tuple[str, ...] = ()


def _app_name(project: str) -> str:
    """project() names may hold '-' or capitals; an app name is [a-z][a-z0-9_]*."""
    name = re.sub(r"[^a-z0-9_]", "_", project.lower()).strip("_")[:31] or "app"
    return name if name[0].isalpha() else f"app_{name}"[:31]


def _flash(config: AppConfig, target: str, said: list[str]) -> dict[str, str]:
    size = config.get("ESPTOOLPY_FLASHSIZE") or config.chosen("ESPTOOLPY_FLASHSIZE_")
    mode = config.get("ESPTOOLPY_FLASHMODE") or config.chosen("ESPTOOLPY_FLASHMODE_")
    freq = config.get("ESPTOOLPY_FLASHFREQ") or config.chosen("ESPTOOLPY_FLASHFREQ_")
    flash = {
        "size": str(size) if size else _DEFAULT_FLASH_SIZE,
        "mode": str(mode).lower() if mode else "dio",
        "freq": str(freq).lower() if freq else chips.CHIPS[target].default_freq,
    }
    said.append(f"flash: {flash['size']} {flash['mode']} {flash['freq']} (from {config.source})")
    return flash


def _partitions(config: AppConfig, folder: Path, said: list[str]) -> tuple[str, str]:
    offset_value = config.get("PARTITION_TABLE_OFFSET")
    offset = (
        f"{offset_value:#x}" if isinstance(offset_value, int) else str(offset_value or "0x8000")
    )
    if config.on("PARTITION_TABLE_CUSTOM"):
        csv_name = str(config.get("PARTITION_TABLE_CUSTOM_FILENAME") or "partitions.csv")
        if not (folder / csv_name).is_file():
            raise InitError(
                f"{config.source}: the custom partition table '{csv_name}' does not exist in "
                f"{folder}; fix CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"
            )
        _check_csv(folder / csv_name, csv_name, offset)
        said.append(
            f"partitions: {csv_name} at {offset} "
            f"(from {config.source}: CONFIG_PARTITION_TABLE_CUSTOM_FILENAME)"
        )
        return csv_name, offset
    member = next(
        (name for name in rules.PRESET_OPTIONS if config.on(f"PARTITION_TABLE_{name}")),
        "SINGLE_APP",
    )
    preset = rules.PRESET_OPTIONS.get(member)
    # kconfgen (or a full sdkconfig) names the CSV ESP-IDF picks (the _coredump twin, for one).
    picked = str(config.get("PARTITION_TABLE_FILENAME") or "")
    if picked.removeprefix("partitions_").removesuffix(".csv") in rules.PRESET_NAMES:
        preset = picked.removeprefix("partitions_").removesuffix(".csv")
    if preset is None or not _has_ota(preset):
        said.append(
            f"partitions: two_ota at {offset} (the app's {member.lower()} table has no OTA "
            f"slots, from {config.source}; the board gets ESP-IDF's two-OTA table)"
        )
        return "two_ota", offset
    said.append(
        f"partitions: {preset} at {offset} (from {config.source}: CONFIG_PARTITION_TABLE_{member})"
    )
    return preset, offset


def _check_csv(path: Path, name: str, offset: str) -> None:
    """The app's CSV, read with gen_esp32part's rules: a bad row stops init at its line."""
    try:
        formats.from_csv(path.read_text(encoding="utf-8"), table_offset=int(offset, 0))
    except (OSError, UnicodeDecodeError) as error:
        raise InitError(f"{name}: cannot be read ({error})") from None
    except formats.PartitionCsvError as error:
        hint = f"; {error.hint}" if error.hint else ""
        raise InitError(f"{name}:{error.line}: {error.problem}{hint}") from None


def _has_ota(preset: str) -> bool:
    return any(spec.type == 0 and 0x10 <= spec.subtype < 0x20 for spec in rules.preset(preset))


def _version(app: app_folder.AppFiles, config: AppConfig, said: list[str]) -> str:
    """PROJECT_VER in ESP-IDF's order (docs/esp-idf.md §6.3): the config option when
    FROM_CONFIG is set, then set(PROJECT_VER), version.txt, project(... VERSION), else "1"."""
    configured = (
        (str(config.get("APP_PROJECT_VER")), f"{config.source}: CONFIG_APP_PROJECT_VER")
        if config.on("APP_PROJECT_VER_FROM_CONFIG") and config.get("APP_PROJECT_VER")
        else (None, "")
    )
    for version, where in (
        configured,
        (app.project_ver, "CMakeLists.txt: set(PROJECT_VER)"),
        (app.version_txt, "version.txt"),
        (app.project_version, "CMakeLists.txt: project(... VERSION)"),
    ):
        if version:
            said.append(f"version: {version} (from {where})")
            return version
    said.append("version: 1 (ESP-IDF's fallback: no PROJECT_VER, version.txt or VERSION)")
    return "1"


def _url_option(
    app: app_folder.AppFiles, config: AppConfig, chosen: str | None, said: list[str]
) -> tuple[str, str]:
    """The app's URL option and its value now: the string option whose default is an https://
    URL, else the one its code hands esp_http_client as `.url` (FROM_STDIN, empty and http
    defaults included), or --url-option in either spelling."""
    options = {option.name: option for option in app.kconfig_strings}
    if chosen is not None:
        name = chosen if chosen.startswith("CONFIG_") else f"CONFIG_{chosen}"
        if name not in options:
            raise InitError(
                f"--url-option {chosen}: no string option of that name in the app's "
                "Kconfig.projbuild"
            )
        candidates = [options[name]]
    else:
        candidates = app_folder.url_options(app)
        what = "default to an https:// URL"
        if not candidates:
            candidates = [options[name] for name in app_folder.url_options_in_code(app)]
            what = "are what its code passes as the URL"
    if not candidates and chosen is None:
        _no_url_option(app)
    if len(candidates) != 1:
        where = ", ".join(f"{o.name} ({o.file.relative_to(app.root)}:{o.line})" for o in candidates)
        problem = (
            f"{len(candidates)} options {what}: {where}"
            if candidates
            else "no string option of the app's Kconfig.projbuild defaults to an https:// URL "
            "or is what its code passes as the URL"
        )
        raise InitError(
            f"URL option: {problem}; pass --url-option NAME (the option your app reads the "
            "firmware URL from)"
        )
    option = candidates[0]
    current = config.get(option.name)
    url = str(current) if current is not None else option.default
    if (
        chosen is not None
        and url not in ("", "FROM_STDIN")
        and "://" not in url
        and option.name not in app_folder.handed_as_url(app)
    ):
        raise InitError(
            f"--url-option {chosen}: its value '{url}' is no URL (no scheme), so the app's code "
            "builds its URL around it, while this tool writes the whole firmware URL into the "
            "option; name the option the code hands esp_http_client as .url"
        )
    said.append(
        f"URL option: {option.name} ({option.file.relative_to(app.root)}:{option.line}"
        + (", --url-option" if chosen else "")
        + f"), now '{url}'"
    )
    return option.name, url


def _no_url_option(app: app_folder.AppFiles) -> None:
    """Say why an app with no URL option cannot be adopted when its code shows why: a URL it
    compiles in, or no HTTP download at all."""
    fixed = app_folder.fixed_urls(app)
    if fixed:
        first = fixed[0]
        raise InitError(
            f"URL option: none; the app's code compiles its firmware URL in ('{first.value}', "
            f"{first.where}), which no configuration changes, so its boards cannot be pointed at "
            "this tool's server: make the URL a string option of main/Kconfig.projbuild, hand it "
            "to esp_http_client (.url = CONFIG_<NAME>), then run init again"
        )
    if not app_folder.fetches_over_http(app):
        raise InitError(
            "URL option: none; the app's code writes an update itself (esp_ota_begin) but "
            "downloads none with esp_http_client or esp_https_ota (serial, USB, BLE or its own "
            "TLS?), and this tool serves updates over HTTPS to ESP-IDF's HTTP client only; pass "
            "--url-option NAME if a library downloads it from that option's URL"
        )


def _ota_url(url: str, app_name: str, said: list[str]) -> str:
    """The served URL: the app's own https URL with its port and path (its host becomes `auto`);
    any other value (FROM_STDIN, empty, http) is no URL to keep."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "https" or not parts.hostname:
        served = f"https://auto:{_DEFAULT_PORT}/{app_name}.bin"
        said.append(
            f"OTA URL: the app's value '{url}' is no https:// URL to keep, so the board gets "
            f"{served} (edit ota.url to change it)"
        )
        return served
    path = parts.path if parts.path not in ("", "/") else f"/{app_name}.bin"
    port = port or 443
    if port < 1024:
        said.append(
            f"OTA URL: port {port} kept; a port under 1024 needs privilege to serve: on Linux "
            "run `sudo sysctl net.ipv4.ip_unprivileged_port_start=443` once (or serve with "
            "nginx), or pick another port in ota.url and the app's URL option"
        )
    return f"https://auto:{port}{path}"


def _embedded_ca(app: app_folder.AppFiles) -> str | None:
    """The CA file the app embeds (EMBED_TXTFILES/EMBED_FILES), where the build places ours."""
    certs = [path for path in app.embedded if path.lower().endswith(_CA_SUFFIXES)]
    return next((path for path in certs if "ca" in Path(path).name.lower()), None) or (
        certs[0] if certs else None
    )


def _ca_cert(app: app_folder.AppFiles, code: app_code.AppCode, said: list[str]) -> str | None:
    if code.bundle_only:
        said.append(
            "CA: the app trusts only ESP-IDF's certificate bundle (crt_bundle_attach), which "
            "does not hold this project's CA: embed it (cert_pem) or serve with a certificate a "
            "public CA signed"
        )
    chosen = _embedded_ca(app)
    if chosen is None:
        said.append("CA: the app embeds no certificate (main/CMakeLists.txt); ca_cert not set")
        return None
    held = " (its certificate bundle is built from it too)" if code.bundle_holds_ca else ""
    said.append(f"CA: {chosen} (from main/CMakeLists.txt: EMBED_TXTFILES/EMBED_FILES){held}")
    return chosen


def _wifi(
    app: app_folder.AppFiles,
    config: AppConfig,
    code: app_code.AppCode,
    target: str,
    said: list[str],
) -> tuple[str, str, str] | None:
    """(ssid, ssid option, password option) for an app that joins Wi-Fi; None otherwise."""
    if not chips.CHIPS[target].has_wifi:
        return None
    if code.network and "wifi" not in code.network:
        said.append(
            f"network: {' and '.join(code.network)} (from {config.source}); no Wi-Fi settings"
        )
        return None
    found = app_folder.wifi_options(app)
    if found is None:
        said.append("Wi-Fi: no SSID/password options found; wifi: not set")
        return None
    if not code.network:
        said.append(
            "network: the app's code and configuration do not say; assumed Wi-Fi, as it has "
            "Wi-Fi options (remove wifi: from project.yaml if it uses another link)"
        )
    (ssid, password), where = found
    current = config.get(ssid)
    value = str(current) if current else "myssid"
    said.append(
        f"Wi-Fi: {ssid} / {password} ({where}); the password is not copied: export WIFI_PASSWORD"
    )
    return value, ssid, password


# What init turns into project.yaml keys, so they are never carried as raw options.
_KEYED = ("CONFIG_SECURE_", "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE", "CONFIG_BOOTLOADER_APP_ANTI_")
_KEYED_NAMES = {"CONFIG_BOOTLOADER_APP_SECURE_VERSION"}


def _carried(
    folder: Path,
    config: AppConfig,
    owned: set[str],
    env: Mapping[str, str],
    app: app_folder.AppFiles,
    said: list[str],
) -> dict[str, str]:
    """The sdkconfig options that differ from what the app's defaults give (save-defconfig),
    but those project.yaml keys set."""
    if not (folder / "sdkconfig").is_file():
        said.append("sdkconfig: none in the app yet; nothing to carry")
        return {}
    try:
        choices = app_config.menuconfig_choices(folder, config, env=env, app=app)
    except app_config.ConfigReadError as error:
        raise InitError(str(error)) from None
    carried = {
        name: value
        for name, value in choices.items()
        if owner_of(name) is None
        and name not in owned
        and not name.startswith(_KEYED)
        and name not in _KEYED_NAMES
    }
    said.append(
        f"sdkconfig: {len(carried)} option(s) that differ from the app's defaults carried into "
        f"project.yaml (kconfgen save-defconfig, {config.by})"
    )
    return carried


def _security(
    config: AppConfig, folder: Path, said: list[str], steps: list[str]
) -> dict[str, object]:
    """Rollback, anti-rollback and build-time signing the app configures, as project.yaml keys."""
    found: dict[str, object] = {}
    if config.on("BOOTLOADER_APP_ROLLBACK_ENABLE"):
        found["rollback"] = True
        said.append(f"rollback: on (from {config.source}: CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE)")
    if config.on("BOOTLOADER_APP_ANTI_ROLLBACK"):
        version = int(config.get("BOOTLOADER_APP_SECURE_VERSION") or 0)
        found["secure_version"] = version
        said.append(
            f"anti-rollback: secure_version {version} (from {config.source}: "
            "CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK)"
        )
    if config.on("SECURE_SIGNED_APPS_ECDSA_SCHEME"):
        raise InitError(
            f"{config.source}: CONFIG_SECURE_SIGNED_APPS_ECDSA_SCHEME signs for Secure Boot V1, "
            "which this project does not make; choose CONFIG_SECURE_SIGNED_APPS_RSA_SCHEME or "
            "CONFIG_SECURE_SIGNED_APPS_ECDSA_V2_SCHEME"
        )
    if config.on("SECURE_BOOT_BUILD_SIGNED_BINARIES") and config.on("SECURE_SIGNED_APPS"):
        scheme = "ecdsa256" if config.on("SECURE_SIGNED_APPS_ECDSA_V2_SCHEME") else "rsa3072"
        found["sign"] = scheme
        key = str(config.get("SECURE_BOOT_SIGNING_KEY") or "secure_boot_signing_key.pem")
        path = (folder / key).resolve()
        said.append(
            f"signing: ota.sign: {scheme} (from {config.source}: "
            f"CONFIG_SECURE_BOOT_BUILD_SIGNED_BINARIES), with the app's key {key}"
        )
        steps.append(f"export OTA_SIGNING_KEY={path}")
    return found


# Where ESP-IDF's pre_encrypted_ota embeds the RSA private key it decrypts with (the default of
# apps.<name>.decrypt_key).
_DECRYPT_KEY = "rsa_key/private.pem"


def _payload(
    app: app_folder.AppFiles,
    code: app_code.AppCode,
    folder: Path,
    said: list[str],
    steps: list[str],
) -> dict[str, object]:
    """The images the app's code takes beyond plain ones, as project.yaml keys: pre-encrypted
    (esp_encrypted_img) becomes ota.encrypt with the key it embeds; delta becomes ota.delta."""
    if code.payload == "delta":
        said.append("payload: delta images (its code calls esp_delta_ota): ota.delta: true")
        return {"delta": True}
    if code.payload != "pre-encrypted":
        return {}
    keys = [path for path in app.embedded if path.lower().endswith(".pem")]
    private = [path for path in keys if "key" in path.lower() or "private" in path.lower()]
    chosen = _DECRYPT_KEY if _DECRYPT_KEY in keys else private[0] if len(private) == 1 else None
    found: dict[str, object] = {"encrypt": "rsa3072"}
    if chosen is None:
        chosen = _DECRYPT_KEY
        said.append(
            f"payload: pre-encrypted images (its code calls {app_code.DECRYPT_CALL}): "
            f"ota.encrypt: rsa3072; assumed it embeds its RSA key as {chosen} (no single key "
            "file among its EMBED_TXTFILES/EMBED_FILES); state it with apps.<name>.decrypt_key"
        )
    else:
        said.append(
            f"payload: pre-encrypted images (its code calls {app_code.DECRYPT_CALL}): "
            f"ota.encrypt: rsa3072, with the RSA key it embeds ({chosen})"
        )
    if chosen != _DECRYPT_KEY:
        found["decrypt_key"] = chosen
    if (folder / chosen).is_file():
        # Boards in the field hold this key already: keep encrypting for it.
        steps.append(f"export OTA_ENCRYPTION_KEY={(folder / chosen).resolve()}")
    return found


def plan(
    folder: Path,
    env: Mapping[str, str],
    *,
    url_option: str | None = None,
    carry_sdkconfig: bool = True,
    defaults: Sequence[str] | None = None,
    target: str | None = None,
) -> Adoption:
    """What init writes for the ESP-IDF app in `folder`.

    Raises:
        InitError: not an ESP-IDF app, an ambiguous URL option, a bad CSV, an unreadable file,
            an app that takes other images than plain ones.
    """
    try:
        app = app_folder.read_app(folder)
    except ValueError as error:
        raise InitError(f"{error}; run init in (or point it at) the app's folder") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InitError(f"{folder}: cannot be read ({error})") from None
    said = [f"name: {app.name} (from CMakeLists.txt: project())"]
    steps: list[str] = []
    idf_root = idftool.idf_path(env)
    try:
        names = app_config.defaults_files(
            folder,
            defaults or list(app.sdkconfig_defaults),
            origin="--defaults" if defaults else "CMakeLists.txt: SDKCONFIG_DEFAULTS",
        )
        chosen_target, where = app_config.target(folder, names, env, target)
        config = app_config.evaluate(
            folder, names=names, target_name=chosen_target, env=env, idf_root=idf_root, app=app
        )
    except app_config.ConfigReadError as error:
        raise InitError(str(error)) from None
    said.append(f"target: {chosen_target} (from {where})")
    said.append(f"configuration: {config.source}, evaluated by {config.by}")
    if app.sdkconfig_defaults:
        said.append(
            "CMakeLists.txt sets SDKCONFIG_DEFAULTS ("
            + ";".join(app.sdkconfig_defaults)
            + "): init read those files; in a build that value wins over the list this tool "
            "passes, so move it out of CMakeLists.txt (project.yaml's "
            "apps.<name>.sdkconfig_defaults layers them) or the build's check will say which "
            "options did not take effect"
        )
    name = _app_name(app.name)
    code = app_code.scan(
        folder,
        app_code.with_old_names(config.values, config.renames),
        examples_common=app.uses_examples_common,
        app=name,
        ca_cert=_embedded_ca(app),
    )
    said += [f"code: {line}" for line in code.assumed]
    flash = _flash(config, chosen_target, said)
    layout, table_offset = _partitions(config, folder, said)
    if layout == "two_ota" and int(flash["size"].removesuffix("MB") or 0) < 4:
        said.append(
            f"flash: 4MB, not the app's {flash['size']}: ESP-IDF's two-OTA table needs more "
            "than 3MB (set flash.size to the board's real size)"
        )
        flash["size"] = "4MB"
    version = _version(app, config, said)
    client = code.ota_client or url_option is not None or bool(app_folder.url_options(app))
    if client and not code.ota_client:
        said.append(
            "code: its own code calls no esp_https_ota, esp_https_ota_begin or esp_ota_begin "
            "(a library may); assumed esp_https_ota's defaults: the embedded CA, no version "
            f"check; state otherwise with apps.{name}.trusts and .compares_version"
        )
    if client:
        option, current_url = _url_option(app, config, url_option, said)
        ca_cert = _ca_cert(app, code, said)
        wifi = _wifi(app, config, code, chosen_target, said)
    else:
        said.append(
            "OTA client: no; its code calls no esp_https_ota, esp_https_ota_begin or "
            "esp_ota_begin and its Kconfig has no URL option, so it cannot fetch an update "
            "(pass --url-option NAME if it does so through a library)"
        )
        option, current_url, ca_cert, wifi = "", "", None, None
    security = _security(config, folder, said, steps)
    security |= _payload(app, code, folder, said, steps)
    owned = {option} - {""} | ({wifi[1], wifi[2]} if wifi else set())
    carried = _carried(folder, config, owned, env, app, said) if carry_sdkconfig else {}
    if not carry_sdkconfig:
        said.append("sdkconfig: left out (--no-sdkconfig)")
    found_version = idftool.idf_version(idf_root) if idf_root else None
    url = (
        _ota_url(current_url, name, said) if client else f"https://auto:{_DEFAULT_PORT}/{name}.bin"
    )
    said.append(f"OTA: {name} is flashed and served at {url} (auto = this machine's LAN address)")
    text = render_template(
        "project.yaml.j2",
        project_name=app.name,
        app=name,
        target=chosen_target,
        idf_version=".".join((found_version or "5.3").split(".")[:2]),
        flash=flash,
        table_offset=table_offset,
        layout=layout,
        version=version,
        url_option=option,
        ca_cert=ca_cert,
        url=url,
        wifi=wifi,
        examples_wifi=wifi is not None and wifi[1] == EXAMPLE_SSID_OPTION,
        defaults_files=names if names != ["sdkconfig.defaults"] else None,
        security=security,
        sdkconfig=[(key, yaml_value(value)) for key, value in carried.items()],
    )
    return Adoption(folder=folder, project_yaml=text, said=tuple(said), next_steps=tuple(steps))


def write(adoption: Adoption) -> list[Path]:
    """Write project.yaml and dodo.py next to the app; refuse if either exists (nothing written).

    Raises:
        InitError: project.yaml or dodo.py is already there.
    """
    files = {
        adoption.folder / "project.yaml": adoption.project_yaml,
        adoption.folder / "dodo.py": DODO,
    }
    present = [path.name for path in files if path.exists() or path.is_symlink()]
    if present:
        raise InitError(
            f"{' and '.join(present)} already in {adoption.folder}; init never overwrites: "
            "move it away first, or edit it by hand"
        )
    written: list[Path] = []
    try:
        for path, text in files.items():
            _create(path, text)
            written.append(path)
    except FileExistsError as error:
        for path in written:  # all or nothing
            path.unlink(missing_ok=True)
        raise InitError(f"{error.filename} appeared while init ran; nothing was written") from None
    return written


def _create(path: Path, text: str) -> None:
    """Write a new file whole, never over one that exists (a hard link fails if it does)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temp, 0o644)
        os.link(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
