"""What a board holds, read over serial: its bootloader, its partition table, which slot otadata
selects, and the app in each slot. Read-only, except `boot`, which rewrites otadata like
otatool.py does.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DeviceError
from ..idf import chips
from ..idf.partition import rules
from ..idf.partition.rules import Partition, PartitionTable

# Only the actions read a board: what they need is imported in them, not when doit creates the
# tasks (bench/noop.py).

if TYPE_CHECKING:
    from ..config.model import Project

__all__ = [
    "BoardPlan",
    "SlotInfo",
    "boot",
    "bootloader",
    "describe",
    "flash_reader",
    "monitor",
    "parse_table",
    "plan",
    "read_slots",
    "read_table",
    "status",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardPlan:
    """What `doit status` and `doit boot` need of the project."""

    target: str
    table_offset: int
    port: str | None  # project.yaml flash.port
    baud: int
    rollback: bool = False  # ota.rollback: a slot set to boot starts as ESP_OTA_IMG_NEW
    idf_version: str = "5.3"  # idf.version: the esp_ota_ops rules `doit boot` writes otadata by


def plan(project: Project) -> BoardPlan:
    """How to reach the board and read it: target, table offset, port and baud settings."""
    return BoardPlan(
        target=project.target,
        table_offset=project.partitions.table_offset,
        port=project.flash.port,
        baud=project.flash.baud,
        rollback=project.ota is not None and project.ota.rollback,
        idf_version=project.idf.version,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotInfo:
    """An app partition of the board and the app descriptor found at its start."""

    partition: Partition
    project_name: str | None  # None: no app image there
    version: str = ""
    idf_version: str = ""


def flash_reader(esp: Any) -> Callable[[int, int], bytes]:
    """read(offset, size) of a connected board's flash, through esptool's read_flash."""
    from esptool.cmds import read_flash

    def read(offset: int, size: int) -> bytes:
        return bytes(read_flash(esp, offset, size, output=None, no_progress=True) or b"")

    return read


def parse_table(data: bytes, table_offset: int) -> PartitionTable | None:
    """The partition table in the flash bytes read at table_offset; None where it is erased.

    Raises:
        DeviceError: the bytes there are not a valid partition table.
    """
    from ..idf.partition import formats

    if data.strip(b"\xff") == b"":
        return None
    try:
        return formats.from_bin(data, table_offset=table_offset)
    except formats.PartitionBinError as error:
        raise DeviceError(
            f"the board's partition table at {table_offset:#x} is invalid: {error}"
        ) from None


def read_table(read: Callable[[int, int], bytes], table_offset: int) -> PartitionTable:
    """The partition table a board holds: the one reader for status, boot, flash and the
    virtual board's bootloader.

    Raises:
        DeviceError: there is none, or it is invalid.
    """
    table = parse_table(read(table_offset, rules.MAX_TABLE_LENGTH), table_offset)
    if table is None:
        raise DeviceError(f"the board has no partition table at {table_offset:#x}; run doit flash")
    return table


def read_slots(read: Callable[[int, int], bytes], table: PartitionTable) -> list[SlotInfo]:
    """The app descriptor at the start of each app partition (header only, not the whole image)."""
    from ..idf import esp_image

    slots = []
    for partition in table.partitions:
        if partition.type != rules.APP_TYPE:
            continue
        desc = esp_image.app_desc(read(partition.offset, esp_image.APP_DESC_END))
        if desc is None:
            slots.append(SlotInfo(partition=partition, project_name=None))
        else:
            slots.append(
                SlotInfo(
                    partition=partition,
                    project_name=desc.project_name,
                    version=desc.version,
                    idf_version=desc.idf_version,
                )
            )
    return slots


def describe(read: Callable[[int, int], bytes], table_offset: int) -> list[str]:
    """The status report as lines: table, otadata entries, selected slot, each slot's app."""
    from ..idf import otadata

    table = read_table(read, table_offset)
    lines = [f"partition table at {table_offset:#x}:"]
    lines += [
        f"  {p.name:<16} {p.type_name:<5} {p.subtype_name:<10} {p.offset:#10x} {p.size:#10x}"
        for p in table.partitions
    ]
    data = None
    if table.otadata is not None:
        data = read(table.otadata.offset, table.otadata.size)
        for index, entry in enumerate(otadata.decode(data)):
            if entry.seq == 0xFFFFFFFF:
                lines.append(f"otadata[{index}]: empty")
            else:
                verdict = "valid" if entry.valid else "not valid"
                crc_ok = "CRC ok" if entry.crc_ok else "CRC bad"
                lines.append(
                    f"otadata[{index}]: seq {entry.seq}, state {entry.state_text}, {crc_ok}, "
                    f"{verdict}"
                )
    slot, why = otadata.boot_slot(table, data)
    lines.append(f"boots: {slot.name if slot else 'nothing'} ({why})")
    for info in read_slots(read, table):
        what = (
            f"{info.project_name} {info.version} (ESP-IDF {info.idf_version})"
            if info.project_name is not None
            else "no app"
        )
        lines.append(f"  {info.partition.name:<16} {what}")
    return lines


