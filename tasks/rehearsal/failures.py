"""What `doit rehearse --fail MODE` serves: the built image tampered with as each mode asks, and
the certificate for another host. Each mode says what a real board would meet in the field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ProjectError
from ..idf import images, signing
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
        "the served version is the one running (advanced_https_ota refuses it; "
        "simple_ota_example installs it again)"
    ),
    "bad-signature": "one byte of the served image's signature is flipped (ota.sign)",
    "wrong-key": "the served image is signed with another key (ota.sign)",
    "no-confirm": "the new app resets before it confirms itself (ota.rollback)",
    "downgrade": "the served image has a lower secure_version (apps.<name>.secure_version)",
    "chip-rev": "the build needs a newer chip revision than the board's (esptool refuses it)",
}
# What each failure needs in project.yaml: (RehearsalPlan attribute, the line to set).
NEEDS = {
    "bad-signature": ("signing", "ota.sign: rsa3072"),
    "wrong-key": ("signing", "ota.sign: rsa3072"),
    "no-confirm": ("rollback", "ota.rollback: true"),
    "downgrade": ("anti_rollback", "apps.<name>.secure_version: 1 (and ota.rollback: true)"),
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
    signing_key: Path | None,
    running_secure_version: int,
) -> bytes:
    """The image the server hands out, tampered with as `failure` asks (scratch: a folder for
    the wrong key)."""
    tampered = bytearray(data)
    if failure == "chip":
        other = next(t for t in ("esp32c3", "esp32") if t != target)
        tampered[12:14] = images.chip_id(other).to_bytes(2, "little")
    elif failure == "corrupt":
        tampered[len(tampered) // 2] ^= 0xFF
    elif failure == "bad-signature":
        # A byte of the signature value itself (RSA: after the 776-byte key; ECDSA: after the
        # curve id and 64-byte point); the image stays intact.
        end = len(tampered) - signing.SECTOR
        tampered[end + (36 + 776 + 8 if tampered[end + 1] == 2 else 109)] ^= 0xFF
    elif failure == "wrong-key":
        assert signing_key is not None
        wrong = _wrong_key(signing.key_scheme(signing_key), scratch)
        return signing.sign(wrong, _unsigned(target, data))
    elif failure == "downgrade":
        return _downgraded(target, data, running_secure_version, signing_key)
    return bytes(tampered)


def _unsigned(target: str, data: bytes) -> bytes:
    """The image as the build made it: checksum and hash recomputed by esptool, no signature."""
    from esptool.bin_image import LoadFirmwareImage

    return bytes(LoadFirmwareImage(target, data).save(None))


def _wrong_key(scheme: str, scratch: Path) -> Path:
    """A signing key of the same scheme that is not the project's: made fresh each time."""
    key = scratch / "wrong-key" / "signing_key.pem"
    key.unlink(missing_ok=True)
    signing.new_key(scheme, key)
    return key


def _downgraded(target: str, data: bytes, running: int, key: Path | None) -> bytes:
    """The served image rebuilt with secure_version one below the flashed app's (an old,
    properly signed release), through esptool's image classes."""
    from esptool.bin_image import LoadFirmwareImage

    if running < 1:
        raise RehearsalError(
            "--fail downgrade needs a flashed app with secure_version 1 or more, so that a "
            "lower one exists; raise apps.<flash_app>.secure_version"
        )
    image = LoadFirmwareImage(target, data)
    desc = bytearray(image.segments[0].data)
    desc[4:8] = (running - 1).to_bytes(4, "little")  # esp_app_desc_t.secure_version
    image.segments[0].data = bytes(desc)
    unsigned = bytes(image.save(None))
    return signing.sign(key, unsigned) if key is not None else unsigned


def newer_revision(data: bytes, target: str, revision: int, key: Path | None) -> bytes:
    """The image as a build with CONFIG_ESP_REV_MIN_FULL = `revision` makes it (elf2image's
    --min-rev-full in the extended header, the appended SHA-256 recomputed), re-signed when
    `key` signs it; its maximum stays."""
    image = bytearray(_unsigned(target, data) if key is not None else data)
    image[14] = revision % 100 if target == "esp32c3" else revision // 100  # the legacy min_rev
    image[15:17] = revision.to_bytes(2, "little")  # min_chip_rev_full
    if image[23] == 1:  # hash_appended
        image[-32:] = hashlib.sha256(image[:-32]).digest()
    return signing.sign(key, bytes(image)) if key is not None else bytes(image)


def server_certs(cert_plan: certs.CertPlan, failure: str, scratch: Path) -> tuple[Path, Path]:
    """The server's cert and key: the project's, or (host) one the same CA signed for a host
    the URL does not name."""
    where = certs.paths(cert_plan.certs_dir)
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
    wrong = certs.paths(other.certs_dir)
    return wrong.server_cert, wrong.server_key
