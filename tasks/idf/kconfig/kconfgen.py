"""ESP-IDF's Kconfig, evaluated by ESP-IDF's own kconfgen (the esp-idf-kconfig package), the way
tools/cmake/kconfig.cmake of ESP-IDF v5.3 to v6.0 runs it: the root Kconfig, every component's
Kconfig and Kconfig.projbuild sourced through kconfigs.in files, the target, IDF_MINIMAL_BUILD,
the defaults files, sdkconfig.

Used to tell an app's menuconfig choices from Kconfig's defaults (`idf.py save-defconfig`), and
to evaluate project.yaml's options before any build (kconfig_menus.json and sdkconfig.json).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ToolError
from ...files import write_if_changed
from ..idftool import idf_version
from .sdkconfig import parse

if TYPE_CHECKING:
    from ... import process

__all__ = [
    "Evaluation",
    "KconfigTree",
    "build_renames",
    "evaluate",
    "fingerprint",
    "kconfgen",
    "min_config",
    "rename_files",
    "renames",
    "run",
    "tree",
]

_EXAMPLES_COMMON = Path("examples/common_components/protocol_examples_common")


@dataclass(frozen=True, slots=True, kw_only=True)
class KconfigTree:
    """The Kconfig inputs of one app: what ESP-IDF's CMake would hand to kconfgen."""

    idf_path: Path
    target: str
    kconfigs: tuple[Path, ...]
    projbuilds: tuple[Path, ...]
    renames: tuple[Path, ...]
    minimal_build: bool = False  # IDF_MINIMAL_BUILD (ESP-IDF v5.5+ examples)

    def files(self) -> tuple[Path, ...]:
        """Every file kconfgen reads for this tree (what its result is cached on)."""
        root = (self.idf_path / "Kconfig", self.idf_path / "sdkconfig.rename")
        return (*root, *self.kconfigs, *self.projbuilds, *self.renames)


def _component_dirs(idf_path: Path, app_root: Path, *, examples_common: bool) -> list[Path]:
    """ESP-IDF's components, protocol_examples_common when the app uses it, and the app's own
    (main/ and components/*): without MINIMAL_BUILD, v5.3 configures every one of them."""
    folders = sorted(path for path in (idf_path / "components").iterdir() if path.is_dir())
    if examples_common:
        folders.append(idf_path / _EXAMPLES_COMMON)
    folders.append(app_root / "main")
    components = app_root / "components"
    if components.is_dir():
        folders += sorted(path for path in components.iterdir() if path.is_dir())
    return folders


def tree(
    idf_path: Path,
    target: str,
    app_root: Path,
    *,
    examples_common: bool,
    minimal_build: bool = False,
) -> KconfigTree:
    """The Kconfig files ESP-IDF at `idf_path` reads for the app at `app_root`."""
    folders = _component_dirs(idf_path, app_root, examples_common=examples_common)

    def existing(name: str) -> tuple[Path, ...]:
        return tuple(folder / name for folder in folders if (folder / name).is_file())

    return KconfigTree(
        idf_path=idf_path,
        target=target,
        kconfigs=existing("Kconfig"),
        projbuilds=existing("Kconfig.projbuild"),
        renames=existing("sdkconfig.rename") + existing(f"sdkconfig.rename.{target}"),
        minimal_build=minimal_build,
    )


