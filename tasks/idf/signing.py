"""Signed apps without hardware secure boot: the project's signing key and Secure Boot V2
signature blocks, made and checked with esptool's espsecure (v5.6 API).

ESP-IDF v5.3.2 (bootloader Kconfig, secure_boot_signatures_app.c): with
CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT an OTA image is accepted only when one of its
signature blocks carries a key that signs the running app, and its signature verifies.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ProjectError

__all__ = [
    "DIR_MODE",
    "KEY_MODE",
    "SECTOR",
    "SignatureError",
    "check_update",
    "has_signature",
    "key_scheme",
    "new_key",
    "padded",
    "public_key_digest",
    "sign",
    "sign_with_signature",
    "signed_public_key",
    "verify",
]

SECTOR = 0x1000  # the signature sector follows the image, padded to a 4 KiB boundary
_BLOCK = struct.Struct("<BBxx32s")  # magic 0xE7, version (2 RSA, 3 ECDSA), pad, image digest
_RSA_VERSION, _ECDSA_VERSION = 0x02, 0x03
DIR_MODE, KEY_MODE = 0o700, 0o600  # keys/ and the key file


class SignatureError(ProjectError):
    """An image is unsigned, or its signature does not verify with the key."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """espsecure prints through esptool's logger; keep its chatter out of our output."""
    from .esptool_log import Progress, quiet_esptool

    with quiet_esptool(Progress()):
        yield


def _named(data: bytes, name: str) -> io.BytesIO:
    """In-memory bytes espsecure can take for a file (it names its files in messages)."""
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def new_key(scheme: str, path: Path) -> None:
    """espsecure generate-signing-key --version 2 --scheme <scheme>, written 0600 atomically."""
    import espsecure

    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if not path.parent.is_symlink():  # a linked keys/ is the user's folder: never chmod it
        os.chmod(path.parent, DIR_MODE)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        os.chmod(scratch, DIR_MODE)
        made = Path(scratch) / path.name
        with _quiet():
            espsecure.generate_signing_key("2", scheme, str(made))
        os.chmod(made, KEY_MODE)
        os.link(made, path)  # fails rather than replace a key that appeared meanwhile