def bootloader(read: Callable[[int, int], bytes], target: str, table_offset: int) -> str:
    """The status line of the second-stage bootloader: checked with esptool as the ROM would,
    with its length, SHA-256 (as the build's bootloader.bin) and the chip revisions it allows."""
    from ..idf import esp_image

    offset = chips.CHIPS[target].bootloader_offset if target in chips.CHIPS else 0
    data = read(offset, table_offset - offset)
    try:
        esp_image.read_bootloader(data, target, name="bootloader")
        image = esp_image.parse(data, target, name="bootloader")
    except esp_image.ImageError as error:
        return f"bootloader at {offset:#x}: {error}"
    length = int(image.data_length) + (32 if image.append_digest else 0)
    low, high = int(image.min_rev_full), int(image.max_rev_full)
    revisions = (
        f"v{low // 100}.{low % 100} and later"
        if high in (0, 0xFFFF)  # elf2image's "no maximum"
        else f"v{low // 100}.{low % 100} - v{high // 100}.{high % 100}"
    )
    return (
        f"bootloader at {offset:#x}: {length} bytes, SHA-256 "
        f"{hashlib.sha256(data[:length]).hexdigest()[:16]}, chip revision {revisions}"
    )


def status(plan: BoardPlan, *, port: str | None = None) -> None:
    """doit status: print what the board holds and which app it boots."""
    from .esplink import connect, resolve_port

    chosen = resolve_port(port, os.environ, plan.port)
    with connect(chosen, plan.baud, plan.target) as esp:
        read = flash_reader(esp)
        print(bootloader(read, plan.target, plan.table_offset))
        print("\n".join(describe(read, plan.table_offset)))


def boot(plan: BoardPlan, slot: str, *, port: str | None = None) -> None:
    """doit boot --slot NAME: rewrite otadata so the board boots that slot next."""
    from esptool.cmds import write_flash

    from ..idf import otadata
    from .esplink import connect, resolve_port

    chosen = resolve_port(port, os.environ, plan.port)
    with connect(chosen, plan.baud, plan.target) as esp:
        read = flash_reader(esp)
        table = read_table(read, plan.table_offset)
        target = table.find(slot)
        if target is None or target.type != rules.APP_TYPE:
            names = ", ".join(p.name for p in table.partitions if p.type == rules.APP_TYPE)
            raise DeviceError(
                f"--slot {slot}: no app partition of that name; the board has {names}"
            )
        if table.otadata is None:
            raise DeviceError("the board's partition table has no otadata partition")
        info = next(i for i in read_slots(read, table) if i.partition == target)
        if info.project_name is None:
            raise DeviceError(f"--slot {slot}: there is no valid app image at {target.offset:#x}")
        current = read(table.otadata.offset, table.otadata.size)
        # As esp_ota_set_boot_partition: NEW under app rollback (the bootloader then boots it
        # pending verify and the app must confirm itself), else UNDEFINED.
        state = otadata.NEW if plan.rollback else otadata.UNDEFINED
        new = otadata.set_boot(table, current, target, state=state, release=plan.idf_version)
        write_flash(esp, [(table.otadata.offset, new)], compress=True)
        pending = " (new: it must confirm itself on its first boot)" if plan.rollback else ""
        print(f"the board boots {slot} next: {info.project_name} {info.version}{pending}")


def monitor(build_dir: Path, configured: str | None, *, port: str | None = None) -> None:
    """esp-idf-monitor on the board, at the console baud (monitor_baud of
    project_description.json, 115200 by default), with the app's ELF when it exists."""
    import json
    import sys

    from .. import process
    from .esplink import probe_port, resolve_port

    chosen = resolve_port(port, os.environ, configured)
    probe_port(chosen)  # esp-idf-monitor reports a failed connection with exit status 0
    try:
        description = json.loads((build_dir / "project_description.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        description = {}
    baud = int(description.get("monitor_baud") or 115200)
    command = [sys.executable, "-m", "esp_idf_monitor", "--port", chosen, "--baud", str(baud)]
    elf = Path(str(description.get("app_elf", "")))
    if description.get("app_elf") and not elf.is_absolute():
        elf = build_dir / elf
    if description.get("app_elf") and elf.is_file():
        command.append(str(elf))
    code = process.interactive(command, umask=0o022)
    if code not in (0, 130):
        raise DeviceError(f"esp-idf-monitor exited with {code}")