def kconfgen(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """How to run kconfgen: ESP-IDF's own Python environment first (export.sh sets it), else
    this interpreter when esp-idf-kconfig is installed here."""
    idf_python = Path(env.get("IDF_PYTHON_ENV_PATH", "")) / "bin" / "python"
    if env.get("IDF_PYTHON_ENV_PATH") and idf_python.is_file():
        return (str(idf_python), "-m", "kconfgen")
    if importlib.util.find_spec("kconfgen") is not None:
        return (sys.executable, "-m", "kconfgen")
    return None


def _config_env(kconfig: KconfigTree, work: Path) -> Path:
    """config.env and the two kconfigs*.in files that ESP-IDF's prepare_kconfig_files.py writes."""
    sources = {
        "COMPONENT_KCONFIGS_SOURCE_FILE": (work / "kconfigs.in", kconfig.kconfigs),
        "COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE": (
            work / "kconfigs_projbuild.in",
            kconfig.projbuilds,
        ),
    }
    for file, paths in sources.values():
        # Unchanged files keep their mtime (the stand-in's second build does no work).
        write_if_changed(file, "".join(f'source "{path}"\n' for path in paths))
    env = {
        "COMPONENT_KCONFIGS": ";".join(map(str, kconfig.kconfigs)),
        "COMPONENT_KCONFIGS_PROJBUILD": ";".join(map(str, kconfig.projbuilds)),
        "COMPONENT_SDKCONFIG_RENAMES": ";".join(map(str, kconfig.renames)),
        "IDF_TARGET": kconfig.target,
        "IDF_TOOLCHAIN": "gcc",
        "IDF_VERSION": idf_version(kconfig.idf_path) or "",
        "IDF_ENV_FPGA": "",
        "IDF_PATH": str(kconfig.idf_path),
        **{name: str(file) for name, (file, _) in sources.items()},
    }
    path = work / "config.env"
    write_if_changed(path, json.dumps(env))
    return path


def _defaults_args(kconfig: KconfigTree, defaults: Sequence[Path]) -> list[str]:
    """--defaults for each file and, right after it, its .<target> twin (kconfig.cmake)."""
    return [
        arg
        for path in defaults
        for layer in (path, path.with_name(f"{path.name}.{kconfig.target}"))
        if layer.is_file()
        for arg in ("--defaults", str(layer))
    ]


def run(
    kconfig: KconfigTree,
    *,
    command: Sequence[str],
    config: Path,
    defaults: Sequence[Path],
    work: Path,
    outputs: Sequence[tuple[str, Path]],
) -> process.Captured:
    """Run kconfgen as tools/cmake/kconfig.cmake does: `config` is read (kconfgen may rewrite
    it), the defaults layered in, and each (format, path) of `outputs` written; `work` holds
    config.env and the kconfigs*.in files.

    Raises:
        ToolError: kconfgen failed or wrote nothing; the message carries its last line.
    """
    line = [
        *command,
        "--list-separator=semicolon",
        "--kconfig",
        str(kconfig.idf_path / "Kconfig"),
        "--sdkconfig-rename",
        str(kconfig.idf_path / "sdkconfig.rename"),
        "--config",
        str(config),
        *_defaults_args(kconfig, defaults),
        # v5.5+ pass it on the command line; older releases' Kconfig never reads it.
        "--env",
        f"IDF_MINIMAL_BUILD={'y' if kconfig.minimal_build else 'n'}",
        "--env-file",
        str(_config_env(kconfig, work)),
        *(arg for kind, path in outputs for arg in ("--output", kind, str(path))),
    ]
    env = {**os.environ, "IDF_TARGET": kconfig.target, "IDF_PATH": str(kconfig.idf_path)}
    from ... import process  # kconfgen runs in actions only (bench/noop.py)

    done = process.capture(line, env=env)
    if done.returncode != 0 or not all(path.is_file() for _, path in outputs):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ToolError(f"kconfgen failed (exit {done.returncode}): {tail[0]}")
    return done


def min_config(
    kconfig: KconfigTree,
    *,
    config: Path,
    defaults: Sequence[Path],
    command: Sequence[str],
) -> dict[str, str]:
    """The options of `config` (an sdkconfig) that differ from Kconfig's defaults, as written
    (what `idf.py save-defconfig` keeps). `config` itself is only read.

    Raises:
        ToolError: kconfgen failed; the message carries its last line.
    """
    with tempfile.TemporaryDirectory(prefix="esp-ota-kconfig-") as folder:
        work = Path(folder)
        copy = work / "sdkconfig"  # kconfgen may rewrite --config: never the app's own file
        copy.write_bytes(config.read_bytes())
        minimal = work / "sdkconfig.min"
        run(
            kconfig,
            command=command,
            config=copy,
            defaults=defaults,
            work=work,
            outputs=[("savedefconfig", minimal)],
        )
        return parse(minimal.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """What ESP-IDF's configure step would decide: kconfig_menus.json (every symbol, its type,
    range and dependency) and sdkconfig.json (the value of each visible symbol)."""

    menus: list[Any]
    values: dict[str, Any]
    renames: dict[str, str]  # CONFIG_OLD -> CONFIG_NEW, or !CONFIG_NEW for an inverted bool
    log: tuple[str, ...]  # kconfgen's own lines (warnings about the defaults)


def renames(kconfig: KconfigTree) -> dict[str, str]:
    """ESP-IDF's sdkconfig.rename files of the tree, old name -> new name."""
    return rename_files((kconfig.idf_path / "sdkconfig.rename", *kconfig.renames))


def build_renames(build_dir: Path) -> dict[str, str] | None:
    """The renames a finished configure step used, from the build's config.env (the JSON that
    tools/cmake/kconfig.cmake writes: COMPONENT_SDKCONFIG_RENAMES and IDF_PATH); None without it."""
    try:
        env = json.loads((build_dir / "config.env").read_text(encoding="utf-8"))
        listed = str(env.get("COMPONENT_SDKCONFIG_RENAMES", ""))
        root = Path(str(env["IDF_PATH"])) / "sdkconfig.rename"
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return rename_files((root, *(Path(p) for p in re.split(r"[;\s]+", listed) if p)))


def rename_files(paths: Sequence[Path]) -> dict[str, str]:
    """sdkconfig.rename files, old name -> new name (!NEW for an inverted bool)."""
    found: dict[str, str] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) == 2 and words[0].startswith("CONFIG_"):
                found[words[0]] = words[1]
    return found


def fingerprint(kconfig: KconfigTree, command: Sequence[str], extra: str = "") -> str:
    """What an evaluation depends on: the Kconfig files (path, size, mtime), target, kconfgen."""
    digest = hashlib.sha256(json.dumps([list(command), kconfig.target, extra]).encode())
    digest.update(str(kconfig.minimal_build).encode())
    for path in kconfig.files():
        try:
            stat = path.stat()
        except OSError:
            digest.update(f"{path}:-\n".encode())
            continue
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def evaluate(
    kconfig: KconfigTree,
    *,
    defaults: Sequence[Path],
    command: Sequence[str],
    cache: Path | None = None,
    sdkconfig: Path | None = None,
) -> Evaluation:
    """Run kconfgen as ESP-IDF's configure step does, from `defaults` (and an existing
    `sdkconfig`, only read, whose values win as they do in a build; else a fresh one), cached in
    `cache` on the Kconfig files' fingerprint and the inputs' bytes.

    Raises:
        ToolError: kconfgen failed; the message carries its last line.
    """
    layers = [Path(arg) for arg in _defaults_args(kconfig, defaults) if arg != "--defaults"]
    inputs = [p.read_text("utf-8") for p in (*layers, *([sdkconfig] if sdkconfig else []))]
    key = fingerprint(kconfig, command, json.dumps(inputs))
    if cache is not None and cache.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            stored = json.loads(cache.read_text(encoding="utf-8"))
            if stored["key"] == key:
                return Evaluation(
                    **{**stored["evaluation"], "log": tuple(stored["evaluation"]["log"])}
                )
    with tempfile.TemporaryDirectory(prefix="esp-ota-kconfig-") as folder:
        work = Path(folder)
        menus, values = work / "kconfig_menus.json", work / "sdkconfig.json"
        if sdkconfig is not None:  # kconfgen may rewrite --config: never the app's own file
            (work / "sdkconfig").write_bytes(sdkconfig.read_bytes())
        done = run(
            kconfig,
            command=command,
            config=work / "sdkconfig",
            defaults=defaults,
            work=work,
            outputs=[("json_menus", menus), ("json", values)],
        )
        result = Evaluation(
            menus=json.loads(menus.read_text(encoding="utf-8")),
            values=json.loads(values.read_text(encoding="utf-8")),
            renames=renames(kconfig),
            log=tuple((done.stdout + done.stderr).splitlines()),
        )
    if cache is not None:
        stored_text = json.dumps({"key": key, "evaluation": dataclasses.asdict(result)})
        cache.parent.mkdir(parents=True, exist_ok=True)
        temp = cache.with_name(f".{cache.name}.{os.getpid()}")
        temp.write_text(stored_text, encoding="utf-8")
        temp.replace(cache)
    return result
