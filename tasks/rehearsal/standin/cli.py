"""A stand-in for idf.py (ESP-IDF v5.3.2) on machines without ESP-IDF: its CLI and actions, and
the build flow from configure (target, CMakeCache, sdkconfig) to the outputs of
docs/esp-idf.md §5.5.
`python -m esp_ota_doit.rehearsal.standin <args>` runs it; configure (kconfgen) and images are
its siblings.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ...files import write_if_changed
from ...idf.chips import CHIPS, TARGETS
from ...idf.partition import formats, rules
from . import standin_config, standin_images
from .standin_config import TABLE_PRESETS, Config, IdfPyError, Value

__all__ = ["main"]

_IDF_VER = "v5.3.2"
_USAGE = "Usage: idf.py [OPTIONS] COMMAND1 [ARGS]... [COMMAND2 [ARGS]...]..."
_TARGETS_CMAKE = "tools/cmake/targets.cmake"
_KEPT_ENTRIES = ("SDKCONFIG", "SDKCONFIG_DEFAULTS")  # cache entries later calls inherit
_STOPPED = {
    "ninja": "ninja: build stopped: subcommand failed.",
    "cmake": "-- Configuring incomplete, errors occurred!",
}
# The tools' own wording, verbatim (str.format fields), so that searching for it still works.
_TEXTS = {
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


def _cmake_error(text: str, where: str = "tools/cmake/project.cmake") -> IdfPyError:
    return IdfPyError([f"CMake Error at {where} (message):", f"  {text}"], tool="cmake")


# --- the project: name, version -------------------------------------------------------------


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


def _project_name(project: Path) -> str:
    path = project / "CMakeLists.txt"
    if not path.is_file():
        raise IdfPyError([f"CMakeLists.txt not found in project directory {project}"])
    match = re.search(r"^\s*project\s*\(\s*([^\s)]+)", path.read_text(), re.M | re.I)
    if match is None:
        raise _cmake_error("No project() command is present in the top-level CMakeLists.txt")
    return match[1]


def _project_version(project: Path, values: Mapping[str, Value]) -> str:
    """PROJECT_VER in the order of docs/esp-idf.md §6.3; `git describe` is not tried."""
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


def _entries(ctx: _Ctx) -> dict[str, str]:
    """This call's cache entries: SDKCONFIG and SDKCONFIG_DEFAULTS kept from earlier calls, -D."""
    return {k: v for k, v in _read_cache(ctx.build).items() if k in _KEPT_ENTRIES} | dict(
        ctx.defines
    )


def _target(
    ctx: _Ctx, entries: Mapping[str, str], sdkconfig: Path, defaults: Sequence[Path]
) -> str:
    """IDF_TARGET as docs/esp-idf.md §5.3 choose it, with idf.py's and CMake's mismatch errors."""
    env, cached = os.environ.get("IDF_TARGET", ""), _read_cache(ctx.build).get("IDF_TARGET", "")
    old, given = standin_config.sdkconfig_target(sdkconfig), ctx.defines.get("IDF_TARGET", "")
    if env and old and env != old:
        raise IdfPyError([_TEXTS["env-target"].format(cfg=sdkconfig, old=old, new=env)])
    if env and given and env != given:
        raise IdfPyError([_TEXTS["cli-target"].format(old=env, new=given)])
    explicit = env or entries.get("IDF_TARGET", "")
    if cached and explicit and explicit != cached:
        raise _cmake_error(_TEXTS["cache-target"].format(old=cached, new=explicit), _TARGETS_CMAKE)
    requested = explicit or cached
    if requested and old and requested != old:
        text = _TEXTS["sdkconfig-target"].format(cfg=sdkconfig, old=old, new=requested)
        raise _cmake_error(text, _TARGETS_CMAKE)
    target = (
        requested or old or next(filter(None, map(standin_config.sdkconfig_target, defaults)), "")
    )
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


