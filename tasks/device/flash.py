"""`doit flash`: writing a build to a board over serial through esptool's Python API.

Correct by construction where `idf.py flash` leaves it to the user: otadata is always reset, a
changed partition table erases the chip first, and regions the chip already holds are skipped.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DeviceError
from ..idf.partition import rules
from .board import flash_reader, parse_table

# Only `write` touches a board: what it needs is imported in it, not when doit creates the
# tasks (bench/noop.py).
if TYPE_CHECKING:
    from ..config.model import Project
    from ..firmware.outputs import AppSummary
    from ..firmware.signing_key import SigningPlan
    from ..paths import Paths
    from . import esplink

__all__ = ["FlashPlan", "Region", "plan", "write"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashPlan:
    """What `doit flash` writes and where; the images themselves come from build/<app>/app.json."""

    app: str
    target: str
    flash_size: str  # "4MB": what the header says and what the board's flash id must reach
    table_offset: int
    app_summary: Path
    boards_dir: Path
    port: str | None  # project.yaml flash.port
    baud: int
    signing: SigningPlan | None = None  # ota.sign: the app must verify with this key


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """One image and the flash offset it is written at."""

    role: str
    offset: int
    data: bytes
    encrypted: bool

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


def plan(project: Project, paths: Paths, *, signing: SigningPlan | None = None) -> FlashPlan:
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
        signing=signing,
    )


def _regions(summary: AppSummary, source: Path) -> list[Region]:
    """Each image app.json lists, re-hashed: only the bytes the build recorded are written."""
    regions = []
    for image in summary.images:
        try:
            data = image.file.read_bytes()
        except FileNotFoundError:
            raise DeviceError(f"{image.file} is missing; run doit build") from None
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise DeviceError(
                f"{image.file} is not the image `doit build` made (its SHA-256 differs from the "
                f"one in {source}); nothing was written: run `doit build`"
            )
        regions.append(
            Region(role=image.role, offset=image.offset, data=data, encrypted=image.encrypted)
        )
    return sorted(regions, key=lambda region: region.offset)


def _erase_reason(board: bytes, new: bytes, table_offset: int) -> str | None:
    """Why the whole chip must be erased first, or None: only when the board holds another table."""
    if board == new:
        return None
    try:
        old = parse_table(board, table_offset)
    except DeviceError as error:
        return str(error)
    if old is None:  # an erased board
        return None
    from ..idf.partition import formats

    new_table = formats.from_bin(new, table_offset=table_offset)
    changed = [
        f"{p.name} {p.offset:#x}+{p.size:#x}" for p in new_table.partitions if old.find(p.name) != p
    ]
    what = ", ".join(changed) if changed else "rows removed or reordered"
    return f"the board's partition table differs from the new one ({what})"


def write(
    plan: FlashPlan,
    *,
    port: str | esplink.Link | None = None,
    baud: int | None = None,
    erase: bool = False,
) -> int:
    """doit flash: connect, erase if needed, write what changed, reset otadata, record the board.

    `port` is a port name (--port), or a Link that says what its far end can do.

    Returns:
        The number of bytes written (0 for a board that already held everything).
    """
    from ..firmware import outputs
    from . import esplink

    summary = outputs.read(plan.app_summary)
    link = (
        port
        if isinstance(port, esplink.Link)
        else esplink.Link.of(esplink.resolve_port(port, os.environ, plan.port))
    )
    chosen_port = link.port
    regions = _regions(summary, plan.app_summary)
    _check_signature(plan, summary, regions)
    speed = baud or esplink.env_baud(os.environ) or plan.baud
    try:
        rows, mac = _flash(plan, summary, regions, link, speed, erase)
    except _Interrupted as cut:  # the link dropped mid-write: gone, or worth one slower try
        rows, mac = _after_interruption(plan, summary, regions, link, speed, erase, cut)
    except Exception as error:  # sorted below: only transfer errors get one retry
        if not esplink.is_transfer_error(error):
            raise esplink.as_device_error(error) from None
        if speed <= esplink.FALLBACK_BAUD:
            raise DeviceError(esplink.connect_hint(chosen_port, error)) from None
        print(
            f"transfer failed at {speed} baud ({error}); retrying once at {esplink.FALLBACK_BAUD}"
        )
        try:
            rows, mac = _flash(plan, summary, regions, link, esplink.FALLBACK_BAUD, erase)
        except _Interrupted as cut:
            raise DeviceError(esplink.went_away(chosen_port, cut.role, cut.error)) from None
        except Exception as again:  # as above, without a third try
            raise esplink.as_device_error(again, chosen_port) from None
    _print_summary(rows)
    _record(plan, summary, regions, mac)
    return _written(rows)


def _check_signature(plan: FlashPlan, summary: AppSummary, regions: list[Region]) -> None:
    """ota.sign: the app verifies with the project's key (espsecure), or nothing is written."""
    from ..firmware import signing_key
    from ..idf import signing

    app = next((region for region in regions if region.role == "app"), None)
    if plan.signing is None or app is None:
        return
    name = summary.app_file
    try:
        key = signing_key.load(plan.signing, os.environ)
    except signing_key.SigningKeyError as error:
        raise DeviceError(f"cannot verify {name.name} before writing it: {error}") from None
    try:
        signing.verify(app.data, key.public_pem, name.name)
    except signing.SignatureError as error:
        raise DeviceError(f"{name}: {error}; nothing was written: run `doit build`") from None


