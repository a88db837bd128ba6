"""The idf.py stand-in's configure step: ESP-IDF's own kconfgen (idf/kconfig/kconfgen.py) over the
Kconfig files of the ESP-IDF tree at $IDF_PATH (or the virtual tree), as
tools/cmake/kconfig.cmake of v5.3 runs it. Its outputs are kconfgen's: sdkconfig, sdkconfig.h,
sdkconfig.json and kconfig_menus.json; the flash settings and the target of an sdkconfig are
read from them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ProjectError, ToolError
from ...idf import app_folder, idftool
from ...idf.kconfig import kconfgen
from ...idf.partition import rules
from .. import virtual_idf

__all__ = [
    "TABLE_PRESETS",
    "Config",
    "IdfPyError",
    "Value",
    "configure",
    "flash_settings",
    "idf_root",
    "outputs",
    "sdkconfig_target",
    "values_of",
]

Value = bool | int | str
# PARTITION_TABLE_<member> -> the partitions.preset() it selects; CUSTOM reads a CSV instead.
TABLE_PRESETS = rules.PRESET_OPTIONS
# What kconfgen writes, and where the configure step puts it (relative to the build folder,
# except sdkconfig, which goes where SDKCONFIG says).
_OUTPUTS = (
    ("config", "sdkconfig"),
    ("header", "config/sdkconfig.h"),
    ("json", "config/sdkconfig.json"),
    ("json_menus", "config/kconfig_menus.json"),
)


class IdfPyError(ProjectError):
    """What idf.py reports before exiting 2; `tool` names the cmake or ninja run that failed."""

    def __init__(self, lines: Sequence[str], *, tool: str = "", failed: str = "") -> None:
        super().__init__("\n".join(lines))
        self.lines, self.tool, self.failed = list(lines), tool, failed


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """What the configure step decided: kconfgen's outputs and values, and the project's name,
    version and partition table."""

    target: str
    values: Mapping[str, Any]  # sdkconfig.json: every visible symbol, typed, without CONFIG_
    texts: Mapping[str, str]  # kconfgen's outputs by format: config, header, json, json_menus
    sdkconfig: Path
    defaults: tuple[Path, ...]
    tree: kconfgen.KconfigTree
    name: str
    version: str
    table: rules.PartitionTable | None
    missing_csv: str = ""

    @property
    def kconfigs(self) -> tuple[Path, ...]:
        return self.tree.kconfigs

    @property
    def projbuilds(self) -> tuple[Path, ...]:
        return self.tree.projbuilds


def idf_root(build: Path) -> Path:
    """The ESP-IDF tree to configure with: the one $IDF_PATH names, else the virtual tree,
    written (unchanged files untouched) under the build folder."""
    given = idftool.idf_tree(os.environ)
    if given is not None:
        return given
    root = build / "standin-esp-idf"
    virtual_idf.write(root)
    return root


def sdkconfig_target(path: Path) -> str:
    """CONFIG_IDF_TARGET of an sdkconfig (or defaults) file; empty when absent."""
    text = path.read_text() if path.is_file() else ""
    match = re.search(r'^CONFIG_IDF_TARGET="([^"]*)"', text, re.M)
    return match[1] if match else ""


def _menu_lines(menu: str) -> list[str]:
    """The assignments a non-interactive menuconfig applies (`;`-separated, quotes kept)."""
    return re.findall(r'CONFIG_\w+=(?:"(?:[^"\\]|\\.)*"|[^;]*)', menu)


def _with_menu(text: str, menu: str) -> str:
    """sdkconfig with menuconfig's assignments replacing the lines of the options they set."""
    lines = _menu_lines(menu)
    names = {line.partition("=")[0] for line in lines}
    kept = [
        line
        for line in text.splitlines()
        if line.partition("=")[0] not in names
        and not any(line == f"# {name} is not set" for name in names)
    ]
    return "\n".join([*kept, *lines]) + "\n"


def _run(
    tree: kconfgen.KconfigTree,
    sdkconfig: Path,
    defaults: Sequence[Path],
    work: Path,
    *,
    build: Path,
    menu: str,
) -> dict[str, str]:
    """kconfgen's outputs by format; its own lines (warnings about the inputs) go to stderr.
    config.env and kconfigs*.in land in `build`, where ESP-IDF's CMake writes them."""  # fmt: skip
    command = kconfgen.kconfgen(os.environ)
    if command is None:
        raise IdfPyError(["esp-idf-kconfig is not installed: kconfgen cannot run"], tool="cmake")
    config = work / "sdkconfig"
    if sdkconfig.is_file():
        config.write_bytes(sdkconfig.read_bytes())
    outputs = [(kind, work / f"out-{kind}") for kind, _ in _OUTPUTS]
    for round_menu in ("", menu) if menu else ("",):
        if round_menu:  # menuconfig saves over what the first run wrote
            config.write_text(_with_menu((work / "out-config").read_text(), round_menu))
        try:
            done = kconfgen.run(
                tree, command=command, config=config, defaults=defaults, work=build, outputs=outputs
            )
        except ToolError as error:
            raise IdfPyError([str(error)], tool="cmake") from None
        for line in (done.stdout + done.stderr).splitlines():
            if not line.startswith("Loading "):
                print(line, file=sys.stderr)
    return {kind: path.read_text() for kind, path in outputs}


def configure(
    project: Path, *, target: str, sdkconfig: Path, defaults: Sequence[Path], build: Path, menu: str
) -> tuple[kconfgen.KconfigTree, dict[str, str]]:
    """Run kconfgen for the app at `project`: (its Kconfig tree, outputs by format)."""
    files = app_folder.read_app(project)
    tree = kconfgen.tree(
        idf_root(build),
        target,
        project,
        examples_common=files.uses_examples_common,
        minimal_build=files.minimal_build,
    )
    with tempfile.TemporaryDirectory(prefix="standin-kconfig-") as folder:
        build.mkdir(parents=True, exist_ok=True)
        return tree, _run(tree, sdkconfig, defaults, Path(folder), build=build, menu=menu)


def outputs(config: Config, build: Path) -> dict[Path, str]:
    """Where the configure step writes each of kconfgen's outputs."""
    return {
        config.sdkconfig if kind == "config" else build / where: config.texts[kind]
        for kind, where in _OUTPUTS
    }


def values_of(texts: Mapping[str, str]) -> dict[str, Any]:
    """sdkconfig.json's values."""
    found = json.loads(texts["json"])
    return found if isinstance(found, dict) else {}


def flash_settings(values: Mapping[str, Value]) -> tuple[str, str, str]:
    """(flash mode, size, frequency) as esptool spells them."""
    return tuple(str(values[f"ESPTOOLPY_FLASH{k}"]) for k in ("MODE", "SIZE", "FREQ"))  # type: ignore[return-value]