def _load(ctx: _Ctx, *, menu: str, force_target: str) -> Config:
    entries = _entries(ctx) | ({"IDF_TARGET": force_target} if force_target else {})
    sdkconfig = ctx.project / entries.get("SDKCONFIG", "sdkconfig")
    defaults = _defaults_files(ctx.project, entries)
    target = _target(ctx, entries, sdkconfig, defaults)
    name = _project_name(ctx.project)
    tree, texts = standin_config.configure(
        ctx.project, target=target, sdkconfig=sdkconfig, defaults=defaults, build=ctx.build,
        menu=menu,
    )  # fmt: skip
    values = standin_config.values_of(texts)
    table, missing = _table(ctx.project, values)
    version = _project_version(ctx.project, values)
    return Config(target=target, values=values, texts=texts, sdkconfig=sdkconfig,
                  defaults=defaults, tree=tree, name=name, version=version, table=table,
                  missing_csv=missing)  # fmt: skip


def _table(project: Path, values: Mapping[str, Value]) -> tuple[rules.PartitionTable | None, str]:
    """The partition table (and no CSV path), or None and the custom CSV that is missing."""
    offset = int(values["PARTITION_TABLE_OFFSET"])
    try:
        if values.get("PARTITION_TABLE_CUSTOM") is not True:
            member = next(k for k in TABLE_PRESETS if values.get(f"PARTITION_TABLE_{k}") is True)
            preset = rules.preset(TABLE_PRESETS[member])
            return rules.layout(preset, table_offset=offset, path=()), ""
        csv = project / str(values["PARTITION_TABLE_CUSTOM_FILENAME"])
        if not csv.is_file():
            print(f"CMake Warning: {_TEXTS['csv-not-found'].format(csv=csv)}", file=sys.stderr)
            return None, str(csv)
        return formats.from_csv(csv.read_text(), table_offset=offset), ""
    except (formats.PartitionCsvError, ConfigError) as err:
        text = err.message if isinstance(err, ConfigError) else str(err)
        raise _cmake_error(text, "components/partition_table/project_include.cmake") from None


def _configure_outputs(ctx: _Ctx, config: Config) -> dict[Path, tuple[bytes | str, int]]:
    build, values, secret = ctx.build, config.values, 0o600  # sdkconfig may hold a Wi-Fi password
    description = standin_images.project_description(
        config, project=ctx.project, build=build, idf_ver=ctx.idf_ver
    )
    outputs: dict[Path, tuple[bytes | str, int]] = {
        path: (text, secret) for path, text in standin_config.outputs(config, build).items()
    }
    outputs |= {
        build / "project_description.json": (description, 0o644),
        build / "flasher_args.json": (standin_images.flasher_args(config), 0o644),
    }
    for name, keys in (
        ("flash_args", ("bootloader", "app", "partition-table", "otadata")),
        ("flash_app_args", ("app",)),
        ("flash_bootloader_args", ("bootloader",)),
    ):
        outputs[build / name] = (standin_images.args_file(config, keys), 0o644)
    outputs[build / "flash_project_args"] = outputs[build / "flash_args"]
    if values["APP_REPRODUCIBLE_BUILD"]:
        idf = os.environ.get("IDF_PATH", "")
        pairs = [("/IDF", idf)] * bool(idf)
        pairs += [("/IDF_PROJECT", str(ctx.project)), ("/IDF_BUILD", str(build))]
        text = "".join(f"set substitute-path {a} {b}\n" for a, b in pairs)
        outputs[build / "prefix_map_gdbinit"] = (text, 0o644)
    return outputs


def _unchanged(path: Path, data: bytes | str) -> bool:
    content = data.encode() if isinstance(data, str) else data
    return path.is_file() and path.read_bytes() == content


def _configure(ctx: _Ctx, *, announce: bool, menu: str = "", force_target: str = "") -> Config:
    """Run the configure step; print CMake's lines when it ran or ninja re-ran it."""
    if announce:
        _announce_cmake(ctx, force_target)
    config = _load(ctx, menu=menu, force_target=force_target)
    outputs = _configure_outputs(ctx, config)
    cache = _cache_text(ctx, _entries(ctx), config.target)
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


# --- build: ninja's steps, failures ----------------------------------------------------------


def _build(ctx: _Ctx, config: Config) -> None:
    steps = standin_images.steps(config, project=ctx.project, build=ctx.build, idf_ver=ctx.idf_ver)
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


