"""Loading project.yaml into a Project: each key by the model's own checks, then the rules that
span keys, the partition table's placement, and one located line per problem. `load()` is pure
given its inputs (text, environment, host resolver, project dir); each app's Kconfig is checked
later, by the kconfig task, through `kconfig_problems`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ..errors import ConfigError, ConfigErrors, KeyPath
from ..idf import app_code, app_folder, chips, idftool, releases
from ..idf.kconfig.symbols import AppKconfig
from ..idf.partition import rules
from ..idf.partition.rules import Partition, PartitionTable
from . import layout, schema
from .model import App, Project, Sdkconfig, load_section
from .schema import Invalid, UnknownKeyError
from .yamlsource import SourceMap, parse

__all__ = ["kconfig_problems", "load"]


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
    elif not app_folder.is_idf_app(folder):
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
    yield from _encrypt_checks(project, idf_root)
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
    if ota is not None and ota.sign_command is not None and ota.sign is None:
        yield ConfigError(
            ("ota", "sign_command"),
            "signs nothing: ota.sign is not set",
            f"set ota.sign: {chip.sign_schemes[0]} (the scheme of the key it signs with)",
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


def _encrypt_checks(project: Project, idf_root: Path | None) -> Iterator[ConfigError]:
    """ota.encrypt: every OTA client must decrypt (its code calls esp_encrypted_img), and the
    two components do not combine (a patch of an encrypted image is not what either takes)."""
    ota = project.ota
    if ota is None or ota.encrypt is None:
        return
    if ota.delta:
        yield ConfigError(
            ("ota", "encrypt"),
            "ota.encrypt and ota.delta do not combine: esp_encrypted_img decrypts whole images "
            "and esp_delta_ota patches plain ones",
            "choose one of them",
        )
    for app in project.apps:
        folder = app.folder(project.project_dir, idf_root)
        if not app.ota_client or folder is None or not folder.is_dir():
            continue
        if not app_code.decrypts(folder):
            yield ConfigError(
                ("ota", "encrypt"),
                f"OTA client app '{app.name}' does not decrypt: its code never calls "
                f"{app_code.DECRYPT_CALL} (esp_encrypted_img), so it would write the "
                "encrypted bytes as they come",
                "use an OTA client built on esp_encrypted_img (like ESP-IDF's "
                "examples/system/ota/pre_encrypted_ota), or remove ota.encrypt",
            )


def _ota_layout_checks(project: Project) -> Iterator[ConfigError]:
    table, layout_name = project.table, project.partitions.layout[0]
    if project.ota is None:
        return
    test = [p for p in table.partitions if p.type == rules.APP_TYPE and p.subtype == 0x20]
    # Anti-rollback from secure_version, or from an app's own defaults files (kconfgen's word).
    anti_rollback = project.anti_rollback or any(
        found.values.get("BOOTLOADER_APP_ANTI_ROLLBACK") is True for _, found in project.kconfig
    )
    if anti_rollback and (table.factory is not None or test):
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
    elif project.ota.delta and len(table.ota_slots) < 2:
        yield ConfigError(
            ("ota", "delta"),
            "esp_delta_ota rebuilds the new image from the running OTA slot into the passive "
            "one, so it needs two OTA slots (ota_0, ota_1), as ESP-IDF's https_delta_ota table has",
            "use layout two_ota (or add ota_1), or remove ota.delta",
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
        from ..idf.partition import formats  # as in _csv_table

        text = (project.project_dir / name).read_text(encoding="utf-8")
        return ("partitions", "layout"), f"{name}:{formats.row_lines(text)[index]}: "
    return ("partitions", "layout"), ""


def _found_release(idf_root: Path | None) -> str:
    """The major.minor of the ESP-IDF found, when it is one this project builds with."""
    found = idftool.idf_version(idf_root) if idf_root is not None else None
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


def _client_options(
    project: Project, app: App, idf_root: Path | None
) -> tuple[App, ConfigError | None]:
    """An ota_client app with its URL (and its own Wi-Fi) options found in its Kconfig files,
    where url_option / wifi_*_option do not name them; unchanged when its folder is not here."""
    folder = app.folder(project.project_dir, idf_root)
    if not app.ota_client or project.ota is None or folder is None:
        return app, None
    try:
        files = app_folder.read_app(folder)
    except (OSError, UnicodeDecodeError, ValueError):
        return app, None  # the path checks say what is wrong with it
    if app.wifi_ssid_option is None and app.wifi_password_option is None:
        found = app_folder.wifi_options(files)
        if found is not None and found[1] != "protocol_examples_common":
            (ssid, password), _ = found
            app = dataclasses.replace(app, wifi_ssid_option=ssid, wifi_password_option=password)
    if app.url_option is not None:
        return app, None
    urls = app_folder.url_options(files)
    if len(urls) == 1:
        return dataclasses.replace(app, url_option=urls[0].name), None
    listed = ", ".join(f"{o.name} ({o.file.relative_to(folder)}:{o.line})" for o in urls)
    problem = (
        f"{len(urls)} options of the app's Kconfig default to an https:// URL: {listed}"
        if urls
        else "no string option of the app's Kconfig.projbuild defaults to an https:// URL"
    )
    hint = f"set apps.{app.name}.url_option to the option the app reads the firmware URL from"
    return app, ConfigError(("apps", app.name, "ota_client"), problem, hint)


def _with_client_options(
    project: Project, idf_root: Path | None
) -> tuple[Project, list[ConfigError]]:
    found = [_client_options(project, app, idf_root) for app in project.apps]
    errors = [error for _, error in found if error is not None]
    return dataclasses.replace(project, apps=tuple(app for app, _ in found)), errors


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
    # Imported here: a project with a preset or a list layout does not load the CSV reader.
    from ..idf.partition import formats

    csv_file = project.project_dir / name
    try:
        text = csv_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path,
            f"'{name}' does not exist next to project.yaml",
            "fix the path, or name a preset ("
            + ", ".join(rules.presets_of(project.idf.version))
            + ")",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(path, f"'{name}' cannot be read ({reason})") from None
    try:
        return formats.from_csv(
            text,
            table_offset=project.partitions.table_offset,
            release=project.idf.version,
            bootloader_offset=chips.CHIPS[project.target].bootloader_offset,
        )
    except formats.PartitionCsvError as error:
        raise ConfigError(path, f"{name}:{error.line}: {error.problem}", error.hint) from None


def _place_table(project: Project, data: object) -> Project:
    """The table, laid out and checked for idf.version (`data` is project.yaml as parsed)."""
    layout_path: KeyPath = ("partitions", "layout")
    name, specs = project.partitions.layout
    release = project.idf.version
    since = rules.preset_since(name) if name in rules.PRESET_NAMES else release
    if releases.numbers(release) < releases.numbers(since):
        raise ConfigError(
            layout_path,
            f"preset '{name}' is in ESP-IDF {since} and later, not in {release}",
            f'set idf.version: "{since}" or later, or use another preset',
        )
    if name.lower().endswith(".csv"):
        table = _csv_table(project, name, layout_path)
    else:
        if name == "custom":
            raw = data.get("partitions", {}) if isinstance(data, dict) else {}
            raw_rows = raw.get("layout") if isinstance(raw, dict) else None
            specs = layout.rows_for_release(raw_rows, layout_path, release)
            where = dataclasses.replace(project.partitions, layout=(name, specs))
            project = dataclasses.replace(project, partitions=where)
        table = rules.layout(
            specs,
            table_offset=project.partitions.table_offset,
            path=layout_path,
            release=release,
            bootloader_offset=chips.CHIPS[project.target].bootloader_offset,
        )
    rules.check_flash_size(table, project.flash.size, ("flash", "size"))
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
    idf_root: Path | None = None,
) -> Project:
    """Validate project.yaml text into a Project; `idf_root` is the ESP-IDF found, if any. It
    starts no process: what needs kconfgen is the kconfig task's (`kconfig_problems`).

    Raises:
        ConfigErrors: every independent problem, one `file:line:col: key.path: problem; fix` line
            each, in file order. Cross-field rules run only when each key is valid on its own.
    """
    data, source = parse(text, file=file, env=env)
    try:
        project: Project = load_section(Project, data, (), project_dir=project_dir)
        project = _resolve(project, resolve_host, idf_root)
        project, errors = _with_client_options(project, idf_root)
        errors += [*_cross_checks(project, idf_root), *_release_checks(project)]
        if not errors:
            project = _place_table(project, data)
            errors = list(_ota_layout_checks(project))
    except ConfigError as error:
        errors = [error]
    except Invalid as invalid:
        errors = invalid.errors
    if errors:
        raise _format(errors, source)
    return project


def kconfig_problems(
    text: str,
    *,
    file: str,
    env: Mapping[str, str],
    project: Project,
    found: Mapping[str, AppKconfig],
    failed: list[ConfigError],
) -> tuple[ConfigErrors | None, tuple[str, ...]]:
    """What is wrong with project.yaml's CONFIG_ options under each app's Kconfig (`found`, as
    kconfgen evaluated it; `failed`: the apps it could not evaluate), located in `text`: the
    errors, if any, and the warning lines (a renamed option still works)."""
    from . import kconfig_checks  # the kconfig task's action alone checks options

    _, source = parse(text, file=file, env=env)
    project = dataclasses.replace(project, kconfig=tuple(found.items()))
    errors: list[ConfigError] = list(failed)
    warnings: list[ConfigError] = []
    for is_warning, error in kconfig_checks.findings(project, found):
        (warnings if is_warning else errors).append(error)
    if not errors:  # an app's own defaults may turn anti-rollback on, too
        errors = list(_ota_layout_checks(project))
    return (_format(errors, source) if errors else None), _format(warnings, source).lines
