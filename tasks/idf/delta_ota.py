"""esp_delta_ota's patch format (idf-extra-components, esp_delta_ota v1.1 and its example's
esp_delta_ota_patch_gen.py): a 64-byte header, then a detools sequential patch.

Header: magic 0xfccdde10 (little-endian), the base image's appended SHA-256 (the "Validation
Hash" esptool image-info prints, which esp_partition_get_sha256 returns for the running app), 28
zero bytes. The patch is made by detools (bsdiff, heatshrink window 8, lookahead 7), exactly as
Espressif's tool makes it, so the board's detools decoder takes it.
"""

from __future__ import annotations

import io
import struct

from ..errors import ProjectError
from . import esp_image

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "DeltaError",
    "apply_body",
    "base_hash",
    "create",
    "create_body",
    "header",
    "header_base_hash",
]

MAGIC = 0xFCCDDE10
HEADER_SIZE = 64
_DIGEST_SIZE = 32
_HEADER = struct.Struct(f"<I{_DIGEST_SIZE}s{HEADER_SIZE - 4 - _DIGEST_SIZE}x")
# The heatshrink parameters esp_delta_ota's decoder is built with (detools' defaults too).
_WINDOW_SZ2, _LOOKAHEAD_SZ2 = 8, 7


class DeltaError(ProjectError):
    """A patch cannot be made from this base, or a board would refuse it."""


def base_hash(image: bytes, target: str, *, name: str) -> bytes:
    """The base image's appended SHA-256, checked as esptool image-info checks it ("valid").

    Raises:
        DeltaError: the image has no appended hash (esp_delta_ota could not check its base), or
            the hash does not match the image.
    """
    parsed = esp_image.parse(image, target, name=name)
    if not getattr(parsed, "append_digest", False):
        raise DeltaError(
            f"{name} has no appended SHA-256 (esptool image-info shows no Validation Hash), so "
            "esp_delta_ota cannot check a board runs it; it cannot be a delta base"
        )
    if parsed.stored_digest != parsed.calc_digest:
        raise DeltaError(f"{name}: its appended SHA-256 is not the image's; it is corrupt")
    digest: bytes = parsed.stored_digest
    return digest


def header(base_sha256: bytes) -> bytes:
    """The 64-byte esp_delta_ota header for a base with this appended SHA-256."""
    return _HEADER.pack(MAGIC, base_sha256)


def header_base_hash(patch: bytes) -> bytes:
    """The base SHA-256 a patch is for, after the magic check the board makes first.

    Raises:
        DeltaError: in the example's words when the header is short or the magic is wrong.
    """
    if len(patch) < HEADER_SIZE:
        raise DeltaError("Patch Header not received")
    magic, digest = _HEADER.unpack_from(patch)
    if magic != MAGIC:
        raise DeltaError("Invalid magic word in patch")
    found: bytes = digest
    return found


def create_body(base: bytes, new: bytes) -> bytes:
    """detools' sequential bsdiff patch of `base` into `new`, heatshrink-compressed."""
    import detools

    patch = io.BytesIO()
    detools.create_patch(
        io.BytesIO(base),
        io.BytesIO(new),
        patch,
        compression="heatshrink",
        patch_type="sequential",
        heatshrink_window_sz2=_WINDOW_SZ2,
        heatshrink_lookahead_sz2=_LOOKAHEAD_SZ2,
    )
    return patch.getvalue()


def create(base: bytes, new: bytes, target: str, *, base_name: str) -> bytes:
    """The whole patch file, as `esp_delta_ota_patch_gen.py create_patch` writes it.

    Raises:
        DeltaError: the base has no valid appended SHA-256.
    """
    return header(base_hash(base, target, name=base_name)) + create_body(base, new)


def apply_body(base: bytes, body: bytes) -> bytes:
    """What detools' decoder rebuilds from `base` (read as the running slot) and a patch body.

    Raises:
        DeltaError: detools refuses the patch.
    """
    import detools

    rebuilt = io.BytesIO()
    try:
        detools.apply_patch(io.BytesIO(base), io.BytesIO(body), rebuilt)
    except (detools.Error, ValueError, IndexError, EOFError) as error:
        raise DeltaError(f"Error while applying patch: {error}") from None
    return rebuilt.getvalue()