def key_scheme(key: object) -> str:
    """The espsecure scheme of a loaded private or public key (rsa3072, ecdsa256, ecdsa384,
    ...), or how ESP-IDF would name what else it is (RSA-2048, Ed25519)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"rsa{key.key_size}" if key.key_size == 3072 else f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        bits = {"secp192r1": 192, "secp256r1": 256, "secp384r1": 384}.get(key.curve.name)
        return f"ecdsa{bits}" if bits else f"ECDSA {key.curve.name}"
    return type(key).__name__.removesuffix("PrivateKey").removesuffix("PublicKey").lstrip("_")


def public_key_digest(public_pem: bytes) -> str:
    """SHA-256 of the public key in signature-block form, as `espsecure digest-sbv2-public-key`
    computes it (the digest a board's eFuse or its running app trusts), in hex."""
    import espsecure

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "digest.bin"
        with _quiet():
            espsecure.digest_sbv2_public_key(_named(public_pem, "public_key.pem"), str(out))
        return out.read_bytes().hex()


def padded(image: bytes) -> bytes:
    """The image padded with 0xFF to the 4 KiB boundary where espsecure puts the signature
    sector: the bytes a Secure Boot V2 signature covers."""
    return image + b"\xff" * (-len(image) % SECTOR)


def sign_with_signature(public_pem: bytes, signature: bytes, image: bytes) -> bytes:
    """espsecure sign-data --version 2 --pub-key --signature: the signature block from a
    signature made elsewhere (an HSM, a signing service) over `padded(image)`; espsecure checks
    the signature against the public key first.

    Raises:
        SignatureError: the signature is not one of `padded(image)` by that key.
    """
    import espsecure
    from esptool.util import FatalError

    with tempfile.TemporaryDirectory() as scratch:
        signed = Path(scratch) / "signed.bin"
        try:
            with _quiet():
                espsecure.sign_data(
                    "2",
                    [],
                    str(signed),
                    False,
                    False,
                    None,
                    [_named(public_pem, "public_key.pem")],
                    [_named(signature, "signature.bin")],
                    _named(padded(image), "unsigned.bin"),
                )
        except (FatalError, ValueError, TypeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SignatureError(
                f"the signature does not fit the image and key ({reason})"
            ) from None
        return signed.read_bytes()


def sign(key: Path | bytes, image: bytes) -> bytes:
    """espsecure sign-data --version 2: the image padded to 4 KiB plus one signature sector.
    `key` is an unencrypted PEM private key, as a file or (a decrypted key) in memory only."""
    import espsecure

    pem = key.read_bytes() if isinstance(key, Path) else key
    with tempfile.TemporaryDirectory() as scratch:
        signed = Path(scratch) / "signed.bin"
        with _quiet():
            espsecure.sign_data(
                "2",
                [_named(pem, "signing_key.pem")],
                str(signed),
                False,
                False,
                None,
                [],
                [],
                _named(image, "unsigned.bin"),
            )
        return signed.read_bytes()


def verify(data: bytes, key: bytes, name: str) -> None:
    """espsecure verify-signature --version 2 with `key` (a PEM private or public key).

    Raises:
        SignatureError: naming the image and why.
    """
    import espsecure
    from esptool.util import FatalError

    if not has_signature(data):
        raise SignatureError(f"{name}: no Secure Boot V2 signature block (the image is unsigned)")
    try:
        with _quiet():
            espsecure.verify_signature("2", False, None, io.BytesIO(key), io.BytesIO(data))
    except (FatalError, AssertionError, ValueError, struct.error) as error:
        # espsecure asserts on a block of the other scheme: that is "another key" too.
        reason = str(error) or "the signature block is for another key type"
        raise SignatureError(f"{name}: signature does not verify with the key ({reason})") from None


def _sector(data: bytes) -> bytes | None:
    """The signature sector at the end of a signed image, when there is one."""
    if len(data) < 2 * SECTOR or len(data) % SECTOR:
        return None
    sector = data[-SECTOR:]
    magic, version, _ = _BLOCK.unpack_from(sector)
    return sector if magic == 0xE7 and version in (_RSA_VERSION, _ECDSA_VERSION) else None


def has_signature(data: bytes) -> bool:
    return _sector(data) is not None


def signed_public_key(data: bytes) -> bytes | None:
    """The public key (PEM) in the first signature block of a signed image: the key the
    running app trusts (Take trusted digest key(s) from running app)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    sector = _sector(data)
    if sector is None:
        return None
    version = sector[1]
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    if version == _RSA_VERSION:  # key.n (384 bytes, little-endian), key.e
        modulus = int.from_bytes(sector[36 : 36 + 384], "little")
        exponent = int.from_bytes(sector[420:424], "little")
        key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    else:  # curve id, then x and y little-endian (micro-ecc's native format)
        x = int.from_bytes(sector[37:69], "little")
        y = int.from_bytes(sector[69:101], "little")
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _block_intact(data: bytes) -> bool:
    import espsecure

    with _quiet():
        return espsecure.validate_signature_block(data, 0) is not None


def check_update(new: bytes, running: bytes, name: str) -> None:
    """The OTA rule of CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT: take the trusted key from
    the running app's signature block, and verify the new image with it (esp_image_format.c).

    Raises:
        SignatureError: in ESP-IDF's words, with the reason.
    """
    trusted = signed_public_key(running)
    if trusted is None:
        raise SignatureError("No signatures were found for the running app")
    try:
        verify(new, trusted, name)
    except SignatureError as error:
        other = has_signature(new) and _block_intact(new) and signed_public_key(new) != trusted
        reason = (
            "signed with a key the running app does not trust"
            if other
            else "image valid, signature bad"
            if has_signature(new)
            else "the image carries no signature"
        )
        raise SignatureError(
            f"{name}: Secure boot signature verification failed ({reason}): {error}"
        ) from None