class _Interrupted(Exception):
    """The serial link failed while a region was being written (the board reset, lost power,
    or its USB port went away)."""

    def __init__(self, role: str, error: BaseException) -> None:
        super().__init__(f"{role}: {error}")
        self.role, self.error = role, error


def _after_interruption(
    plan: FlashPlan,
    summary: AppSummary,
    regions: list[Region],
    link: esplink.Link,
    speed: int,
    erase: bool,
    cut: _Interrupted,
) -> tuple[list[tuple[str, int, str, float]], str]:
    """A board gone mid-write is said so (never "busy"); one still there gets one slower try."""
    from . import esplink

    port = link.port
    if esplink.port_gone(port) or speed <= esplink.FALLBACK_BAUD:
        raise DeviceError(esplink.went_away(port, cut.role, cut.error))
    print(
        f"writing {cut.role} failed at {speed} baud ({cut.error}); retrying once at "
        f"{esplink.FALLBACK_BAUD}"
    )
    try:
        return _flash(plan, summary, regions, link, esplink.FALLBACK_BAUD, erase)
    except (_Interrupted, esplink.ConnectError):
        raise DeviceError(esplink.went_away(port, cut.role, cut.error)) from None
    except Exception as again:
        raise esplink.as_device_error(again, port) from None


def _security(esp: Any) -> str | None:
    """What makes this board refuse erasing and ciphertext reads, if anything."""
    features = []
    for method, name in (
        ("get_flash_encryption_enabled", "flash encryption"),
        ("get_secure_boot_enabled", "secure boot"),
    ):
        try:
            if getattr(esp, method)():
                features.append(name)
        except Exception:  # chips or loaders without the query
            continue
    return " and ".join(features) or None


def _check_flash_size(esp: Any, plan: FlashPlan) -> None:
    """A 4 MB layout on a 2 MB chip flashes, then fails at run time (ota_begin err=0x104)."""
    from esptool.cmds import detect_flash_size

    found = detect_flash_size(esp)
    if found and _megabytes(found) < _megabytes(plan.flash_size):
        raise DeviceError(
            f"the board's flash is {found}, project.yaml says flash.size {plan.flash_size}; "
            "set flash.size (and a layout that fits) or use a module with more flash"
        )


def _megabytes(text: str) -> int:
    return int(text.upper().removesuffix("MB")) if text.upper().endswith("MB") else 0


def _erase_first(esp: Any, reason: str | None, secured: str | None, stub: bool) -> None:
    from esptool.cmds import erase_flash

    if reason is None:
        return
    if secured:
        raise DeviceError(
            f"cannot erase the chip ({reason}): {secured} is enabled on this board and esptool "
            "refuses to erase it; flash it with idf.py encrypted-flash as ESP-IDF documents"
        )
    if not stub:
        raise DeviceError(
            f"the chip needs erasing ({reason}), which needs the flasher stub, and this build "
            "sets CONFIG_ESPTOOLPY_NO_STUB; erase it once with python -m esptool erase-flash"
        )
    print(f"erasing the whole chip: {reason}")
    erase_flash(esp)


