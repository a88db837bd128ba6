"""releases/<app>/<version>/release.json: one release's facts and files, with one typed owner.

The plain image is `<app>.bin` (exactly the bytes boards run: the signed image under ota.sign);
`<app>-encrypted.bin` is what is served under ota.encrypt; `<app>-from-<base>.patch` are the
esp_delta_ota patches from earlier releases. No private key is ever written here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..files import ShapeError, field, read_json, schema_checked
from . import ReleaseError

__all__ = ["RECORD", "SCHEMA", "FileEntry", "Patch", "Release", "ReleaseError", "read", "to_text"]

SCHEMA = 1
RECORD = "release.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """A file of the release folder, with its size and SHA-256."""

    file: str  # its name in the release folder
    size: int
    sha256: str

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        return cls(
            file=field(data, "file", str),
            size=field(data, "size", int),
            sha256=field(data, "sha256", str),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Patch:
    """An esp_delta_ota patch from an earlier release to this one."""

    from_version: str
    from_sha256: str  # the base release's image SHA-256 (its <app>.bin)
    entry: FileEntry

    def to_json(self) -> dict[str, object]:
        return {
            "from_version": self.from_version,
            "from_sha256": self.from_sha256,
            **self.entry.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Patch:
        return cls(
            from_version=field(data, "from_version", str),
            from_sha256=field(data, "from_sha256", str),
            entry=FileEntry.from_json(data),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """What one `doit release` recorded."""

    app: str
    version: str
    secure_version: int
    project_name: str  # esp_app_desc_t.project_name
    sha256: str  # of the plain image, as boards run it
    size: int
    idf_version: str
    target: str
    signing_key_digest: str | None  # SHA-256 of the public key (espsecure digest-sbv2-public-key)
    time: str  # UTC, ISO 8601
    git_commit: str | None
    image: FileEntry | None  # None: the plain image embeds the decryption key, so it stays out
    encrypted: FileEntry | None = None
    patches: tuple[Patch, ...] = ()  # latest base first
    schema: int = SCHEMA

    @property
    def served(self) -> FileEntry:
        """The file served at the URL path: the encrypted image in place of the plain one."""
        entry = self.encrypted or self.image
        if entry is None:
            raise ReleaseError(f"{self.app} {self.version}: its release holds no image")
        return entry

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "app": self.app,
            "version": self.version,
            "secure_version": self.secure_version,
            "project_name": self.project_name,
            "sha256": self.sha256,
            "size": self.size,
            "idf_version": self.idf_version,
            "target": self.target,
            "signing_key_digest": self.signing_key_digest,
            "time": self.time,
            "git_commit": self.git_commit,
            "image": None if self.image is None else self.image.to_json(),
            "encrypted": None if self.encrypted is None else self.encrypted.to_json(),
            "patches": [patch.to_json() for patch in self.patches],
        }

    @classmethod
    def from_json(cls, data: object, *, source: Path) -> Release:
        fix = "it was not written by this tool's `doit release`; restore it from version control"
        data = schema_checked(data, SCHEMA, what="a release record", source=source, fix=fix)
        try:
            image, encrypted = data.get("image"), data.get("encrypted")
            return cls(
                app=field(data, "app", str),
                version=field(data, "version", str),
                secure_version=field(data, "secure_version", int),
                project_name=field(data, "project_name", str),
                sha256=field(data, "sha256", str),
                size=field(data, "size", int),
                idf_version=field(data, "idf_version", str),
                target=field(data, "target", str),
                signing_key_digest=field(data, "signing_key_digest", str, type(None)),
                time=field(data, "time", str),
                git_commit=field(data, "git_commit", str, type(None)),
                image=FileEntry.from_json(image) if isinstance(image, dict) else None,
                encrypted=FileEntry.from_json(encrypted) if isinstance(encrypted, dict) else None,
                patches=tuple(Patch.from_json(p) for p in field(data, "patches", list)),
            )
        except (ShapeError, AttributeError) as problem:
            raise ToolError(f"{source}: not a valid release record ({problem}); {fix}") from None


def to_text(release: Release) -> str:
    return json.dumps(release.to_json(), indent=2) + "\n"


def read(folder: Path) -> Release:
    """The release recorded in `folder` (releases/<app>/<version>/).

    Raises:
        ReleaseError: it is missing or unreadable, in one line saying what to run.
    """
    path = folder / RECORD
    if not path.is_file():
        raise ReleaseError(f"{path}: missing; run `doit release`")
    try:
        return Release.from_json(read_json(path, fix="run `doit release`"), source=path)
    except ToolError as error:
        raise ReleaseError(str(error)) from None
