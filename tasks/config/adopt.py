"""`esp-ota-doit init`: read an existing ESP-IDF app as ESP-IDF would, and plan the project.yaml
that builds, flashes and serves it (one app: flash_app = ota.image = the app, an OTA client).

`plan` reads the app folder and returns what to write plus one line per fact it took and where
from; `write` puts project.yaml and dodo.py next to the app, never over existing files.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ProjectError
from ..files import render_template
from ..idf import app as idfapp
from ..idf import chips, idftool, kconfig, partition_files, partitions
from ..idf.sdkconfig import (
    EXAMPLE_SSID_OPTION,
    owner_of,
    parse,
    yaml_value,
)

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


@dataclass(frozen=True, slots=True)
class _Config:
    """The app's sdkconfig, else sdkconfig.defaults, option by option, with where each came from."""

    sdkconfig: Mapping[str, str]
    defaults: Mapping[str, str]

    def get(self, name: str) -> tuple[str, str] | None:
        for file, values in (("sdkconfig", self.sdkconfig), ("sdkconfig.defaults", self.defaults)):
            if name in values:
                return values[name], file
        return None

    def chosen(self, prefix: str) -> tuple[str, str] | None:
        """The member of choice `prefix` set to y: (member name, file)."""
        for file, values in (("sdkconfig", self.sdkconfig), ("sdkconfig.defaults", self.defaults)):
            for name, value in values.items():
                if name.startswith(prefix) and value == "y":
                    return name.removeprefix(prefix), file
        return None


def _unquoted(value: str) -> str:
    return value[1:-1].replace('\\"', '"').replace("\\\\", "\\") if value.startswith('"') else value


def _read_config(folder: Path, name: str) -> dict[str, str]:
    path = folder / name
    if not path.exists():
        return {}
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise InitError(f"{path}: cannot be read ({reason}); fix its permissions") from None


def _app_name(project: str) -> str:
    """project() names may hold '-' or capitals; an app name is [a-z][a-z0-9_]*."""
    name = re.sub(r"[^a-z0-9_]", "_", project.lower()).strip("_")[:31] or "app"
    return name if name[0].isalpha() else f"app_{name}"[:31]


def _target(config: _Config, said: list[str]) -> str:
    found = config.get("CONFIG_IDF_TARGET")
    target, where = (_unquoted(found[0]), found[1]) if found else ("esp32", "ESP-IDF's default")
    if target not in chips.TARGETS:
        raise InitError(
            f"target '{target}' (from {where}) is not supported; supported: "
            + ", ".join(chips.TARGETS)
        )
    said.append(f"target: {target} (from {where})")
    return target


def _flash(config: _Config, target: str, said: list[str]) -> dict[str, str]:
    size = config.chosen("CONFIG_ESPTOOLPY_FLASHSIZE_")
    mode = config.chosen("CONFIG_ESPTOOLPY_FLASHMODE_")
    freq = config.chosen("CONFIG_ESPTOOLPY_FLASHFREQ_")
    flash = {
        "size": size[0] if size else _DEFAULT_FLASH_SIZE,
        "mode": mode[0].lower() if mode else "dio",
        "freq": freq[0].lower() if freq else chips.CHIPS[target].default_freq,
    }
    where = next((found[1] for found in (size, mode, freq) if found), "ESP-IDF's defaults")
    said.append(f"flash: {flash['size']} {flash['mode']} {flash['freq']} (from {where})")
    return flash


def _partitions(config: _Config, folder: Path, said: list[str]) -> tuple[str, str]:
    offset_found = config.get("CONFIG_PARTITION_TABLE_OFFSET")
    offset = offset_found[0] if offset_found else "0x8000"
    custom = config.chosen("CONFIG_PARTITION_TABLE_")
    if custom and custom[0] == "CUSTOM":
        found = config.get("CONFIG_PARTITION_TABLE_CUSTOM_FILENAME")
        csv_name = _unquoted(found[0]) if found else "partitions.csv"
        if not (folder / csv_name).is_file():
            raise InitError(
                f"{custom[1]}: the custom partition table '{csv_name}' does not exist in "
                f"{folder}; fix CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"
            )
        _check_csv(folder / csv_name, csv_name, offset)
        said.append(
            f"partitions: {csv_name} at {offset} "
            f"(from {custom[1]}: CONFIG_PARTITION_TABLE_CUSTOM_FILENAME)"
        )
        return csv_name, offset
    member = custom[0] if custom else "SINGLE_APP"
    preset = partitions.PRESET_OPTIONS.get(member)
    where = custom[1] if custom else "ESP-IDF's default"
    # The full sdkconfig names the CSV ESP-IDF picked (the _coredump twin, for one).
    picked = _unquoted(config.sdkconfig.get("CONFIG_PARTITION_TABLE_FILENAME", ""))
    if picked.removeprefix("partitions_").removesuffix(".csv") in partitions.PRESET_NAMES:
        preset = picked.removeprefix("partitions_").removesuffix(".csv")
    if preset is None or not _has_ota(preset):
        said.append(
            f"partitions: two_ota at {offset} (the app's {member.lower()} table has no OTA "
            f"slots, from {where}; the board gets ESP-IDF's two-OTA table)"
        )
        return "two_ota", offset
    said.append(f"partitions: {preset} at {offset} (from {where}: CONFIG_PARTITION_TABLE_{member})")
    return preset, offset


