"""build/boards/<mac>.json, the board record `doit flash` hands to `doit serve`: what a board now
holds (chip, flash, each image's digest, the CA and URL compiled into its app, the signing key
its app trusts, the secure_version its anti-rollback eFuse reached). One typed owner, with a
schema version; a file of another version or shape is refused with one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..files import ShapeError, field, mapping, read_json, schema_checked, write_if_changed

__all__ = [
    "SCHEMA",
    "BoardRecord",
    "FlashedImage",
    "RunningApp",
    "previous",
    "read",
    "updated_after_ota",
    "write",
]

SCHEMA = 1
_FIX = "run doit flash"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashedImage:
    """One region `doit flash` wrote (or found unchanged)."""

    offset: int
    sha256: str
    size: int

    def to_json(self) -> dict[str, object]:
        return {"offset": f"{self.offset:#x}", "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlashedImage:
        offset = field(data, "offset", str)
        try:
            where = int(offset, 16)
        except ValueError:
            raise ShapeError(f"offset '{offset}' is not hexadecimal") from None
        return cls(offset=where, sha256=field(data, "sha256", str), size=field(data, "size", int))


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningApp:
    """The app flashed over serial: what the board runs until an OTA update."""

    name: str
    version: str
    project_name: str
    secure_version: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "project_name": self.project_name,
            "secure_version": self.secure_version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunningApp:
        return cls(
            name=field(data, "name", str),
            version=field(data, "version", str),
            project_name=field(data, "project_name", str),
            secure_version=field(data, "secure_version", int),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardRecord:
    """What one board holds after `doit flash`."""

    chip: str
    mac: str  # aa:bb:cc:dd:ee:ff
    flash_size: str
    flash_mode: str | None
    images: tuple[tuple[str, FlashedImage], ...]  # (role, image), in flash order
    app: RunningApp
    ca_sha256: str | None = None  # the CA its app embeds
    ota_url: str | None = None  # the URL its app fetches
    # SHA-256 of the public key in its app's signature block (espsecure digest-sbv2-public-key):
    # with ota.sign, it takes only updates signed by that key. None: its app is unsigned.
    trusted_key_sha256: str | None = None
    # The anti-rollback eFuse (secure_version) at least: it only rises (flash, confirmed OTAs).
    efuse_secure_version: int = 0
    schema: int = SCHEMA

    def image(self, role: str) -> FlashedImage | None:
        return next((image for name, image in self.images if name == role), None)

    @property
    def file_name(self) -> str:
        """build/boards/<this>: the MAC without colons."""
        return f"{self.mac.replace(':', '')}.json"

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "chip": self.chip,
            "mac": self.mac,
            "flash_size": self.flash_size,
            "flash_mode": self.flash_mode,
            "images": {role: image.to_json() for role, image in self.images},
            "ca_sha256": self.ca_sha256,
            "ota_url": self.ota_url,
            "trusted_key_sha256": self.trusted_key_sha256,
            "efuse_secure_version": self.efuse_secure_version,
            "app": self.app.to_json(),
        }

    @classmethod
    def from_json(cls, data: object, *, source: Path) -> BoardRecord:
        """The record in `data` (parsed JSON from `source`).

        Raises:
            ToolError: one line naming `source`, when it is of another schema or shape.
        """
        data = schema_checked(data, SCHEMA, what="a board record", source=source, fix=_FIX)
        try:
            images = mapping(data, "images")
            return cls(
                chip=field(data, "chip", str),
                mac=field(data, "mac", str),
                flash_size=field(data, "flash_size", str),
                flash_mode=field(data, "flash_mode", str, type(None)),
                images=tuple(
                    (str(role), FlashedImage.from_json(mapping(images, role))) for role in images
                ),
                app=RunningApp.from_json(mapping(data, "app")),
                ca_sha256=field(data, "ca_sha256", str, type(None)),
                ota_url=field(data, "ota_url", str, type(None)),
                # Records written before these fields existed: unknown key, eFuse as flashed.
                trusted_key_sha256=field(data, "trusted_key_sha256", str, type(None)),
                efuse_secure_version=field(data, "efuse_secure_version", int)
                if "efuse_secure_version" in data
                else field(mapping(data, "app"), "secure_version", int),
            )
        except ShapeError as problem:
            raise ToolError(f"{source}: not a valid board record ({problem}); {_FIX}") from None


def read(path: Path) -> BoardRecord:
    """One build/boards/<mac>.json."""
    return BoardRecord.from_json(read_json(path, fix=_FIX), source=path)


def write(boards_dir: Path, record: BoardRecord) -> Path:
    """build/boards/<mac>.json, atomically; returns its path."""
    path = boards_dir / record.file_name
    write_if_changed(path, json.dumps(record.to_json(), indent=2) + "\n")
    return path


def previous(boards_dir: Path, mac: str) -> BoardRecord | None:
    """The record of the board with this MAC, when there is a readable one."""
    path = boards_dir / f"{mac.replace(':', '')}.json"
    try:
        return read(path) if path.is_file() else None
    except ToolError:
        return None


def updated_after_ota(
    boards_dir: Path, mac: str, *, trusted_key_sha256: str | None, secure_version: int
) -> BoardRecord | None:
    """After a confirmed OTA: the new app's key is the one the board trusts, and the eFuse has
    risen to its secure_version (never lowered). Returns the record written, if the board has one.
    """
    import dataclasses

    known = previous(boards_dir, mac)
    if known is None:
        return None
    updated = dataclasses.replace(
        known,
        trusted_key_sha256=trusted_key_sha256,
        efuse_secure_version=max(known.efuse_secure_version, secure_version),
    )
    write(boards_dir, updated)
    return updated
