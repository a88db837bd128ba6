"""build/<app>/app.json, the app summary `doit build` hands to flash, serve, the manifest and the
rehearsal: one typed owner, so no reader opens it as a raw dict.

The file carries a schema version; a file of another version or shape is refused with one line
that says to rebuild (doit's uptodate check treats it as out of date, so `doit build` rewrites it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..files import ShapeError, field, mapping, read_json, schema_checked, write_if_changed
from ..idf.app_code import AppCode
from ..idf.esp_image import AppImage

__all__ = [
    "SCHEMA",
    "AppSummary",
    "BuiltImages",
    "Checked",
    "EsptoolArgs",
    "FlashSettings",
    "ImageEntry",
    "read",
    "read_built",
    "read_checked",
    "write",
    "write_built",
    "write_checked",
]

SCHEMA = 1
_FIX = "run doit build"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageEntry:
    """One flash image flasher_args.json names: where it goes and what it is."""

    role: str  # bootloader, partition-table, otadata, app
    offset: int
    file: Path
    size: int
    sha256: str
    encrypted: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "offset": f"{self.offset:#x}",
            "file": str(self.file),
            "size": self.size,
            "sha256": self.sha256,
            "encrypted": self.encrypted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageEntry:
        offset = field(data, "offset", str)
        try:
            where = int(offset, 16)
        except ValueError:
            raise ShapeError(f"offset '{offset}' is not hexadecimal") from None
        return cls(
            role=field(data, "role", str),
            offset=where,
            file=Path(field(data, "file", str)),
            size=field(data, "size", int),
            sha256=field(data, "sha256", str),
            encrypted=field(data, "encrypted", bool),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashSettings:
    """flasher_args.json's flash_settings; None where the build named none."""

    flash_mode: str | None = None
    flash_size: str | None = None
    flash_freq: str | None = None

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlashSettings:
        names = (f.name for f in dataclasses.fields(cls))
        return cls(**{name: field(data, name, str, type(None)) for name in names})


@dataclass(frozen=True, slots=True, kw_only=True)
class EsptoolArgs:
    """flasher_args.json's extra_esptool_args, as `doit flash` connects and resets with them."""

    before: str = "default_reset"
    after: str = "hard_reset"
    stub: bool = True

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EsptoolArgs:
        return cls(
            before=field(data, "before", str),
            after=field(data, "after", str),
            stub=field(data, "stub", bool),
        )


def _app_image(data: Mapping[str, Any]) -> AppImage:
    """The app image facts (idf.images owns the concept; this file only carries them)."""
    kinds: dict[str, type] = {
        "name": str,
        "size": int,
        "sha256": str,
        "chip_id": int,
        "project_name": str,
        "version": str,
        "idf_version": str,
        "secure_version": int,
        "elf_sha256": str,
        "signed": bool,
    }
    return AppImage(**{name: field(data, name, kind) for name, kind in kinds.items()})


@dataclass(frozen=True, slots=True, kw_only=True)
class AppSummary:
    """What `doit build:<app>` verified and wrote: the images, the app's facts, the CA it embeds."""

    app: str
    target: str
    app_image: AppImage  # the verified app image's descriptor and digest
    images: tuple[ImageEntry, ...]
    flash_settings: FlashSettings
    esptool_args: EsptoolArgs
    merged: Path
    ota_url: str | None = None  # what the app fetches, for ota_client apps
    ca_sha256: str | None = None  # the CA file the app embeds
    ca_file: Path | None = None
    holds_secret: bool = False  # the image embeds the Wi-Fi password
    code: AppCode | None = None  # what the app's code does about OTA, under its built config
    schema: int = SCHEMA

    @property
    def version(self) -> str:
        return self.app_image.version

    @property
    def project_name(self) -> str:
        return self.app_image.project_name

    def image(self, role: str) -> ImageEntry | None:
        """The image of that role (bootloader, partition-table, otadata, app), if built."""
        return next((entry for entry in self.images if entry.role == role), None)

    @property
    def app_file(self) -> Path:
        """The app's file (the one flashed, served or tampered with)."""
        entry = self.image("app")
        if entry is None:  # from_json and the build both refuse a summary without one
            raise ToolError(f"app '{self.app}': its summary names no app image; {_FIX}")
        return entry.file

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "app": self.app,
            "target": self.target,
            "ota_url": self.ota_url,
            "ca_sha256": self.ca_sha256,
            "ca_file": None if self.ca_file is None else str(self.ca_file),
            "app_image": dataclasses.asdict(self.app_image),
            "images": [entry.to_json() for entry in self.images],
            "flash_settings": self.flash_settings.to_json(),
            "esptool_args": self.esptool_args.to_json(),
            "merged": str(self.merged),
            "holds_secret": self.holds_secret,
            "code": None if self.code is None else self.code.to_json(),
        }

    @classmethod
    def from_json(cls, data: object, *, source: Path, fix: str = _FIX) -> AppSummary:
        """The summary in `data` (parsed JSON from `source`).

        Raises:
            ToolError: one line naming `source`, when it is of another schema or shape.
        """
        data = schema_checked(data, SCHEMA, what="an app summary", source=source, fix=fix)
        try:
            entries = field(data, "images", list)
            summary = cls(
                app=field(data, "app", str),
                target=field(data, "target", str),
                app_image=_app_image(mapping(data, "app_image")),
                images=tuple(ImageEntry.from_json(_entry(entry)) for entry in entries),
                flash_settings=FlashSettings.from_json(mapping(data, "flash_settings")),
                esptool_args=EsptoolArgs.from_json(mapping(data, "esptool_args")),
                merged=Path(field(data, "merged", str)),
                ota_url=field(data, "ota_url", str, type(None)),
                ca_sha256=field(data, "ca_sha256", str, type(None)),
                ca_file=_optional_path(field(data, "ca_file", str, type(None))),
                holds_secret=field(data, "holds_secret", bool),
                code=_code(data.get("code")),
            )
        except ShapeError as problem:
            raise ToolError(f"{source}: not a valid app summary ({problem}); {fix}") from None
        if summary.image("app") is None:
            raise ToolError(f"{source}: names no app image; {fix}")
        return summary


