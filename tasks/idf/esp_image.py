"""ESP-IDF app and bootloader images, read and checked through esptool's image classes.

Checks mirror what ESP-IDF's bootloader and esp_https_ota refuse (docs/esp-idf.md §4): magic,
chip id, checksum, appended SHA-256, the esp_app_desc_t magic; sizes as check_sizes.py words them.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ProjectError

if TYPE_CHECKING:
    from .partition.rules import Partition

__all__ = [
    "APP_DESC_END",
    "AppDesc",
    "AppImage",
    "Headroom",
    "ImageError",
    "app_desc",
    "chip_id",
    "fit_warning",
    "headroom",
    "parse",
    "read_app",
    "read_bootloader",
]

_HEADROOM_WARN = 5  # percent, as check_sizes.py warns
# esp_app_desc_t (docs/esp-idf.md §4.3): 256 bytes after the image header (24) and the first
# segment's (8).
_APP_DESC_AT = 0x20
APP_DESC_END = _APP_DESC_AT + 256


class ImageError(ProjectError):
    """An image ESP-IDF would refuse to boot or to accept over OTA."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppImage:
    """The facts about one image that later steps (flash, serve, OTA) rely on."""

    name: str  # file name, for messages
    size: int
    sha256: str  # of the whole file, as served and as esp_https_ota writes it
    chip_id: int
    project_name: str = ""
    version: str = ""
    idf_version: str = ""
    secure_version: int = 0
    elf_sha256: str = ""
    signed: bool = False  # a Secure Boot V2 signature sector follows the image


@dataclass(frozen=True, slots=True, kw_only=True)
class AppDesc:
    """The esp_app_desc_t fields this project reads."""

    project_name: str
    version: str
    idf_version: str
    secure_version: int
    elf_sha256: str


def app_desc(head: bytes) -> AppDesc | None:
    """The esp_app_desc_t of an app image, from its first APP_DESC_END bytes (the image or a
    slot's start); None without the image or descriptor magic.

    The one reader of the descriptor: esptool parses it for `image-info` but offers no public
    function, so its private `_parse_app_info` is wrapped here and nowhere else.
    """
    from esptool.cmds import _parse_app_info

    if len(head) < APP_DESC_END or head[0] != 0xE9:
        return None
    desc = _parse_app_info(head[_APP_DESC_AT:APP_DESC_END])
    if desc is None:
        return None
    return AppDesc(
        project_name=str(desc["project_name"]),
        version=str(desc["version"]),
        idf_version=str(desc["idf_ver"]),
        secure_version=int(desc["secure_version"]),
        elf_sha256=str(desc["app_elf_sha256"]),
    )


def chip_id(target: str) -> int:
    """esp_chip_id_t of `target`, from esptool's chip definitions."""
    from esptool.targets import CHIP_DEFS

    return int(CHIP_DEFS[target].IMAGE_CHIP_ID)


def parse(data: bytes, target: str, *, name: str = "image") -> Any:
    """esptool's LoadFirmwareImage of `data` (header and segments), without any check.

    Raises:
        ImageError: esptool cannot parse it (it raises several types for a truncated image).
    """
    from esptool.bin_image import LoadFirmwareImage
    from esptool.util import FatalError

    if not data or data[0] != 0xE9:
        seen = f"0x{data[0]:02x}" if data else "nothing"
        raise ImageError(
            f"{name}: invalid magic byte (expected 0xE9, saw {seen}); not an ESP image"
        )
    try:
        return LoadFirmwareImage(target, data)
    except (FatalError, ValueError, IndexError, EOFError, TypeError, struct.error) as error:
        raise ImageError(f"{name}: not a valid {target} image ({error})") from None


def _load(data: bytes, target: str, name: str) -> Any:
    image = parse(data, target, name=name)
    found, wanted = int(image.chip_id), chip_id(target)
    if found != wanted:
        raise ImageError(
            f"{name}: Mismatch chip id, expected {wanted}, found {found} "
            f"(the image is for {_target_of(found)}, project.yaml says {target})"
        )
    computed = image.calculate_checksum()
    if image.checksum != computed:
        raise ImageError(
            f"{name}: Checksum failed. Calculated 0x{computed:x} read 0x{image.checksum:x}"
        )
    if image.append_digest and image.stored_digest != image.calc_digest:
        raise ImageError(f"{name}: Image hash failed - image is corrupt")
    return image


