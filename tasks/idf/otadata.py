"""OTA data (the `otadata` partition), as ESP-IDF v5.3 to v6.0's bootloader and esp_ota_ops use
it; what differs by release (v6.0's rewrite of the active copy) comes from releases.py.

Entry layout, CRC, states and the selection rules: docs/esp-idf.md §3 (esp_flash_partitions.h,
bootloader_utility.c, esp_ota_ops.c).
"""

from __future__ import annotations

import binascii
import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass

from . import releases
from .partition.model import DEFAULT_RELEASE
from .partition.rules import Partition, PartitionTable

__all__ = [
    "ABORTED",
    "INVALID",
    "NEW",
    "PENDING_VERIFY",
    "SECTOR",
    "STATE_NAMES",
    "UNDEFINED",
    "VALID",
    "OtadataEntry",
    "Selection",
    "blank",
    "boot_slot",
    "crc",
    "decode",
    "mark_valid",
    "select",
    "set_actual_seq",
    "set_boot",
]

SECTOR = 0x1000  # the two copies sit one flash sector apart
_ENTRY = struct.Struct("<I20sII")
_UNSET = 0xFFFFFFFF
NEW, PENDING_VERIFY, VALID, INVALID, ABORTED, UNDEFINED = 0x0, 0x1, 0x2, 0x3, 0x4, _UNSET
# As `doit status` prints them.
STATE_NAMES = {
    NEW: "new",
    PENDING_VERIFY: "pending verify",
    VALID: "valid",
    INVALID: "invalid",
    ABORTED: "aborted",
    UNDEFINED: "undefined",
}
_REFUSED = (INVALID, ABORTED)  # the bootloader skips these entries


def crc(seq: int) -> int:
    """CRC32 of the 4 little-endian bytes of ota_seq, as esp_rom_crc32_le(UINT32_MAX, ...)."""
    return binascii.crc32(struct.pack("<I", seq), _UNSET)


@dataclass(frozen=True, slots=True, kw_only=True)
class OtadataEntry:
    """One esp_ota_select_entry_t."""

    seq: int
    state: int
    crc: int
    label: bytes = b"\xff" * 20

    @property
    def valid(self) -> bool:
        """Valid as the bootloader judges it: seq set, CRC right, state not INVALID/ABORTED."""
        return self.seq != _UNSET and self.crc == crc(self.seq) and self.state not in _REFUSED

    @property
    def state_text(self) -> str:
        """The state in words: new, pending verify, valid, invalid, aborted, undefined."""
        return STATE_NAMES.get(self.state, f"unknown state 0x{self.state:x}")

    @property
    def crc_ok(self) -> bool:
        return self.seq != _UNSET and self.crc == crc(self.seq)

    def to_bytes(self) -> bytes:
        return _ENTRY.pack(self.seq, self.label, self.state, self.crc)

    @classmethod
    def for_seq(cls, seq: int, state: int = _UNSET) -> OtadataEntry:
        return cls(seq=seq, state=state, crc=crc(seq))


def blank(size: int = 2 * SECTOR) -> bytes:
    """ota_data_initial.bin: the erased partition, which boots factory (or ota_0)."""
    return b"\xff" * size


def decode(data: bytes) -> tuple[OtadataEntry, OtadataEntry]:
    """The two copies, at offsets 0 and 0x1000 of the partition."""
    if len(data) < SECTOR + _ENTRY.size:
        raise ValueError(f"otadata is {len(data)} bytes; it needs two sectors (0x2000)")
    entries = []
    for offset in (0, SECTOR):
        seq, label, state, stored = _ENTRY.unpack_from(data, offset)
        entries.append(OtadataEntry(seq=seq, state=state, crc=stored, label=label))
    return entries[0], entries[1]


def _active(entries: tuple[OtadataEntry, OtadataEntry]) -> int | None:
    """Index of the copy the bootloader follows: the valid one with the larger seq."""
    valid = [index for index, entry in enumerate(entries) if entry.valid]
    if not valid:
        return None
    return max(valid, key=lambda index: entries[index].seq)


def boot_slot(table: PartitionTable, data: bytes | None) -> tuple[Partition | None, str]:
    """The app partition the bootloader would pick, and why (bootloader_utility.c rules)."""
    slots = table.ota_slots
    entries = decode(data) if data is not None and table.otadata is not None else None
    index = _active(entries) if entries is not None else None
    if entries is not None and index is not None and slots:
        seq = entries[index].seq
        slot = slots[(seq - 1) % len(slots)]
        return slot, f"otadata[{index}] seq {seq} ({entries[index].state_text}) -> {slot.name}"
    if table.factory is not None:
        return table.factory, "no valid otadata entry: Defaulting to factory image"
    if slots:
        return slots[0], "no valid otadata entry and no factory: No factory image, trying OTA 0"
    return None, "No bootable app partitions in the partition table"


def _written(data: bytes, index: int, entry: OtadataEntry) -> bytes:
    """The partition after the sector of copy `index` is erased and `entry` written to it."""
    out = bytearray(data)
    out[index * SECTOR : index * SECTOR + SECTOR] = entry.to_bytes().ljust(SECTOR, b"\xff")
    return bytes(out)