def _entry(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError("an entry of 'images' is not a mapping")
    return value


def _code(value: object) -> AppCode | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ShapeError("'code' is not a mapping")
    try:
        return AppCode.from_json(value)
    except (KeyError, TypeError, ValueError):
        raise ShapeError("'code' is not what doit build writes") from None


def _optional_path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def read(path: Path, *, fix: str = _FIX) -> AppSummary:
    """build/<app>/app.json as `doit build` wrote it; `fix` ends every refusal."""
    return AppSummary.from_json(read_json(path, fix=fix), source=path, fix=fix)


def write(path: Path, summary: AppSummary) -> bool:
    """Write app.json atomically (unchanged content is not rewritten); True if written."""
    return write_if_changed(path, json.dumps(summary.to_json(), indent=2) + "\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltImages:
    """build/<app>/images.json: what `build:<app>:idf` made, as flasher_args.json names it, with
    each image's SHA-256. The steps after idf.py depend on this file: it changes exactly when an
    image does (flasher_args.json alone stays the same when only the code changed)."""

    images: tuple[ImageEntry, ...]
    flash_settings: FlashSettings
    esptool_args: EsptoolArgs
    schema: int = SCHEMA

    def image(self, role: str) -> ImageEntry | None:
        return next((entry for entry in self.images if entry.role == role), None)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "images": [entry.to_json() for entry in self.images],
            "flash_settings": self.flash_settings.to_json(),
            "esptool_args": self.esptool_args.to_json(),
        }

    @classmethod
    def from_json(cls, data: object, *, source: Path) -> BuiltImages:
        data = schema_checked(data, SCHEMA, what="a list of built images", source=source, fix=_FIX)
        try:
            return cls(
                images=tuple(
                    ImageEntry.from_json(_entry(entry)) for entry in field(data, "images", list)
                ),
                flash_settings=FlashSettings.from_json(mapping(data, "flash_settings")),
                esptool_args=EsptoolArgs.from_json(mapping(data, "esptool_args")),
            )
        except ShapeError as problem:
            raise ToolError(
                f"{source}: not a valid list of built images ({problem}); {_FIX}"
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """build/<app>/checked.json: the build's checks passed; what the app's code does."""

    code: AppCode | None = None
    schema: int = SCHEMA

    def to_json(self) -> dict[str, object]:
        return {"schema": self.schema, "code": None if self.code is None else self.code.to_json()}

    @classmethod
    def from_json(cls, data: object, *, source: Path) -> Checked:
        data = schema_checked(data, SCHEMA, what="a build's checks", source=source, fix=_FIX)
        try:
            return cls(code=_code(data.get("code")))
        except ShapeError as problem:
            raise ToolError(f"{source}: not a valid record of checks ({problem}); {_FIX}") from None


def read_built(path: Path) -> BuiltImages:
    return BuiltImages.from_json(read_json(path, fix=_FIX), source=path)


def write_built(path: Path, built: BuiltImages) -> bool:
    return write_if_changed(path, json.dumps(built.to_json(), indent=2) + "\n")


def read_checked(path: Path) -> Checked:
    return Checked.from_json(read_json(path, fix=_FIX), source=path)


def write_checked(path: Path, checked: Checked) -> bool:
    return write_if_changed(path, json.dumps(checked.to_json(), indent=2) + "\n")
