"""The idf.py stand-in's ninja outputs: esptool-made app and bootloader images, fake ELFs, the
partition-table and otadata binaries with their size checks, and the flash files that list them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import ConfigError
from ...idf import cmake_lists, esp_image
from ...idf.partition import formats, model, rules
from . import signed_apps
from .standin_config import Config, IdfPyError, Value, flash_settings

__all__ = [
    "IdfPyError",
    "Step",
    "args_file",
    "flash_args_settings",
    "flash_files",
    "flasher_args",
    "project_description",
    "steps",
]

Step = tuple[str, Mapping[str, bytes | str], tuple[str, ...]]
_Files = list[tuple[str, bytes]]
_MB = 1024 * 1024
_NOT_COMPILED = {"PARTITION_TABLE_CUSTOM_FILENAME", "PARTITION_TABLE_FILENAME"}  # paths only
# tools/cmake/scripts/fail.cmake's lines after a fail_at_build_time() message.
_FAIL_CMAKE = (
    "CMake Error at tools/cmake/scripts/fail.cmake:3 (message):",
    "  Failing the build (see errors on lines above)",
)
# check_sizes.py's and gen_esp32part.py's wording, verbatim (str.format fields).
_TEXTS = {
    "app-size": "{name} binary size {size:#x} bytes. Smallest app partition is {smallest:#x} "
    "bytes. {free:#x} bytes ({pct}%) free.",
    "part": "  - Part '{p.name}' {p.type}/{p.subtype} @ {p.offset:#x} size {p.size:#x} "
    "(overflow {over:#x})",
    "bootloader-big": "Error: Bootloader binary size {size:#x} bytes is too large for partition "
    "table offset {offset:#x}. Bootloader binary can be maximum {room:#x} ({room}) bytes unless "
    "the partition table offset is increased in the Partition Table section of the project "
    "configuration menu.",
    "flash-size": "Change the flash size in menuconfig under the 'Serial Flasher Config' menu.",
}


# --- the app's inputs: main/CMakeLists.txt, embedded files, sources ----------------------------


def _cmake_value(value: Value) -> str:
    """A CONFIG_ value as sdkconfig.cmake sets it: y or empty for a bool."""
    if isinstance(value, bool):
        return "y" if value else ""
    return str(value)


def _component_args(project: Path, config: Config, build: Path) -> dict[str, list[str]]:
    """idf_component_register()'s keyword arguments in main/CMakeLists.txt, as CMake expands them
    with this build's sdkconfig."""
    path = project / "main" / "CMakeLists.txt"
    idf_path = os.environ.get("IDF_PATH", "")
    scope = cmake_lists.main_scope(
        project,
        config={name: _cmake_value(value) for name, value in config.values.items()},
        properties={
            "BUILD_DIR": str(build),
            "IDF_PATH": idf_path,
            "IDF_TARGET": config.target,
            "PROJECT_NAME": config.name,
        },
        environ=os.environ,
    )
    # The other variables ESP-IDF's build.cmake leaves in scope where it includes a component.
    scope.variables |= {"IDF_TARGET": config.target, "idf_target": config.target}
    scope.variables |= {"build_dir": str(build), "idf_path": idf_path}
    return cmake_lists.component_args(path.read_text() if path.is_file() else "", scope)


def _embedded(project: Path, args: Mapping[str, list[str]]) -> list[tuple[str, bytes]]:
    """(symbol stem, bytes) of EMBED_FILES and EMBED_TXTFILES; text files get their NUL."""
    main, found = project / "main", []
    for kind in ("EMBED_FILES", "EMBED_TXTFILES"):
        for item in args.get(kind, []):
            path = main / item  # an absolute item stays so
            if not path.is_file():
                message = f"ninja: error: '{path}', needed by 'esp-idf/main/{path.name}.S', "
                raise IdfPyError([message + "missing and no known rule to make it"], tool="ninja")
            data = path.read_bytes() + (b"\0" if kind == "EMBED_TXTFILES" else b"")
            found.append((re.sub(r"\W", "_", path.name), data))
    return found


def _sources(project: Path) -> list[tuple[str, bytes]]:
    """Every file of the app's own components, by path relative to the project."""
    roots = [project / "main", project / "components"]
    files = sorted(p for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file())
    return [(p.relative_to(project).as_posix(), p.read_bytes()) for p in files]


# --- images: esptool's image classes with synthetic segments ---------------------------------


