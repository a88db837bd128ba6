"""What the virtual board does with a release's delta and encrypted images: esp_delta_ota's
patch checks and rebuild from the running slot (its https_delta_ota example), and
esp_encrypted_img's decryption as esp_https_ota's decrypt_cb feeds it (pre_encrypted_ota).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from ..idf import delta_ota, encrypted_img, esp_image
from ..idf.partition.rules import Partition
from . import virtual_device
from .virtual_device import BootConfig, Booted, Flash, OtaClient, OtaError, VirtualEfuse

__all__ = ["decryptor", "delta_update", "patch_url", "tampered_ciphertext"]


def patch_url(url: str) -> str:
    """Where a delta client fetches the patch from the previous release."""
    return f"{url}.patch"


def decryptor(key: Path, log: Callable[[str], None]) -> Callable[[bytes], bytes]:
    """esp_encrypted_img with the private key the OTA client app embeds."""
    private = key.read_bytes()

    def decrypt(data: bytes) -> bytes:
        try:
            image = encrypted_img.decrypt(data, private)
        except encrypted_img.EncryptedImageError as error:
            raise OtaError(f"esp_encrypted_img: {error}") from None
        log(f"ota: esp_encrypted_img: Magic Verified; {len(image)} bytes decrypted, GCM tag valid")
        return image

    return decrypt


def tampered_ciphertext(data: bytes) -> bytes:
    """An encrypted image with one byte of its ciphertext flipped (its GCM tag then fails)."""
    flipped = bytearray(data)
    flipped[encrypted_img.HEADER_SIZE + (len(data) - encrypted_img.HEADER_SIZE) // 2] ^= 0xFF
    return bytes(flipped)


def _running_hash(flash: Flash, booted: Booted, target: str) -> bytes:
    """esp_partition_get_sha256 of the running app partition: its image's appended SHA-256."""
    running = flash.read(booted.partition.offset, booted.app.size)
    try:
        return delta_ota.base_hash(running, target, name=booted.partition.name)
    except (delta_ota.DeltaError, esp_image.ImageError) as error:
        raise OtaError(str(error)) from None


def delta_update(
    flash: Flash,
    booted: Booted,
    client: OtaClient,
    log: Callable[[str], None],
    config: BootConfig,
    efuse: VirtualEfuse,
) -> tuple[Partition, int]:
    """Download the patch, check it as esp_delta_ota's example does (header magic, the base
    SHA-256 against the running partition's), rebuild the new image from the running slot into
    the passive one (chip id, esp_ota_end's verification) and boot it next. Returns the slot
    written and the bytes downloaded."""
    log(f"ota: delta OTA from {client.url}")
    patch = virtual_device.download(dataclasses.replace(client, partial=False), log)
    log(f"ota: bytes on the air: {len(patch)} (the patch)")
    try:
        wanted = delta_ota.header_base_hash(patch)
    except delta_ota.DeltaError as error:
        raise OtaError(f"Patch Header verification failed: {error}") from None
    running = _running_hash(flash, booted, client.target)
    if running != wanted:
        raise OtaError(
            "SHA256 of current firmware differs from than in patch header. Invalid patch for "
            f"current firmware (running {running.hex()[:16]}…, patch for {wanted.hex()[:16]}…)"
        )
    log(
        f"ota: patch header: base SHA-256 {wanted.hex()[:16]}… is the running app's "
        f"({booted.partition.name})"
    )
    base = flash.read(booted.partition.offset, booted.partition.size)
    try:
        image = delta_ota.apply_body(base, patch[delta_ota.HEADER_SIZE :])
    except delta_ota.DeltaError as error:
        raise OtaError(str(error)) from None
    log(f"ota: esp_delta_ota rebuilt {len(image)} bytes from {booted.partition.name}")
    slot = virtual_device.install(flash, booted, image, client, log, config, efuse)
    return slot, len(patch)
