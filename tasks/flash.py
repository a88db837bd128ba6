"""`doit flash`: writing a build to a board over serial through esptool's Python API.

Correct by construction where `idf.py flash` leaves it to the user: otadata is always reset, a
changed partition table erases the chip first, and regions the chip already holds are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks import partitions
from tasks.errors import DeviceError
from tasks.render import write_if_changed

if TYPE_CHECKING:
    from tasks.model import Project
    from tasks.paths import Paths

__all__ = ["FlashPlan", "Region", "connect", "plan", "resolve_port", "write"]

_FALLBACK_BAUD = 115200


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashPlan:
    """What `doit flash` writes and where; the images themselves come from build/<app>/app.json."""

    app: str
    target: str
    flash_size: str  # "4MB": explicit, as the emulator's flash id always says 4 MB
    table_offset: int
    app_summary: Path
    boards_dir: Path
    port: str | None  # project.yaml flash.port
    baud: int

    def to_json(self) -> dict[str, object]:
        return {
            "app": self.app,
            "target": self.target,
            "flash_size": self.flash_size,
            "table_offset": self.table_offset,
            "app_summary": str(self.app_summary),
            "boards_dir": str(self.boards_dir),
            "port": self.port,
            "baud": self.baud,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    role: str
    offset: int
    data: bytes
    encrypted: bool

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


def plan(project: Project, paths: Paths) -> FlashPlan:
    """What `doit flash` writes: flash_app's build, at project.yaml's flash settings."""
    return FlashPlan(
        app=project.flash_app,
        target=project.target,
        flash_size=project.flash.size_text,
        table_offset=project.partitions.table_offset,
        app_summary=paths.app_summary(project.flash_app),
        boards_dir=paths.boards,
        port=project.flash.port,
        baud=project.flash.baud,
    )


def resolve_port(option: str | None, env: Mapping[str, str], configured: str | None) -> str:
    """--port, else $ESPPORT, else flash.port, else the one serial port that looks like a board."""
    for value in (option, env.get("ESPPORT"), configured):
        if value:
            return value
    from serial.tools import list_ports

    candidates = sorted(str(port.device) for port in list_ports.comports() if port.vid is not None)
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise DeviceError(
            f"several serial ports could be the board: {', '.join(candidates)}; "
            "choose one with doit flash --port PORT, $ESPPORT or flash.port"
        )
    raise DeviceError(
        "no serial port found; plug the board in with a data cable (not charge-only), check you "
        "may open it (Linux: add yourself to the dialout group and log in again), or name it "
        "with doit flash --port PORT or $ESPPORT"
    )


def _chip_name(target: str) -> str:
    from esptool.targets import CHIP_DEFS

    return str(CHIP_DEFS[target].CHIP_NAME)


@contextmanager
def connect(
    port: str, baud: int, target: str, *, before: str = "default-reset", stub: bool = True
) -> Iterator[Any]:
    """An esptool connection to the board, its chip checked against `target`, flash attached."""
    from esptool.cmds import attach_flash, detect_chip, run_stub
    from esptool.util import FatalError

    try:
        esp = detect_chip(port, baud, before, False, 3)
    except (FatalError, OSError) as error:
        raise DeviceError(_connect_hint(port, error)) from None
    try:
        found, wanted = str(esp.CHIP_NAME), _chip_name(target)
        if found != wanted:
            raise DeviceError(f"board is {found}, project.yaml says {target} ({wanted})")
        if stub and not getattr(esp, "IS_STUB", False):
            esp = run_stub(esp)
        attach_flash(esp)
        yield esp
    finally:
        port_handle = getattr(esp, "_port", None)
        if port_handle is not None:
            port_handle.close()


def _connect_hint(port: str, error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "busy" in text.lower() or "resource temporarily unavailable" in text.lower():
        return f"{port} is busy: another program (a serial monitor?) holds it; close it and retry"
    if "permission denied" in text.lower():
        return (
            f"{port}: permission denied; on Linux add yourself to the dialout group, log in again"
        )
    return (
        f"cannot talk to the board on {port}: {text}; check the cable and port, hold BOOT while "
        "resetting if it does not enter the bootloader (probably the connection, not this tool)"
    )


def _regions(summary: Mapping[str, Any]) -> list[Region]:
    regions = []
    for image in summary["images"]:
        path = Path(str(image["file"]))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DeviceError(f"{path} is missing; run doit build") from None
        regions.append(
            Region(
                role=str(image["role"]),
                offset=int(str(image["offset"]), 16),
                data=data,
                encrypted=str(image.get("encrypted", "false")) == "true",
            )
        )
    return sorted(regions, key=lambda region: region.offset)


def _read_summary(plan: FlashPlan) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(plan.app_summary.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceError(f"{plan.app_summary} is missing; run doit build") from None
    return data


class _Progress:
    """esptool's logger, reduced to one progress line per region (TemplateLogger contract)."""

    def __init__(self) -> None:
        import sys

        from esptool.logger import TemplateLogger

        outer = self

        class Logger(TemplateLogger):  # type: ignore[misc]
            def print(self, *args: Any, **kwargs: Any) -> None:
                pass

            def note(self, message: str) -> None:
                pass

            def warning(self, message: str) -> None:
                print(f"warning: {message}", file=sys.stderr)

            def error(self, message: str) -> None:
                print(f"error: {message}", file=sys.stderr)

            def stage(self, finish: bool = False) -> None:
                pass

            def progress_bar(
                self,
                cur_iter: int,
                total_iters: int,
                prefix: str = "",
                suffix: str = "",
                bar_length: int = 30,
            ) -> None:
                outer.show(cur_iter, total_iters)

            def set_verbosity(self, verbosity: str) -> None:
                pass

        self.logger = Logger()
        self.label = ""
        self.tty = sys.stdout.isatty()
        self.last = -1

    def show(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if self.tty:
            bar = "━" * (percent * 30 // 100)
            print(f"\r  {self.label:<16} {bar:<30} {percent:3d}%", end="", flush=True)
        elif percent // 25 != self.last // 25:
            print(f"  {self.label:<16} {percent:3d}%", flush=True)
        self.last = percent

    def end(self) -> None:
        if self.tty and self.last >= 0:
            print()
        self.last = -1


@contextmanager
def _quiet_esptool(progress: _Progress) -> Iterator[None]:
    from esp_pylib.logger import EspLog
    from esptool.logger import log

    previous = EspLog.instance
    log.set_logger(progress.logger)
    try:
        yield
    finally:
        EspLog.instance = previous


def _board_table(esp: Any, plan: FlashPlan) -> bytes:
    from esptool.cmds import read_flash

    data = read_flash(
        esp, plan.table_offset, partitions.MAX_TABLE_LENGTH, output=None, no_progress=True
    )
    return bytes(data or b"")


def _erase_reason(board: bytes, new: bytes, table_offset: int) -> str | None:
    """Why the whole chip must be erased first, or None: only when the board holds another table."""
    if board == new or board.strip(b"\xff") == b"":
        return None
    try:
        old = partitions.from_bin(board, table_offset=table_offset)
    except partitions.PartitionBinError as error:
        return f"the board's partition table is unreadable ({error})"
    new_table = partitions.from_bin(new, table_offset=table_offset)
    changed = [
        f"{p.name} {p.offset:#x}+{p.size:#x}" for p in new_table.partitions if old.find(p.name) != p
    ]
    what = ", ".join(changed) if changed else "rows removed or reordered"
    return f"the board's partition table differs from the new one ({what})"


def write(
    plan: FlashPlan, *, port: str | None = None, baud: int | None = None, erase: bool = False
) -> int:
    """doit flash: connect, erase if needed, write what changed, reset otadata, record the board.

    Returns:
        The number of bytes written (0 for a board that already held everything).
    """
    summary = _read_summary(plan)
    regions = _regions(summary)
    chosen_port = resolve_port(port, os.environ, plan.port)
    if summary.get("synthetic") and not chosen_port.startswith("socket://127.0.0.1:"):
        raise DeviceError(
            f"refusing to write synthetic images (built without ESP-IDF) to {chosen_port}; "
            "they only go to the virtual board (doit rehearse)"
        )
    speed = baud or int(os.environ.get("ESPBAUD") or plan.baud)
    try:
        rows, mac = _flash(plan, summary, regions, chosen_port, speed, erase)
    except DeviceError:
        raise
    except Exception as error:
        if speed == _FALLBACK_BAUD:
            raise DeviceError(_connect_hint(chosen_port, error)) from None
        print(f"transfer failed at {speed} baud ({error}); retrying once at {_FALLBACK_BAUD}")
        rows, mac = _flash(plan, summary, regions, chosen_port, _FALLBACK_BAUD, erase)
    _print_summary(rows)
    _record(plan, summary, regions, mac)
    return _written(rows)


def _flash(
    plan: FlashPlan,
    summary: Mapping[str, Any],
    regions: list[Region],
    port: str,
    baud: int,
    erase: bool,
) -> tuple[list[tuple[str, int, str, float]], str]:
    from esptool.cmds import erase_flash, reset_chip, write_flash

    extra = summary.get("extra_esptool_args") or {}
    before = str(extra.get("before", "default_reset")).replace("_", "-")
    progress = _Progress()
    rows: list[tuple[str, int, str, float]] = []
    with (
        _quiet_esptool(progress),
        connect(port, baud, plan.target, before=before, stub=bool(extra.get("stub", True))) as esp,
    ):
        mac = ":".join(f"{byte:02x}" for byte in esp.read_mac())
        table = next((r.data for r in regions if r.role == "partition-table"), b"")
        reason = (
            "--erase was given"
            if erase
            else _erase_reason(_board_table(esp, plan), table, plan.table_offset)
        )
        if reason:
            print(f"erasing the whole chip: {reason}")
            erase_flash(esp)
        for region in regions:
            started = time.monotonic()
            if esp.flash_md5sum(region.offset, len(region.data)) == region.md5:
                rows.append((region.role, region.offset, "unchanged", 0.0))
                continue
            progress.label = region.role
            kwargs: dict[str, Any] = {"compress": True, "flash_size": plan.flash_size}
            if region.encrypted:
                kwargs["encrypt_files"] = [(region.offset, region.data)]
                write_flash(esp, [], **kwargs)
            else:
                write_flash(esp, [(region.offset, region.data)], **kwargs)
            progress.end()
            rows.append(
                (
                    region.role,
                    region.offset,
                    f"{len(region.data)} bytes",
                    time.monotonic() - started,
                )
            )
        after = str(extra.get("after", "hard_reset")).replace("_", "-")
        if not port.startswith("socket://"):  # a TCP loader cannot be reset
            reset_chip(esp, after)
    return rows, mac


def _print_summary(rows: list[tuple[str, int, str, float]]) -> None:
    print(f"{'region':<16} {'offset':>10}  {'written':<14} {'time':>6}")
    for role, offset, written, seconds in rows:
        print(f"{role:<16} {offset:#10x}  {written:<14} {seconds:5.1f}s")
    print(f"{_written(rows)} bytes written")


def _written(rows: list[tuple[str, int, str, float]]) -> int:
    return sum(int(written.split()[0]) for _, _, written, _ in rows if written != "unchanged")


def _record(plan: FlashPlan, summary: Mapping[str, Any], regions: list[Region], mac: str) -> None:
    """build/boards/<mac>.json: what this board now holds; serve and status read it."""
    settings = summary.get("flash_settings") or {}
    record = {
        "chip": plan.target,
        "mac": mac,
        "flash_size": plan.flash_size,
        "flash_mode": settings.get("flash_mode"),
        "images": {
            r.role: {
                "offset": f"{r.offset:#x}",
                "sha256": hashlib.sha256(r.data).hexdigest(),
                "size": len(r.data),
            }
            for r in regions
        },
        "partition_table_sha256": next(
            (hashlib.sha256(r.data).hexdigest() for r in regions if r.role == "partition-table"),
            None,
        ),
        "ca_sha256": summary.get("ca_sha256"),
        "ota_url": summary.get("ota_url"),
        "app": {
            "name": plan.app,
            "version": summary.get("version"),
            "project_name": summary.get("project_name"),
        },
    }
    path = plan.boards_dir / f"{mac.replace(':', '')}.json"
    write_if_changed(path, json.dumps(record, indent=2) + "\n")