def _check_csv(path: Path, name: str, offset: str) -> None:
    """The app's CSV, read with gen_esp32part's rules: a bad row stops init at its line."""
    try:
        partition_files.from_csv(path.read_text(encoding="utf-8"), table_offset=int(offset, 0))
    except (OSError, UnicodeDecodeError) as error:
        raise InitError(f"{name}: cannot be read ({error})") from None
    except partition_files.PartitionCsvError as error:
        hint = f"; {error.hint}" if error.hint else ""
        raise InitError(f"{name}:{error.line}: {error.problem}{hint}") from None


def _has_ota(preset: str) -> bool:
    return any(spec.type == 0 and 0x10 <= spec.subtype < 0x20 for spec in partitions.preset(preset))


def _version(app: idfapp.AppFiles, config: _Config, said: list[str]) -> str:
    """PROJECT_VER in ESP-IDF's order (facts §6.3): the config option when FROM_CONFIG is set,
    then set(PROJECT_VER), version.txt, project(... VERSION), else "1"."""
    from_config = config.get("CONFIG_APP_PROJECT_VER_FROM_CONFIG")
    found = config.get("CONFIG_APP_PROJECT_VER")
    configured = (
        (_unquoted(found[0]), f"{found[1]}: CONFIG_APP_PROJECT_VER")
        if found and from_config and from_config[0] == "y"
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
    app: idfapp.AppFiles, config: _Config, chosen: str | None, said: list[str]
) -> tuple[str, str]:
    """The app's URL option and the URL path/port to keep: the string option whose default is
    an https:// URL (or --url-option)."""
    options = {option.name: option for option in app.kconfig_strings}
    if chosen is not None and chosen not in options:
        raise InitError(
            f"--url-option {chosen}: no string option of that name in the app's Kconfig.projbuild"
        )
    urls = idfapp.url_options(app)
    if chosen is None and len(urls) != 1:
        where = ", ".join(f"{o.name} ({o.file.relative_to(app.root)}:{o.line})" for o in urls)
        problem = (
            f"{len(urls)} options default to an https:// URL: {where}"
            if urls
            else ("no string option in the app's Kconfig.projbuild defaults to an https:// URL")
        )
        raise InitError(
            f"URL option: {problem}; pass --url-option NAME (the option your app reads the "
            "firmware URL from)"
        )
    option = options[chosen] if chosen is not None else urls[0]
    current = config.get(option.name)
    url = _unquoted(current[0]) if current else option.default
    said.append(
        f"URL option: {option.name} ({option.file.relative_to(app.root)}:{option.line}"
        + (", --url-option" if chosen else "")
        + f"), now '{url}'"
    )
    return option.name, url


def _ota_url(url: str, app_name: str) -> str:
    parts = urlsplit(url)
    port = parts.port if parts.scheme == "https" and parts.port else _DEFAULT_PORT
    path = parts.path if parts.path not in ("", "/") else f"/{app_name}.bin"
    return f"https://auto:{port}{path}"


def _ca_cert(app: idfapp.AppFiles, said: list[str]) -> str | None:
    certs = [path for path in app.embedded if path.lower().endswith(_CA_SUFFIXES)]
    if not certs:
        said.append("CA: the app embeds no certificate (main/CMakeLists.txt); ca_cert not set")
        return None
    chosen = next((path for path in certs if "ca" in Path(path).name.lower()), certs[0])
    said.append(f"CA: {chosen} (from main/CMakeLists.txt: EMBED_TXTFILES/EMBED_FILES)")
    return chosen


