"""esp_encrypted_img's pre-encrypted image format (idf-extra-components, esp_encrypted_img v2,
as its esp_enc_img_gen.py writes and reads it), RSA-3072 scheme, made with `cryptography`.

A 512-byte header: magic 0x0788b6cf (little-endian), the AES-256-GCM key wrapped with RSA-3072
PKCS#1 v1.5 (384 bytes), the 16-byte IV, the image length (4 bytes LE), the 16-byte GCM tag and
zeros; then the ciphertext. The board decrypts while it writes (esp_https_ota's decrypt_cb).
"""

from __future__ import annotations

import os
import struct

from ..errors import ProjectError

__all__ = [
    "HEADER_SIZE",
    "KEY_MODE",
    "MAGIC",
    "EncryptedImageError",
    "decrypt",
    "encrypt",
    "new_key",
    "public_key",
]

MAGIC = 0x0788B6CF
HEADER_SIZE = 512
KEY_MODE = 0o600
_WRAPPED_KEY, _IV, _TAG = 384, 16, 16
_HEADER = struct.Struct(f"<I{_WRAPPED_KEY}s{_IV}sI{_TAG}s")
_RESERVED = HEADER_SIZE - _HEADER.size


class EncryptedImageError(ProjectError):
    """An encryption key is unusable, or a board would refuse the encrypted image."""


def new_key() -> bytes:
    """A new RSA-3072 private key (PEM, PKCS#8), as esp_enc_img_gen.py --generate_rsa_key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _private(pem: bytes, name: str) -> object:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise EncryptedImageError(f"{name}: not a PEM private key without a password") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != 3072:
        raise EncryptedImageError(f"{name}: not an RSA-3072 key (ota.encrypt: rsa3072)")
    return key


def public_key(private_pem: bytes, name: str = "encryption key") -> bytes:
    """The PEM public key of an RSA-3072 private key (what encrypting needs)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = _private(private_pem, name)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def encrypt(image: bytes, public_pem: bytes) -> bytes:
    """The pre-encrypted image: a fresh AES-256-GCM key and IV for every call."""
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    public = load_pem_public_key(public_pem)
    assert isinstance(public, rsa.RSAPublicKey)
    gcm_key, iv = os.urandom(32), os.urandom(_IV)
    sealed = AESGCM(gcm_key).encrypt(iv, image, None)
    ciphertext, tag = sealed[: len(image)], sealed[len(image) :]
    wrapped = public.encrypt(gcm_key, padding.PKCS1v15())
    head = _HEADER.pack(MAGIC, wrapped, iv, len(image), tag) + bytes(_RESERVED)
    return head + ciphertext


def decrypt(data: bytes, private_pem: bytes) -> bytes:
    """The image back, as esp_encrypted_img's decryption checks it (magic, key, GCM tag).

    Raises:
        EncryptedImageError: in the component's words.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(data) < 4 or int.from_bytes(data[:4], "little") != MAGIC:
        raise EncryptedImageError("Magic Verification failed")
    if len(data) < HEADER_SIZE:
        raise EncryptedImageError("the encrypted image's 512-byte header is incomplete")
    _, wrapped, iv, length, tag = _HEADER.unpack_from(data)
    key = _private(private_pem, "the decryption key")
    assert isinstance(key, rsa.RSAPrivateKey)
    try:
        gcm_key = key.decrypt(wrapped, padding.PKCS1v15())
    except ValueError:
        raise EncryptedImageError(
            "mbedtls_pk_decrypt failed: the key is not this image's"
        ) from None
    ciphertext = data[HEADER_SIZE : HEADER_SIZE + length]
    if len(ciphertext) != length or len(gcm_key) != 32:
        raise EncryptedImageError("Invalid Auth (the image is shorter than its header says)")
    try:
        return AESGCM(gcm_key).decrypt(iv, ciphertext + tag, None)
    except InvalidTag:
        raise EncryptedImageError("Invalid Auth Tag (GCM): the image was changed") from None
