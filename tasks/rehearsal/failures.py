"""What `doit rehearse --fail MODE` serves: the built image tampered with as each mode asks, and
the certificate for another host. Each mode says what a real board would meet in the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from ..errors import ProjectError
from ..firmware.signing_key import SigningKey
from ..idf import esp_image, signing
from ..paths import cert_files
from ..tls import certs

__all__ = [
    "FAILURES",
    "NEEDS",
    "RehearsalError",
    "newer_revision",
    "served_bytes",
    "server_certs",
]

FAILURES: dict[str, str] = {
    "none": "the update succeeds and the board boots it",
    "cut": "the download stops halfway",
    "chip": "the served image is for another chip",
    "corrupt": "one byte of the served image is flipped",
    "host": "the server's certificate is for another host",
    "same-version": (
        "the served version is the one running (an app whose code compares versions refuses "
        "it; one that does not installs it again)"
    ),
    "bad-signature": "one byte of the served image's signature is flipped (ota.sign)",
    "wrong-key": "the served image is signed with another key (ota.sign)",
    "no-confirm": "the new app resets before it confirms itself (ota.rollback)",
    "downgrade": "the served image has a lower secure_version (apps.<name>.secure_version)",
    "delta-base": "with --delta: the board runs another image than the patch's base (ota.delta)",
    "chip-rev": "the build needs a newer chip revision than the board's (esptool refuses it)",
}
# What each failure needs in project.yaml: (RehearsalPlan attribute, the line to set).
NEEDS = {
    "bad-signature": ("signing", "ota.sign: rsa3072"),
    "wrong-key": ("signing", "ota.sign: rsa3072"),
    "no-confirm": ("rollback", "ota.rollback: true"),
    "downgrade": ("anti_rollback", "apps.<name>.secure_version: 1 (and ota.rollback: true)"),
    "delta-base": ("delta", "ota.delta: true"),
}
_WRONG_HOST = "wrong-host.invalid"


class RehearsalError(ProjectError):
    """The virtual board did not end where the story says it must."""


def served_bytes(
    data: bytes,
    failure: str,
    *,
    target: str,
    scratch: Path,
    signer: SigningKey | None,
    running_secure_version: int,
) -> bytes:
    """The image the server hands out, tampered with as `failure` asks (scratch: a folder for
    the wrong key)."""
    tampered = bytearray(data)
    if failure == "chip":
        other = next(t for t in ("esp32c3", "esp32") if t != target)
        tampered[12:14] = esp_image.chip_id(other).to_bytes(2, "little")
    elif failure == "corrupt":
        tampered[len(tampered) // 2] ^= 0xFF
    elif failure == "bad-signature":
        # A byte of the signature value itself (RSA: after the 776-byte key; ECDSA: after the
        # curve id and 64-byte point); the image stays intact.
        end = len(tampered) - signing.SECTOR
        tampered[end + (36 + 776 + 8 if tampered[end + 1] == 2 else 109)] ^= 0xFF
    elif failure == "wrong-key":
        assert signer is not None
        wrong = _wrong_key(signer.scheme, scratch)
        return signing.sign(wrong, _unsigned(target, data))
    elif failure == "downgrade":
        return _downgraded(target, data, running_secure_version, signer)
    return bytes(tampered)


def _unsigned(target: str, data: bytes) -> bytes:
    """The image as espsecure signed it (the build's image padded to 4 KiB): the signature sector
    cut off. Not re-saved through esptool, whose save() cannot lay out a loaded image's segments
    again on every chip (esp32c6, esp32h2)."""
    return data[: -signing.SECTOR] if signing.has_signature(data) else data


def _wrong_key(scheme: str, scratch: Path) -> Path:
    """A signing key of the same scheme that is not the project's: made fresh each time."""
    key = scratch / "wrong-key" / "signing_key.pem"
    key.unlink(missing_ok=True)
    signing.new_key(scheme, key)
    return key


_DESC_OFFSET = 24 + 8  # image header + first segment header: esp_app_desc_t starts here
_DESC_MAGIC = 0xABCD5432


def _remade(
    target: str, data: bytes, edit: Callable[[bytearray], None], key: SigningKey | None
) -> bytes:
    """The image as a build that differs by `edit` makes it: the bytes up to the checksum edited
    in place, the appended SHA-256 made again and the image signed again by `key` (padded to
    4 KiB first, as espsecure signs it). Read through esptool's image classes, never re-saved by
    them: their save() cannot lay a loaded image's segments out again on every chip."""
    from esptool.bin_image import LoadFirmwareImage

    image = LoadFirmwareImage(target, data)
    body = bytearray(data[: image.data_length])  # up to the checksum; digest and signature go
    edit(body)
    if image.append_digest:
        body += hashlib.sha256(body).digest()
    if key is None:
        return bytes(body)
    return key.sign(signing.padded(bytes(body)))


def _downgraded(target: str, data: bytes, running: int, key: SigningKey | None) -> bytes:
    """The served image with secure_version one below the flashed app's (an old, properly
    signed release): esp_app_desc_t.secure_version patched and the image checksum kept right."""
    if running < 1:
        raise RehearsalError(
            "--fail downgrade needs a flashed app with secure_version 1 or more, so that a "
            "lower one exists; raise apps.<flash_app>.secure_version"
        )

    def edit(body: bytearray) -> None:
        magic = int.from_bytes(body[_DESC_OFFSET : _DESC_OFFSET + 4], "little")
        if magic != _DESC_MAGIC:
            raise RehearsalError(f"the served image has no esp_app_desc_t (magic {magic:#x})")
        where = slice(_DESC_OFFSET + 4, _DESC_OFFSET + 8)  # esp_app_desc_t.secure_version
        old, new = bytes(body[where]), (running - 1).to_bytes(4, "little")
        body[where] = new
        for byte in old + new:  # the checksum XORs every segment byte: swap old for new
            body[-1] ^= byte

    return _remade(target, data, edit, key)


def newer_revision(data: bytes, target: str, revision: int, key: SigningKey | None) -> bytes:
    """The image as a build with CONFIG_ESP_REV_MIN_FULL = `revision` makes it (elf2image's
    --min-rev-full in the extended header; the header is outside the checksum, inside the
    SHA-256), signed again by `key` where the project signs; its maximum stays."""

    def edit(body: bytearray) -> None:
        body[14] = revision % 100 if target == "esp32c3" else revision // 100  # legacy min_rev
        body[15:17] = revision.to_bytes(2, "little")  # min_chip_rev_full

    return _remade(target, data, edit, key)


def server_certs(cert_plan: certs.CertPlan, failure: str, scratch: Path) -> tuple[Path, Path]:
    """The server's cert and key: the project's, or (host) one the same CA signed for a host
    the URL does not name."""
    where = cert_files(cert_plan.certs_dir)
    if failure != "host":
        return where.server_cert, where.server_key
    other = certs.plan(
        project=cert_plan.project,
        host=_WRONG_HOST,
        key=cert_plan.key,
        days=cert_plan.days,
        certs_dir=scratch / "wrong-host-certs",
        env={"OTA_CA_CERT": str(where.ca_cert), "OTA_CA_KEY": str(where.ca_key)},
    )
    certs.issue(other)
    wrong = cert_files(other.certs_dir)
    return wrong.server_cert, wrong.server_key
