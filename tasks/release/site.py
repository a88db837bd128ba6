"""Which URL path serves which file of a release, with its MIME type: the one list that the
built-in server and nginx (serve and publish) both serve, and nothing else.

At the OTA URL path: the image (the encrypted one under ota.encrypt); `<path>.sha256`: its
SHA-256 in sha256sum's format; `<path>.patch`: the esp_delta_ota patch from the previous release;
`<folder>/<app>-from-<version>.patch`: every patch; /manifest.json lists them all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import ReleaseError

if TYPE_CHECKING:
    from .release_record import Release

__all__ = ["MANIFEST_PATH", "OCTETS", "Served", "files"]

MANIFEST_PATH = "/manifest.json"
OCTETS = "application/octet-stream"
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    """One URL path, what it answers with, and its Content-Type."""

    url_path: str
    body: bytes
    mime: str


def _read(folder: Path, name: str, sha256: str) -> bytes:
    path = folder / name
    try:
        data = path.read_bytes()
    except OSError:
        raise ReleaseError(
            f"{path}: missing from its release; restore releases/ from where it "
            "is kept (version control or CI storage)"
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ReleaseError(
            f"{path}: its SHA-256 is not the one release.json records; a release "
            "never changes: restore it from where releases/ is kept"
        )
    return data


def files(
    release: Release, folder: Path, *, url_path: str, project: str, chip_family: str
) -> list[Served]:
    """Every file served for `release` (recorded in `folder`), each checked against its record.

    Raises:
        ReleaseError: a file is missing or changed since it was released.
    """
    served = release.served
    image = _read(folder, served.file, served.sha256)
    name = url_path.rsplit("/", 1)[-1]
    base = url_path.rsplit("/", 1)[0]
    listed: list[Served] = [
        Served(url_path=url_path, body=image, mime=OCTETS),
        Served(
            url_path=f"{url_path}.sha256", body=f"{served.sha256}  {name}\n".encode(), mime=_TEXT
        ),
    ]
    patches = []
    for index, patch in enumerate(release.patches):
        body = _read(folder, patch.entry.file, patch.entry.sha256)
        path = f"{base}/{patch.entry.file}"
        listed.append(Served(url_path=path, body=body, mime=OCTETS))
        if index == 0:  # the previous release, which most boards run
            listed.append(Served(url_path=f"{url_path}.patch", body=body, mime=OCTETS))
        patches.append(
            {
                "from_version": patch.from_version,
                "from_sha256": patch.from_sha256,
                "path": path.lstrip("/"),
                "size": patch.entry.size,
                "sha256": patch.entry.sha256,
            }
        )
    ota: dict[str, object] = {
        # Relative to /manifest.json, as ESPHome's update component resolves it.
        "path": url_path.lstrip("/"),
        "sha256": served.sha256,
        "md5": hashlib.md5(image).hexdigest(),
        "size": served.size,
        "secure_version": release.secure_version,
    }
    if release.encrypted is not None:
        ota.update(encrypted="esp_encrypted_img", image_sha256=release.sha256)
    if patches:
        ota["patches"] = patches
    manifest = {
        "name": project,
        "version": release.version,
        "builds": [{"chipFamily": chip_family, "ota": ota}],
    }
    body = (json.dumps(manifest, indent=2) + "\n").encode()
    return [*listed, Served(url_path=MANIFEST_PATH, body=body, mime=_JSON)]
