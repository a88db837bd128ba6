"""OTA data (the `otadata` partition), as ESP-IDF v5.3's bootloader and esp_ota_ops use it.

Entry layout, CRC, states and the selection rules: facts §3 (esp_flash_partitions.h,
bootloader_utility.c, esp_ota_ops.c).
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from .partitions import Partition, PartitionTable

__all__ = [
    "SECTOR",
    "STATES",
    "OtadataEntry",
    "blank",
    "boot_slot",
    "crc",
    "decode",
    "set_boot",
]

SECTOR = 0x1000  # the two copies sit one flash sector apart
_ENTRY = struct.Struct("<I20sII")
_UNSET = 0xFFFFFFFF
STATES = {
    0x0: "NEW",
    0x1: "PENDING_VERIFY",
    0x2: "VALID",
    0x3: "INVALID",
    0x4: "ABORTED",
    _UNSET: "UNDEFINED",
}
_REFUSED = (0x3, 0x4)  # INVALID, ABORTED: the bootloader skips these entries


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
    def state_name(self) -> str:
        return STATES.get(self.state, f"0x{self.state:x}")

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
        return slot, f"otadata[{index}] seq {seq} ({entries[index].state_name}) -> {slot.name}"
    if table.factory is not None:
        return table.factory, "no valid otadata entry: Defaulting to factory image"
    if slots:
        return slots[0], "no valid otadata entry and no factory: No factory image, trying OTA 0"
    return None, "No bootable app partitions in the partition table"


def set_boot(table: PartitionTable, data: bytes, slot: Partition, *, state: int = _UNSET) -> bytes:
    """otadata after esp_ota_set_boot_partition(slot): the other copy gets the next seq that
    maps to `slot`; factory erases the whole partition."""
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
    else:
        current = entries[active].seq
        seq = (number + 1) % count
        while seq < current or seq == 0:
            seq += count
        target = 1 - active
    entry = OtadataEntry.for_seq(seq, state)
    out = bytearray(data)
    out[target * SECTOR : target * SECTOR + SECTOR] = entry.to_bytes().ljust(SECTOR, b"\xff")
    return bytes(out)