def _target_of(found: int) -> str:
    from esptool.targets import CHIP_DEFS

    names = [
        name for name, chip in CHIP_DEFS.items() if getattr(chip, "IMAGE_CHIP_ID", None) == found
    ]
    return names[0] if names else f"an unknown chip ({found})"


def read_app(data: bytes, target: str, *, name: str = "app") -> AppImage:
    """Check an app image as the bootloader and esp_https_ota would, and read its descriptor.

    Raises:
        ImageError: with ESP-IDF's own wording where it has one.
    """
    image = _load(data, target, name)
    segments = getattr(image, "segments", [])
    first = segments[0] if segments else None
    desc = app_desc(data) if first is not None and len(first.data) >= 256 else None
    if desc is None:
        raise ImageError(f"{name}: Incorrect app descriptor magic (no esp_app_desc_t at 0x20)")
    # Read from a flash partition, the image is followed by erased (0xFF) bytes.
    length = _length(image, len(data))
    data = data[: _signed_length(data, length)]
    return AppImage(
        signed=len(data) > length,
        name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        chip_id=int(getattr(image, "chip_id", -1)),
        project_name=desc.project_name,
        version=desc.version,
        idf_version=desc.idf_version,
        secure_version=desc.secure_version,
        elf_sha256=desc.elf_sha256,
    )


def _length(image: object, available: int) -> int:
    """The image's own length: through the checksum block, plus the appended SHA-256."""
    length = getattr(image, "data_length", None)
    if not isinstance(length, int):
        return available
    return min(available, length + (32 if getattr(image, "append_digest", False) else 0))


def _signed_length(data: bytes, length: int) -> int:
    """The length with the Secure Boot V2 signature sector, when one follows the image (it
    starts at the next 4 KiB boundary, as espsecure sign-data pads it)."""
    from .signing import SECTOR, has_signature

    end = -(-length // SECTOR) * SECTOR + SECTOR
    return end if len(data) >= end and has_signature(data[:end]) else length


def read_bootloader(data: bytes, target: str, *, name: str = "bootloader.bin") -> AppImage:
    """Check a second-stage bootloader image (no app descriptor)."""
    image = _load(data, target, name)
    return AppImage(
        name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        chip_id=int(getattr(image, "chip_id", -1)),
    )


@dataclass(frozen=True, slots=True)
class Headroom:
    """How an app image fits app partitions, as ESP-IDF's check_sizes.py measures it."""

    too_small: tuple[Partition, ...]
    smallest: int  # the smallest partition's size; 0 for none
    free: int  # bytes left in the smallest partition (negative when it is too small)


def headroom(size: int, slots: Sequence[Partition]) -> Headroom:
    """The partitions `size` bytes overflow, and the room left in the smallest one."""
    smallest = min((slot.size for slot in slots), default=0)
    return Headroom(
        too_small=tuple(slot for slot in slots if slot.size < size),
        smallest=smallest,
        free=smallest - size,
    )


def fit_warning(image: AppImage, slots: tuple[Partition, ...]) -> str | None:
    """Raise when the image overflows a slot; return check_sizes.py's warning under 5 % free."""
    room = headroom(image.size, slots)
    too_small = room.too_small
    if too_small:
        parts = "; ".join(
            f"'{slot.name}' @ 0x{slot.offset:x} size 0x{slot.size:x} "
            f"(overflow 0x{image.size - slot.size:x})"
            for slot in too_small
        )
        raise ImageError(
            f"{image.name} binary size 0x{image.size:x} does not fit app partition {parts}; "
            "make the partition bigger in partitions.layout, or the app smaller"
        )
    if not slots:
        return None
    free = room.free * 100 // room.smallest
    if free < _HEADROOM_WARN:
        return f"{image.name}: The smallest app partition is nearly full ({free}% free space left)!"
    return None