def _flash(
    plan: FlashPlan,
    summary: AppSummary,
    regions: list[Region],
    link: esplink.Link,
    baud: int,
    erase: bool,
) -> tuple[list[tuple[str, int, str, float]], str]:
    from esptool.cmds import reset_chip

    from ..idf import esptool_log
    from . import esplink

    extra = summary.esptool_args
    before = extra.before.replace("_", "-")
    progress = esptool_log.Progress()
    rows: list[tuple[str, int, str, float]] = []
    stub = extra.stub
    with (
        esptool_log.quiet_esptool(progress),
        esplink.connect(link, baud, plan.target, before=before, stub=stub) as esp,
    ):
        mac = ":".join(f"{byte:02x}" for byte in esp.read_mac())
        _check_flash_size(esp, plan)
        secured = _security(esp)
        table = next((r.data for r in regions if r.role == "partition-table"), b"")
        if erase:
            _erase_first(esp, "--erase was given", secured, stub)
        elif secured:
            # Reads return ciphertext on such a board: no table comparison, no MD5 skipping.
            print(f"{secured} is enabled: writing every region, erasing nothing")
        else:
            board = flash_reader(esp)(plan.table_offset, rules.MAX_TABLE_LENGTH)
            _erase_first(esp, _erase_reason(board, table, plan.table_offset), secured, stub)
        for region in regions:
            try:
                rows.append(_write_region(esp, plan, region, secured, progress))
            except Exception as error:
                if esplink.is_transfer_error(error):
                    raise _Interrupted(region.role, error) from error
                raise
        after = extra.after.replace("_", "-")
        if link.resettable:
            reset_chip(esp, after)
    return rows, mac


def _write_region(
    esp: Any, plan: FlashPlan, region: Region, secured: str | None, progress: Any
) -> tuple[str, int, str, float]:
    """Write one region unless the board already holds it (MD5); its summary row."""
    from esptool.cmds import write_flash

    started = time.monotonic()
    if not secured and esp.flash_md5sum(region.offset, len(region.data)) == region.md5:
        return (region.role, region.offset, "unchanged", 0.0)
    progress.label = region.role
    kwargs: dict[str, Any] = {"compress": True, "flash_size": plan.flash_size}
    if region.encrypted:
        kwargs["encrypt_files"] = [(region.offset, region.data)]
        write_flash(esp, [], **kwargs)
    else:
        write_flash(esp, [(region.offset, region.data)], **kwargs)
    progress.end()
    return (region.role, region.offset, f"{len(region.data)} bytes", time.monotonic() - started)


def _print_summary(rows: list[tuple[str, int, str, float]]) -> None:
    print(f"{'region':<16} {'offset':>10}  {'written':<14} {'time':>6}")
    for role, offset, written, seconds in rows:
        print(f"{role:<16} {offset:#10x}  {written:<14} {seconds:5.1f}s")
    print(f"{_written(rows)} bytes written")


def _written(rows: list[tuple[str, int, str, float]]) -> int:
    return sum(int(written.split()[0]) for _, _, written, _ in rows if written != "unchanged")


def _trusted_key(regions: list[Region]) -> str | None:
    """The digest of the key in the flashed app's signature block: the one it trusts."""
    from ..idf import signing

    app = next((region for region in regions if region.role == "app"), None)
    public = signing.signed_public_key(app.data) if app is not None else None
    return signing.public_key_digest(public) if public is not None else None


def _record(plan: FlashPlan, summary: AppSummary, regions: list[Region], mac: str) -> None:
    """build/boards/<mac>.json: what this board now holds; serve reads it. Its eFuse keeps the
    highest secure_version it reached before (eFuse bits are never cleared)."""
    from . import record

    known = record.previous(plan.boards_dir, mac)
    reached = known.efuse_secure_version if known is not None else 0
    record.write(
        plan.boards_dir,
        record.BoardRecord(
            chip=plan.target,
            mac=mac,
            flash_size=plan.flash_size,
            flash_mode=summary.flash_settings.flash_mode,
            images=tuple(
                (
                    r.role,
                    record.FlashedImage(
                        offset=r.offset, sha256=hashlib.sha256(r.data).hexdigest(), size=len(r.data)
                    ),
                )
                for r in regions
            ),
            app=record.RunningApp(
                name=plan.app,
                version=summary.version,
                project_name=summary.project_name,
                secure_version=summary.app_image.secure_version,
            ),
            ca_sha256=summary.ca_sha256,
            ota_url=summary.ota_url,
            trusted_key_sha256=_trusted_key(regions),
            efuse_secure_version=max(reached, summary.app_image.secure_version),
        ),
    )
