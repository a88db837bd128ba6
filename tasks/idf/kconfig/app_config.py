"""An app's effective configuration as ESP-IDF's build makes it, for `esp-ota-doit init`: its
defaults files layered as tools/cmake/kconfig.cmake of ESP-IDF v5.3 layers SDKCONFIG_DEFAULTS
(each file, then its .<target> twin; a later one wins), its sdkconfig over them where it exists,
all evaluated by ESP-IDF's kconfgen when ESP-IDF is here; else the files as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ProjectError, ToolError
from .. import app_folder, chips, idftool
from . import kconfgen
from .sdkconfig import json_value, parse

__all__ = [
    "AppConfig",
    "ConfigReadError",
    "defaults_files",
    "evaluate",
    "menuconfig_choices",
    "target",
]

_DEFAULT_TARGET = "esp32"  # ESP-IDF's, when nothing names one (tools/cmake/targets.cmake)


class ConfigReadError(ProjectError):
    """A file of the app's configuration cannot be read, or kconfgen refused it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """The values ESP-IDF's configure step gives the app (sdkconfig.json's names and types)."""

    values: Mapping[str, Any]
    layers: tuple[str, ...]  # the files, in the order they were applied, relative to the app
    exact: bool  # kconfgen evaluated them (Kconfig's own defaults and dependencies included)
    by: str  # how, for the lines init prints
    names: tuple[str, ...] = ()  # SDKCONFIG_DEFAULTS, as given (without the .<target> twins)
    target: str = "esp32"
    idf_root: Path | None = None
    renames: Mapping[str, str] = field(default_factory=dict)  # kconfgen's sdkconfig.rename

    def get(self, name: str) -> Any:
        return self.values.get(name.removeprefix("CONFIG_"))

    def on(self, name: str) -> bool:
        return self.get(name) is True

    def chosen(self, prefix: str) -> str | None:
        """The member of choice `prefix` that is on, without the prefix (of files read as
        written, the one set last: kconfgen would turn the others off)."""
        stem = prefix.removeprefix("CONFIG_")
        members = [name for name, value in self.values.items() if value is True]
        return next(
            (name.removeprefix(stem) for name in reversed(members) if name.startswith(stem)),
            None,
        )

    @property
    def source(self) -> str:
        return ", ".join(self.layers) if self.layers else "Kconfig's defaults"


def _read(path: Path) -> dict[str, str]:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigReadError(f"{path}: cannot be read ({reason}); fix its permissions") from None


def defaults_files(
    folder: Path, named: Sequence[str] | None, *, origin: str = "--defaults"
) -> list[str]:
    """SDKCONFIG_DEFAULTS: the files named (each must exist, as ESP-IDF requires), else the
    app's sdkconfig.defaults where it has one."""
    if not named:
        return ["sdkconfig.defaults"] if (folder / "sdkconfig.defaults").is_file() else []
    for name in named:
        if not (folder / name).is_file():
            raise ConfigReadError(f"{origin} {name}: no such file in {folder}")
    return list(named)


def _layers(folder: Path, names: Sequence[str], target: str) -> list[str]:
    return [
        layer
        for name in names
        for layer in (name, f"{name}.{target}")
        if (folder / layer).is_file()
    ]


def target(
    folder: Path, names: Sequence[str], env: Mapping[str, str], chosen: str | None
) -> tuple[str, str]:
    """(IDF_TARGET, where it is from), in ESP-IDF's order: the command line, $IDF_TARGET, the
    sdkconfig, the defaults files (a later one wins), else ESP-IDF's default."""
    found: tuple[str, str] | None = None
    if chosen:
        found = (chosen, "--target")
    elif env.get("IDF_TARGET"):
        found = (env["IDF_TARGET"], "$IDF_TARGET")
    else:
        for name in ["sdkconfig", *reversed(names)]:
            value = (
                _read(folder / name).get("CONFIG_IDF_TARGET") if (folder / name).is_file() else None
            )
            if value:
                found = (str(json_value(value)), name)
                break
    if found is None:
        return _DEFAULT_TARGET, (
            "ESP-IDF's default target, as neither an sdkconfig, a defaults file nor $IDF_TARGET "
            "names one; pass --target to choose another"
        )
    if found[0] not in chips.TARGETS:
        raise ConfigReadError(
            f"target '{found[0]}' (from {found[1]}) is not supported; supported: "
            + ", ".join(chips.TARGETS)
        )
    return found


def evaluate(
    folder: Path,
    *,
    names: Sequence[str],
    target_name: str,
    env: Mapping[str, str],
    idf_root: Path | None,
    app: app_folder.AppFiles,
) -> AppConfig:
    """The app's configuration: kconfgen's where ESP-IDF is here, else the files as written.

    Raises:
        ConfigReadError: an unreadable file, or kconfgen failed on them.
    """
    layers = _layers(folder, names, target_name)
    sdkconfig = folder / "sdkconfig"
    has_sdkconfig = sdkconfig.exists()
    if has_sdkconfig:
        _read(sdkconfig)  # an unreadable one stops here, in one line
    command = kconfgen.kconfgen(env)
    if idf_root is None or command is None or not (idf_root / "Kconfig").is_file():
        values: dict[str, Any] = {}
        for layer in [*layers, *(["sdkconfig"] if has_sdkconfig else [])]:
            for name, value in _read(folder / layer).items():
                values.pop(name.removeprefix("CONFIG_"), None)  # the latest setting goes last
                values[name.removeprefix("CONFIG_")] = json_value(value)
        values.setdefault("IDF_TARGET", target_name)
        shown = [*layers, *(["sdkconfig"] if has_sdkconfig else [])]
        return AppConfig(
            values=values,
            layers=tuple(shown),
            exact=False,
            by="the files as written",
            names=tuple(names),
            target=target_name,
        )
    tree = kconfgen.tree(
        idf_root,
        target_name,
        folder,
        examples_common=app.uses_examples_common,
        minimal_build=app.minimal_build,
    )
    try:
        result = kconfgen.evaluate(
            tree,
            defaults=[folder / name for name in names],
            command=command,
            sdkconfig=sdkconfig if has_sdkconfig else None,
        )
    except ToolError as error:
        raise ConfigReadError(
            f"ESP-IDF's kconfgen refused the app's configuration: {error}"
        ) from None
    version = idftool.idf_version(idf_root) or "?"
    shown = [*layers, *(["sdkconfig"] if has_sdkconfig else [])]
    return AppConfig(
        values=result.values,
        layers=tuple(shown),
        exact=True,
        by=f"kconfgen of ESP-IDF {version} at {idf_root}",
        names=tuple(names),
        target=target_name,
        idf_root=idf_root,
        renames=result.renames,
    )


def _new_names(values: dict[str, str], renames: Mapping[str, str]) -> dict[str, str]:
    """An sdkconfig written by an older ESP-IDF under today's names, as kconfgen reads it
    (sdkconfig.rename: OLD NEW, or OLD !NEW for a bool that was inverted); a name written in
    both spellings keeps the new one's value."""
    found = dict(values)
    for name, value in values.items():
        new = renames.get(name)
        if new is None:
            continue
        del found[name]
        target = new.removeprefix("!")
        if new.startswith("!") and value in ("y", "n"):
            value = "n" if value == "y" else "y"
        if target not in values:
            found[target] = value
    return found


def menuconfig_choices(
    folder: Path, config: AppConfig, *, env: Mapping[str, str], app: app_folder.AppFiles
) -> dict[str, str]:
    """The options of the app's sdkconfig that differ from what its layered defaults give, as
    written (the idea of `idf.py save-defconfig`, by kconfgen).

    Raises:
        ConfigReadError: ESP-IDF or its kconfgen is not here, so Kconfig's defaults are unknown.
    """
    command = kconfgen.kconfgen(env)
    if not config.exact or config.idf_root is None or command is None:
        missing = "ESP-IDF" if config.idf_root is None else "ESP-IDF's kconfgen (esp-idf-kconfig)"
        raise ConfigReadError(
            f"sdkconfig: {missing} not found, so your menuconfig choices cannot be told from "
            "Kconfig's defaults; run init after ESP-IDF's export.sh (or set IDF_PATH), or pass "
            "--no-sdkconfig to leave them out"
        )
    sdkconfig = folder / "sdkconfig"
    tree = kconfgen.tree(
        config.idf_root, config.target, folder, examples_common=app.uses_examples_common
    )
    renamed = kconfgen.renames(tree)
    written = _new_names(_read(sdkconfig), renamed)
    layered: dict[str, str] = {}
    for layer in config.layers:
        if layer != "sdkconfig":
            layered |= _new_names(_read(folder / layer), renamed)
    try:
        minimal = kconfgen.min_config(
            tree, config=sdkconfig, defaults=[folder / n for n in config.names], command=command
        )
    except ToolError as error:
        raise ConfigReadError(f"ESP-IDF's kconfgen refused the app's sdkconfig: {error}") from None
    return {
        name: written[name]
        for name in sorted({*minimal, *layered})
        if name in written and layered.get(name) != written[name]
    }