def set_boot(
    table: PartitionTable,
    data: bytes,
    slot: Partition,
    *,
    state: int = _UNSET,
    release: str = DEFAULT_RELEASE,
) -> bytes:
    """otadata after esp_ota_set_boot_partition(slot) of ESP-IDF `release`: the other copy gets
    the next seq that maps to `slot` (its seq_label kept, as esp_rewrite_ota_data edits the copy
    it read), with `state` NEW under CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, else UNDEFINED;
    factory erases the whole partition. When `slot` is the one the active copy already selects,
    v6.0 rewrites that copy (same seq, new state) where earlier releases write the other one."""
    if table.factory is not None and slot == table.factory:
        return blank(len(data))
    slots = list(table.ota_slots)
    if slot not in slots:
        raise ValueError(f"{slot.name} is not an OTA app slot")
    number, count = slots.index(slot), len(slots)
    entries = decode(data)
    active = _active(entries)
    if active is None:
        target, seq = 0, number + 1
    elif releases.release(release).otadata_rewrites_active and _selects(
        entries[active], number, count
    ):
        target, seq = active, entries[active].seq
    else:
        current = entries[active].seq
        seq = (number + 1) % count
        while seq < current or seq == 0:
            seq += count
        target = 1 - active
    entry = OtadataEntry(seq=seq, state=state, crc=crc(seq), label=entries[target].label)
    return _written(data, target, entry)


def _selects(entry: OtadataEntry, number: int, count: int) -> bool:
    """The entry boots ota_<number> of `count` slots ((seq - 1) % count)."""
    return (entry.seq - 1) % count == number


def mark_valid(data: bytes) -> bytes:
    """esp_ota_mark_app_valid_cancel_rollback(): the active copy becomes VALID, same seq, same
    copy (esp_ota_current_ota_is_workable -> rewrite_ota_seq); unchanged when already VALID."""
    entries = decode(data)
    active = _active(entries)
    if active is None or entries[active].state == VALID:
        return data
    entry = entries[active]
    return _written(
        data,
        active,
        OtadataEntry(seq=entry.seq, state=VALID, crc=crc(entry.seq), label=entry.label),
    )


def set_actual_seq(data: bytes, index: int) -> bytes:
    """What the bootloader writes after booting ota_<index> from blank otadata with no factory
    (set_actual_ota_seq): otadata[0] = seq index+1, VALID, the rest of the entry 0xFF."""
    return _written(data, 0, OtadataEntry.for_seq(index + 1, VALID))


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The bootloader's choice (bootloader_utility_get_selected_boot_partition)."""

    slot: Partition | None  # None: factory-first fallback over every app partition
    data: bytes  # otadata after the bootloader's own writes
    initial: bool  # both copies blank or with a bad CRC (set_actual_ota_seq may follow)
    lines: tuple[str, ...]
    active_state: int | None = None  # the selected entry's state after the writes


def _blank_or_bad(entry: OtadataEntry) -> bool:
    return entry.seq == _UNSET or entry.crc != crc(entry.seq)


def select(
    table: PartitionTable,
    data: bytes,
    *,
    rollback: bool,
    anti_rollback: bool = False,
    secure_ok: Callable[[Partition], bool] = lambda slot: True,
) -> Selection:
    """The slot the bootloader picks, and the otadata writes it makes on the way: PENDING_VERIFY
    becomes ABORTED (rollback), NEW becomes PENDING_VERIFY; with anti-rollback a slot whose app
    has a secure_version below the eFuse value is not selected."""
    slots, lines = table.ota_slots, []
    entries = list(decode(data))
    if rollback:
        for index, entry in enumerate(entries):
            if entry.state == PENDING_VERIFY:
                lines.append(f"otadata[{index}] {entry.seq}: pending verify -> aborted (rollback)")
                entries[index] = dataclasses.replace(entry, state=ABORTED)
                data = _written(data, index, entries[index])
    initial = all(_blank_or_bad(entry) for entry in entries)
    valid = [entry.valid for entry in entries]
    if anti_rollback:
        valid = [
            ok and secure_ok(slots[(e.seq - 1) % len(slots)])
            for ok, e in zip(valid, entries, strict=True)
        ]
    if not anti_rollback and (not any(valid) or not slots):
        if table.factory is not None:
            return Selection(
                slot=table.factory,
                data=data,
                initial=initial,
                lines=(*lines, "Defaulting to factory image"),
            )
        return Selection(
            slot=slots[0] if slots else None,
            data=data,
            initial=initial,
            lines=(*lines, "No factory image, trying OTA 0"),
        )
    if anti_rollback and initial:
        return Selection(
            slot=None, data=data, initial=True, lines=(*lines, "otadata[0..1] in initial state")
        )
    candidates = [index for index in (0, 1) if valid[index]]
    if not candidates:
        why = "ota data partition invalid, falling back to factory"
        if table.factory is None:
            why = "ota data partition invalid and no factory, will try all partitions"
        return Selection(slot=table.factory, data=data, initial=False, lines=(*lines, why))
    active = max(candidates, key=lambda index: entries[index].seq)
    entry = entries[active]
    slot = slots[(entry.seq - 1) % len(slots)]
    lines.append(f"otadata[{active}] seq {entry.seq} ({entry.state_text}) -> {slot.name}")
    if rollback and entry.state == NEW:
        lines.append(f"otadata[{active}]: new -> pending verify")
        entry = dataclasses.replace(entry, state=PENDING_VERIFY)
        data = _written(data, active, entry)
    return Selection(
        slot=slot, data=data, initial=False, lines=tuple(lines), active_state=entry.state
    )