def _print_flash_hint(ctx: _Ctx, config: Config) -> None:
    values = config.values
    esptool = f"python -m esptool --chip {config.target} -b {ctx.baud} --before "
    esptool += f"{values['ESPTOOLPY_BEFORE']} --after {values['ESPTOOLPY_AFTER']}"
    esptool += " --no-stub" if values["ESPTOOLPY_NO_STUB"] is True else ""
    mode, size, freq = standin_images.flash_args_settings(values)
    files = sorted(standin_images.flash_files(config).values())
    listed = " ".join(f"{hex(off)} {os.path.relpath(ctx.build / path)}" for off, path in files)
    print("\nProject build complete. To flash, run:\n idf.py flash\nor\n idf.py -p PORT flash\nor")
    print(f" {esptool} write_flash --flash_mode {mode} --flash_size {size} --flash_freq {freq}",
          listed)  # fmt: skip
    print(f'or from the "{ctx.build}" directory\n {esptool} write_flash "@flash_args"')


def _write_logs(build: Path, err: IdfPyError) -> tuple[Path, Path]:
    out, errors = (
        build / "log" / f"idf_py_{kind}_output_{os.getpid()}" for kind in ("stdout", "stderr")
    )
    stdout = [f"FAILED: {err.failed}"] * bool(err.failed) + [_STOPPED[err.tool]]
    write_if_changed(out, "".join(f"{line}\n" for line in stdout))
    write_if_changed(errors, "".join(f"{line}\n" for line in err.lines))
    return out, errors


def _report(build: Path | None, err: IdfPyError) -> int:
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
        raise IdfPyError([_TEXTS["not-a-build-dir"].format(build=build)])
    for name in ("CMakeLists.txt", ".git", ".svn"):
        if (build / name).exists():
            raise IdfPyError([_TEXTS["refuse-clean"].format(name=name)])
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
        raise IdfPyError(
            [_USAGE, f"Error: Invalid value for 'TARGET': '{target}' is not one of {choices}."]
        )
    if env and env != target:
        raise IdfPyError([_TEXTS["cli-target"].format(old=env, new=target)])
    _fullclean(ctx.build)
    sdkconfig = ctx.project / ctx.defines.get("SDKCONFIG", "sdkconfig")
    if sdkconfig.is_file():  # CMake does this under _IDF_PY_SET_TARGET_ACTION=1
        sdkconfig.replace(sdkconfig.with_name(f"{sdkconfig.name}.old"))
    _configure(ctx, announce=True, force_target=target)


def _needs_cmake(ctx: _Ctx) -> bool:
    """idf.py runs CMake for a new build dir or a new or changed -D entry (docs/esp-idf.md §5.1)."""
    cache = _read_cache(ctx.build)
    if cache and cache.get("CMAKE_GENERATOR", ctx.generator) != ctx.generator:
        text = _TEXTS["generator"].format(old=cache["CMAKE_GENERATOR"], new=ctx.generator)
        raise IdfPyError([text])
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
        menu = _menuconfig_choices() if action == "menuconfig" else ""
        _configure(ctx, announce=True, menu=menu)
        if action == "menuconfig":
            print("menuconfig: non-interactive stand-in; saved the configuration")


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
                raise IdfPyError(
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
            raise IdfPyError([_USAGE, "Try 'idf.py --help' for help.", "", f"Error: {problem}"])
    return _Cli(options=options, defines=defines, flags=frozenset(flags), actions=tuple(actions))


def _value(args: list[str], name: str) -> str:
    if not args:
        raise IdfPyError([_USAGE, f"Error: Option '{name}' requires an argument."])
    return args.pop(0)


def _menuconfig_choices() -> str:
    """What the user sets in menuconfig's screens, as sdkconfig lines joined by ';'. The stand-in
    has no screens: its menuconfig saves the configuration as it is."""
    return ""


def _context(cli: _Cli) -> _Ctx:
    project = Path(cli.options.get("project_dir", ".")).resolve()
    build = Path(cli.options.get("build_dir", project / "build")).resolve()
    if build == project:
        raise IdfPyError([_TEXTS["build-is-project"]])
    ccache = os.environ.get("IDF_CCACHE_ENABLE") == "1" and "--no-ccache" not in cli.flags
    return _Ctx(
        project=project,
        build=build,
        defines=cli.defines,
        idf_ver=_IDF_VER,
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
            print(f"ESP-IDF {_IDF_VER}")
            return 0
        if "--list-targets" in cli.flags:
            print("\n".join(TARGETS))
            return 0
        ctx = _context(cli)
        for action, argument in cli.actions or (("all", ""),):
            _run(ctx, action, argument)
    except IdfPyError as err:
        return _report(ctx.build if ctx else None, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