def _image(
    target: str,
    values: Mapping[str, Value],
    segments: Sequence[tuple[str, int, bytes]],
    entry: int,
    *,
    secure_pad: str = "",
) -> bytes:
    """A saved image: header from the config, esptool's checksum and appended SHA-256."""
    from esptool.bin_image import ELFSection
    from esptool.cmds import FLASH_MODES as ESPTOOL_MODES
    from esptool.targets import CHIP_DEFS

    chip, (mode, size, freq) = CHIP_DEFS[target], flash_settings(values)
    image = chip.BOOTLOADER_IMAGE()
    image.flash_mode = ESPTOOL_MODES[mode]
    image.flash_size_freq = chip.FLASH_SIZES[size] + chip.FLASH_FREQUENCY[freq]
    image.entrypoint = entry
    # elf2image --min-rev-full and --max-rev-full, as ESP-IDF's build passes them; the legacy
    # one-byte min_rev holds the major (the C3's, its minor), as ESP-IDF's bootloader reads it.
    low = int(values.get("ESP_REV_MIN_FULL", 0))
    image.min_rev_full = low
    image.min_rev = {"esp32": low // 100, "esp32c3": low % 100}.get(target, 0)
    image.max_rev_full = int(values.get("ESP_REV_MAX_FULL", 0xFFFF))
    # esptool moves a segment named .flash.appdesc first even where IROM sits below DROM (C6, H2).
    image.segments = [ELFSection(name.encode(), addr, data, 0) for name, addr, data in segments]
    image.secure_pad = secure_pad or None  # elf2image --secure-pad / --secure-pad-v2
    return bytes(image.save(None))


def _filler(seed: bytes, size: int) -> bytes:
    return hashlib.shake_256(seed).digest(size)


def _stamp(old: Path, inputs: str, values: Mapping[str, Value], option: str) -> int:
    """Build time in ns, or 0 unless `option` asks for it; kept from the previous .elf when its
    inputs are unchanged (as ninja would not recompile)."""
    if values.get(option) is not True:
        return 0
    head = old.read_bytes()[:200] if old.is_file() else b""
    match = re.search(rb"inputs (\w+)\nstamp (\d+)\n", head)
    return int(match[2]) if match and match[1].decode() == inputs else time.time_ns()


def _elf(inputs: str, stamp: int, body: bytes) -> bytes:
    """Not an ELF: the 0x7f 'ELF' magic, then the inputs; only its SHA-256 matters (app desc)."""
    ident = b"\x7fELF\x01\x01\x01" + bytes(9)
    text = f"ESP-IDF stand-in: not a real ELF\ninputs {inputs}\nstamp {stamp or ''}\n"
    return ident + text.encode() + body


def _app_desc(config: Config, idf_ver: str, stamp: int, elf: bytes) -> bytes:
    values = config.values
    moment = dt.datetime.fromtimestamp(stamp / 1e9) if stamp else None
    when = (
        (f"{moment:%H:%M:%S}", f"{moment:%b} {moment.day:2d} {moment.year}") if moment else ("", "")
    )
    version = "" if values.get("APP_EXCLUDE_PROJECT_VER_VAR") is True else config.version
    name = "" if values.get("APP_EXCLUDE_PROJECT_NAME_VAR") is True else config.name
    secure = int(values.get("BOOTLOADER_APP_SECURE_VERSION", 0))
    fields = (version, name, *when, idf_ver)
    # esp_app_desc_t (docs/esp-idf.md §4.3): 256 bytes; strings cut to fit with their NUL;
    # eFuse block revisions 0.0 .. 0.99.
    text = [f.encode()[: (32 if i in (0, 1, 4) else 16) - 1] for i, f in enumerate(fields)]
    return struct.pack(
        "<II8s32s32s16s16s32s32sHH76s",
        0xABCD5432,
        secure,
        b"",
        *text,
        hashlib.sha256(elf).digest(),
        0,
        99,
        b"",
    )


def _app(
    config: Config,
    idf_ver: str,
    build: Path,
    made_of: tuple[_Files, _Files],
    extra: int,
) -> tuple[bytes, bytes, str]:
    """(elf, bin, map text) of the app from its (sources, embedded files); `extra` more bytes of
    code pad it."""
    from esptool.targets import CHIP_DEFS

    sources, embedded = made_of
    compiled = {k: v for k, v in config.values.items() if k not in _NOT_COMPILED}
    files = [[path, hashlib.sha256(data).hexdigest()] for path, data in sources]
    inputs = [config.name, config.version, config.target, idf_ver, compiled, files]
    seed = hashlib.sha256(json.dumps(inputs).encode()).digest()
    rodata = b"".join(b"_binary_%s_start\0" % stem.encode() + data for stem, data in embedded)
    rodata += _filler(seed + b"rodata", 2048 + seed[0] * 16)
    rodata += bytes(-len(rodata) % 4)
    size = 4096 + seed[1] * 32 + min(sum(len(data) for _, data in sources), 32768) + extra
    code = _filler(seed + b"text", size)
    digest = hashlib.sha256(seed + rodata + code).hexdigest()
    old = build / f"{config.name}.elf"
    stamp = _stamp(old, digest, config.values, "APP_COMPILE_TIME_DATE")
    elf = _elf(digest, stamp, rodata + code)
    chip = CHIP_DEFS[config.target]
    drom, drom_addr = (
        _app_desc(config, idf_ver, stamp, elf) + rodata,
        chip.DROM_MAP_START + 0x20,
    )
    after = 0x20 + len(drom) + 8  # the code's file offset; its address must match it mod 64K
    irom = chip.IROM_MAP_START + (after // 0x10000 + 1) * 0x10000 + after % 0x10000
    segments = [(".flash.appdesc", drom_addr, drom), (".flash.text", irom, code)]
    layout = [(".flash.appdesc", drom_addr, 256), (".flash.rodata", drom_addr + 256, len(rodata))]
    lines = [f"Link map of {config.name}.elf (ESP-IDF stand-in: no linker ran)"]
    lines += [f"{n:<16}0x{a:08x} 0x{s:x}" for n, a, s in [*layout, (".flash.text", irom, size)]]
    pad = signed_apps.secure_pad(config)
    image = _image(config.target, config.values, segments, irom, secure_pad=pad)
    return elf, image, "\n".join(lines) + "\n"


def _bootloader(config: Config, idf_ver: str, build: Path) -> tuple[bytes, bytes]:
    """(elf, bin): RAM segments only, DRAM starting with an esp_bootloader_desc_t."""
    from esptool.targets import CHIP_DEFS

    chip, values = CHIP_DEFS[config.target], config.values
    keys = ("FLASHMODE", "FLASHFREQ", "FLASHSIZE")
    inputs = [
        config.target,
        idf_ver,
        values["PARTITION_TABLE_OFFSET"],
        values["LOG_DEFAULT_LEVEL"],
    ]
    digest = hashlib.sha256(json.dumps(inputs + [values[f"ESPTOOLPY_{k}"] for k in keys]).encode())
    seed = digest.hexdigest()
    old = build / "bootloader" / "bootloader.elf"
    stamp = _stamp(old, seed, values, "BOOTLOADER_COMPILE_TIME_DATE")
    when = f"{dt.datetime.fromtimestamp(stamp / 1e9):%b %d %Y %H:%M:%S}" if stamp else ""
    version = int(values["BOOTLOADER_PROJECT_VER"])
    desc = struct.pack("<B3sI32s24s16s", 0x50, b"", version, idf_ver.encode(), when.encode(), b"")
    dram = desc + _filler(seed.encode() + b"dram", 0x400)
    iram = _filler(seed.encode() + b"iram", 0x3000)
    start = {name: low for low, _, name in reversed(chip.MEMORY_MAP)}
    iram_addr = start["IRAM"] + 0x8000
    segments = [
        (".dram0.bootdesc", start["DRAM"] + 0x20000, dram),
        (".iram_loader.text", iram_addr, iram),
    ]
    return _elf(seed, stamp, dram + iram), _image(config.target, values, segments, iram_addr)


# --- ninja's steps and size checks -------------------------------------------------------------


def _app_size_lines(name: str, size: int, table: rules.PartitionTable) -> list[str]:
    """check_sizes.py's app check (docs/esp-idf.md §2.7); all partitions too small fail the
    build."""
    apps = [p for p in table.partitions if p.type == rules.APP_TYPE]
    room = esp_image.headroom(size, apps)  # the measure production checks use too
    small = room.too_small
    parts = [_TEXTS["part"].format(p=p, over=size - p.size) for p in small]
    if small and len(small) == len(apps):
        head = (
            "app partition is too small" if len(apps) == 1 else "All app partitions are too small"
        )
        lines = [f"Error: {head} for binary {name} size {size:#x}:", *parts]
        raise IdfPyError(lines, tool="ninja", failed="esp-idf/esptool_py/CMakeFiles/app_check_size")
    if small or not apps:
        count = f"{len(small)}/{len(apps)}"
        return [f"Warning: {count} app partitions are too small for binary {name} size {size:#x}:",
                *parts] if small else []  # fmt: skip
    smallest, free = room.smallest, room.free
    pct = round(100 * free / smallest)
    lines = [_TEXTS["app-size"].format(name=name, size=size, smallest=smallest, free=free, pct=pct)]
    if free / smallest < 0.05:
        lines.append(
            f"Warning: The smallest app partition is nearly full ({pct}% free space left)!"
        )
    return lines


def _bootloader_size_line(size: int, config: Config, table: rules.PartitionTable) -> str:
    room = table.offset - int(config.values["BOOTLOADER_OFFSET_IN_FLASH"])
    if size > room:
        text = _TEXTS["bootloader-big"].format(size=size, offset=table.offset, room=room)
        raise IdfPyError(
            [text], tool="ninja", failed="bootloader-prefix/src/bootloader-stamp/bootloader-done"
        )
    pct = round(100 * (room - size) / room)
    return f"Bootloader binary size {size:#x} bytes. {room - size:#x} bytes ({pct}%) free."


def _checked_table(config: Config) -> rules.PartitionTable:
    failed = "partition_table/partition-table.bin"
    if config.table is None:
        missing = f"Partition table CSV {config.missing_csv} does not exist."
        lines = [missing, "Either change partition table in menuconfig or create this input file."]
        raise IdfPyError(lines, tool="ninja", failed=failed)
    size = str(config.values["ESPTOOLPY_FLASHSIZE"])
    try:
        rules.check_flash_size(config.table, int(size.removesuffix("MB")) * _MB, ())
    except ConfigError as err:
        text = f"{err.message}. {_TEXTS['flash-size']}"
        raise IdfPyError([text], tool="ninja", failed=failed) from None
    return config.table


def _check_anti_rollback(config: Config, table: rules.PartitionTable) -> None:
    """esptool_py's check_table_contents: anti-rollback needs a table of OTA apps only."""
    if config.values.get("BOOTLOADER_APP_ANTI_ROLLBACK") is not True:
        return
    banned = {model.APP_SUBTYPES["factory"], model.APP_SUBTYPES["test"]}
    if any(p.type == rules.APP_TYPE and p.subtype in banned for p in table.partitions):
        text = "ERROR: Anti-rollback option is enabled. Partition table should consist of two ota "
        text += "app without factory or test partitions."
        failed = "esp-idf/esptool_py/CMakeFiles/check_table_contents"
        raise IdfPyError([text, *_FAIL_CMAKE], tool="ninja", failed=failed)


def steps(config: Config, *, project: Path, build: Path, idf_ver: str) -> list[Step]:
    """What ninja would (re)make: (progress label, files by build-relative path, lines after)."""
    table = _checked_table(config)
    _check_anti_rollback(config, table)
    args = _component_args(project, config, build)
    made_of = _sources(project), _embedded(project, args)
    elf, image, link_map = _app(config, idf_ver, build, made_of, 0)
    boot_elf, boot = _bootloader(config, idf_ver, build)
    name, md5 = config.name, config.values["PARTITION_TABLE_MD5"] is True
    size_lines = _app_size_lines(f"{name}.bin", len(image), table)
    boot_line = _bootloader_size_line(len(boot), config, table)
    table_bin = {"partition_table/partition-table.bin": formats.to_bin(table, md5=md5)}
    made: list[Step] = [("Generating ../../partition_table/partition-table.bin", table_bin, ())]
    if table.otadata is not None:
        blank = {"ota_data_initial.bin": b"\xff" * table.otadata.size}
        made.append(("Generating ../../ota_data_initial.bin", blank, ()))
    # ninja builds the bootloader subproject before it links the app, as in ESP-IDF's log.
    boot_files = {"bootloader/bootloader.elf": boot_elf, "bootloader/bootloader.bin": boot}
    made.append(("Performing build step for 'bootloader'", boot_files, (boot_line,)))
    made.append(
        (f"Linking CXX executable {name}.elf", {f"{name}.elf": elf, f"{name}.map": link_map}, ())
    )
    made += signed_apps.app_steps(config, project, build, image, size_lines)
    return made


# --- the flash files: flasher_args.json, flash_args, project_description.json -------------------


def flash_files(config: Config) -> dict[str, tuple[int, str]]:
    """The images `idf.py flash` writes: name -> (offset, path relative to the build dir)."""
    offset = int(config.values["BOOTLOADER_OFFSET_IN_FLASH"])
    files = {"bootloader": (offset, "bootloader/bootloader.bin")}
    table = config.table
    if table is None:
        return files
    boot = table.factory or next(iter(table.ota_slots), None)
    if boot is not None:
        files["app"] = (boot.offset, f"{config.name}.bin")
    files["partition-table"] = (table.offset, "partition_table/partition-table.bin")
    if table.otadata is not None:
        files["otadata"] = (table.otadata.offset, "ota_data_initial.bin")
    return files


def flash_args_settings(values: Mapping[str, Value]) -> tuple[str, str, str]:
    """The flash settings the flash arguments carry: an RSA-signed app's say `keep` for the size
    (the signature covers the header: esptool must not rewrite it), as ESP-IDF's do."""
    mode, size, freq = flash_settings(values)
    return mode, "keep" if values.get("SECURE_SIGNED_APPS_RSA_SCHEME") is True else size, freq


def flasher_args(config: Config) -> str:
    """flasher_args.json: esptool's write_flash arguments and each image's offset."""
    values, files = config.values, flash_files(config)
    mode, size, freq = flash_args_settings(values)
    data: dict[str, object] = {
        "write_flash_args": ["--flash_mode", mode, "--flash_size", size, "--flash_freq", freq],
        "flash_settings": {"flash_mode": mode, "flash_size": size, "flash_freq": freq},
        # In the order the build registers the images, as ESP-IDF writes them.
        "flash_files": {hex(off): path for off, path in files.values()},
    }
    # esptool_py_flash_target_image: in flash encryption's development mode every image is
    # flashed encrypted (none of these is ALWAYS_PLAINTEXT).
    encrypted = values.get("SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT") is True
    data |= {
        key: {"offset": hex(off), "file": path, "encrypted": str(encrypted).lower()}
        for key, (off, path) in files.items()
    }
    # esptool_py/CMakeLists.txt: with security features on, the board is never reset after flashing.
    secured = any(values.get(k) is True for k in ("SECURE_BOOT", "SECURE_FLASH_ENC_ENABLED"))
    data["extra_esptool_args"] = {
        "after": "no_reset" if secured else values["ESPTOOLPY_AFTER"],
        "before": values["ESPTOOLPY_BEFORE"],
        "stub": values["ESPTOOLPY_NO_STUB"] is not True,
        "chip": config.target,
    }
    return json.dumps(data, indent=4) + "\n"


def args_file(config: Config, keys: Sequence[str]) -> str:
    """A flash_args file: the flash settings line, then `offset path` of each of `keys`."""
    mode, size, freq = flash_args_settings(config.values)
    files = flash_files(config)
    lines = [f"--flash_mode {mode} --flash_freq {freq} --flash_size {size}"]
    # In the order the build registers them (bootloader, app, table, otadata), as ESP-IDF's are.
    lines += [f"{hex(files[k][0])} {files[k][1]}" for k in keys if k in files]
    return "\n".join(lines) + "\n"


def project_description(config: Config, *, project: Path, build: Path, idf_ver: str) -> str:
    """project_description.json, with the fields idf.py monitor and this project read."""
    xtensa = config.target in ("esp32", "esp32s2", "esp32s3")
    prefix = f"xtensa-{config.target}-elf-" if xtensa else "riscv32-esp-elf-"
    components = ["bootloader", "esp_app_format", "esptool_py", "main", "partition_table"]
    if "EXAMPLE_CONNECT_IPV4" in config.values:
        components.append("protocol_examples_common")
    gdbinit = build / "prefix_map_gdbinit" if config.values["APP_REPRODUCIBLE_BUILD"] else ""
    data = {
        "version": "1.1",
        "project_name": config.name,
        "project_version": config.version,
        "project_path": str(project),
        "idf_path": os.environ.get("IDF_PATH", ""),
        "build_dir": str(build),
        "config_file": str(config.sdkconfig),
        "config_defaults": ";".join(map(str, config.defaults)),
        "bootloader_elf": str(build / "bootloader" / "bootloader.elf"),
        "app_elf": f"{config.name}.elf",
        "app_bin": f"{config.name}.bin",
        "build_type": "flash_app",
        "git_revision": idf_ver,
        "target": config.target,
        "rev": "",
        "min_rev": str(config.values.get("ESP_REV_MIN_FULL", "")),
        "max_rev": str(config.values.get("ESP_REV_MAX_FULL", "")),
        "phy_data_partition": "",
        "monitor_baud": str(config.values["ESPTOOLPY_MONITOR_BAUD"]),
        "monitor_toolprefix": prefix,
        "c_compiler": f"{prefix}gcc",
        "config_environment": {
            "COMPONENT_KCONFIGS": ";".join(map(str, config.kconfigs)),
            "COMPONENT_KCONFIGS_PROJBUILD": ";".join(map(str, config.projbuilds)),
        },
        "common_component_reqs": [],
        "build_components": components,
        "build_component_paths": [str(project / "main")],
        "build_component_info": {},
        "all_component_info": {},
        "debug_prefix_map_gdbinit": str(gdbinit),
    }
    return json.dumps(data, indent=4) + "\n"