def _wifi(
    app: idfapp.AppFiles, config: _Config, target: str, said: list[str]
) -> tuple[str, str, str] | None:
    """(ssid, ssid option, password option), with None options for protocol_examples_common's."""
    if not chips.CHIPS[target].has_wifi:
        return None
    found = idfapp.wifi_options(app)
    if found is None:
        said.append("Wi-Fi: no SSID/password options found; wifi: not set")
        return None
    (ssid, password), where = found
    current = config.get(ssid)
    value = _unquoted(current[0]) if current else "myssid"
    said.append(
        f"Wi-Fi: {ssid} / {password} ({where}); the password is not copied: export WIFI_PASSWORD"
    )
    return value, ssid, password


def _carried(
    folder: Path,
    target: str,
    config: _Config,
    owned: set[str],
    env: Mapping[str, str],
    idf_root: Path | None,
    examples_common: bool,
    said: list[str],
) -> dict[str, str]:
    """The sdkconfig options that differ from what the app's defaults give (save-defconfig)."""
    if not config.sdkconfig:
        said.append("sdkconfig: none in the app yet; nothing to carry")
        return {}
    command = kconfig.kconfgen(env)
    if idf_root is None or command is None or not (idf_root / "Kconfig").is_file():
        missing = "ESP-IDF" if idf_root is None else "ESP-IDF's kconfgen (esp-idf-kconfig)"
        raise InitError(
            f"sdkconfig: {missing} not found, so your menuconfig choices cannot be told from "
            "Kconfig's defaults; run init after ESP-IDF's export.sh (or set IDF_PATH), or pass "
            "--no-sdkconfig to leave them out"
        )
    tree = kconfig.tree(idf_root, target, folder, examples_common=examples_common)
    defaults = [folder / "sdkconfig.defaults"]
    minimal = kconfig.min_config(
        tree, config=folder / "sdkconfig", defaults=defaults, command=command
    )
    carried = {
        name: config.sdkconfig[name]
        for name in sorted({*minimal, *config.defaults})
        if name in config.sdkconfig
        and config.defaults.get(name) != config.sdkconfig[name]
        and owner_of(name) is None
        and name not in owned
    }
    version = kconfig.idf_version(idf_root) or "?"
    said.append(
        f"sdkconfig: {len(carried)} option(s) that differ from the app's defaults carried into "
        f"project.yaml (kconfgen save-defconfig, ESP-IDF {version} at {idf_root})"
    )
    return carried


def plan(
    folder: Path,
    env: Mapping[str, str],
    *,
    url_option: str | None = None,
    carry_sdkconfig: bool = True,
) -> Adoption:
    """What init writes for the ESP-IDF app in `folder`.

    Raises:
        InitError: not an ESP-IDF app, an ambiguous URL option, a bad CSV, an unreadable file.
    """
    try:
        app = idfapp.read_app(folder)
    except ValueError as error:
        raise InitError(f"{error}; run init in (or point it at) the app's folder") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InitError(f"{folder}: cannot be read ({error})") from None
    said = [f"name: {app.name} (from CMakeLists.txt: project())"]
    config = _Config(_read_config(folder, "sdkconfig"), _read_config(folder, "sdkconfig.defaults"))
    target = _target(config, said)
    flash = _flash(config, target, said)
    layout, table_offset = _partitions(config, folder, said)
    version = _version(app, config, said)
    option, current_url = _url_option(app, config, url_option, said)
    ca_cert = _ca_cert(app, said)
    wifi = _wifi(app, config, target, said)
    owned = {option} | ({wifi[1], wifi[2]} if wifi else set())
    idf_root = idftool.idf_path(env)
    carried = (
        _carried(folder, target, config, owned, env, idf_root, app.uses_examples_common, said)
        if carry_sdkconfig
        else {}
    )
    if not carry_sdkconfig:
        said.append("sdkconfig: left out (--no-sdkconfig)")
    found_version = kconfig.idf_version(idf_root) if idf_root else None
    name = _app_name(app.name)
    url = _ota_url(current_url, name)
    said.append(f"OTA: {name} is flashed and served at {url} (auto = this machine's LAN address)")
    text = render_template(
        "project.yaml.j2",
        project_name=app.name,
        app=name,
        target=target,
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
        sdkconfig=[(key, yaml_value(value)) for key, value in carried.items()],
    )
    return Adoption(folder=folder, project_yaml=text, said=tuple(said))


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
