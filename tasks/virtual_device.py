"""What runs on the virtual board: ESP-IDF's bootloader choosing and checking an app
(bootloader_utility.c, facts §3.5), and an OTA client that downloads the update as
esp_https_ota does for the factory app's built configuration (facts §1, §7.4).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from . import images, otadata, partitions
from .errors import ProjectError
from .partitions import Partition, PartitionTable

__all__ = ["Booted", "Flash", "OtaClient", "OtaError", "boot", "next_update_partition", "update"]

_HEADER = 1024  # esp_https_ota_get_img_desc reads this much of the first response


class OtaError(ProjectError):
    """The update stopped; the board keeps booting what it booted before."""


class Flash(Protocol):
    def read(self, offset: int, size: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Booted:
    table: PartitionTable
    partition: Partition
    app: images.AppImage


def _table(flash: Flash, table_offset: int) -> PartitionTable:
    return partitions.from_bin(
        flash.read(table_offset, partitions.MAX_TABLE_LENGTH), table_offset=table_offset
    )


def boot(flash: Flash, target: str, table_offset: int, log: Callable[[str], None]) -> Booted:
    """Pick the app as the bootloader does, verify it (magic, checksum, SHA-256, chip id) and
    fall back to the other app partitions when it does not load."""
    table = _table(flash, table_offset)
    data = flash.read(table.otadata.offset, table.otadata.size) if table.otadata else None
    chosen, why = otadata.boot_slot(table, data)
    log(f"boot: {why}")
    order = [chosen] if chosen else []
    order += [p for p in table.partitions if p.type == partitions.APP_TYPE and p not in order]
    for partition in order:
        if partition is None:
            continue
        try:
            app = images.read_app(
                flash.read(partition.offset, partition.size), target, name=partition.name
            )
        except images.ImageError as error:
            log(f"boot: {error}; trying the next app partition")
            continue
        log(f"boot: Loaded app from partition at offset {partition.offset:#x}")
        log(f"boot: app '{app.project_name}' version {app.version} ({partition.name})")
        return Booted(table=table, partition=partition, app=app)
    raise OtaError("No bootable app partitions in the partition table")


def next_update_partition(table: PartitionTable, running: Partition) -> Partition:
    """esp_ota_get_next_update_partition(NULL): the slot after the running one, else ota_0."""
    slots = list(table.ota_slots)
    if not slots:
        raise OtaError("Passive OTA partition not found")
    if running in slots:
        return slots[(slots.index(running) + 1) % len(slots)]
    return slots[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class OtaClient:
    """The running app's OTA settings, read from its built sdkconfig."""

    url: str
    ca_file: Path  # the CA the app embedded
    target: str
    partial: bool  # EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD: HEAD, then Range GETs
    request_size: int  # EXAMPLE_HTTP_REQUEST_SIZE
    check_version: bool  # advanced_https_ota refuses the version it runs
    address: tuple[str, int] | None = None  # where the URL's host:port is reached (rehearsal)
    stop_after: int | None = None  # the connection drops after this many bytes (rehearsal)


def _connection(client: OtaClient) -> tuple[object, str]:
    import http.client

    parts = urlsplit(client.url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=str(client.ca_file))  # hostname checked
    address = client.address or (host, port)

    class Connection(http.client.HTTPSConnection):
        def connect(self) -> None:
            import socket

            raw = socket.create_connection(address, timeout=10)
            self.sock = context.wrap_socket(raw, server_hostname=host)

    return Connection(host, port, context=context, timeout=10), parts.path


def _get(
    client: OtaClient, method: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    connection, path = _connection(client)
    try:
        connection.request(method, path, headers=headers)  # type: ignore[attr-defined]
        response = connection.getresponse()  # type: ignore[attr-defined]
        limit = client.stop_after
        body = response.read(limit) if limit is not None else response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    except ssl.SSLCertVerificationError as error:
        raise OtaError(
            f"esp-tls: Failed to verify peer certificate ({error.verify_message})"
        ) from None
    except (OSError, ssl.SSLError) as error:
        raise OtaError(f"Failed to establish HTTP connection ({error})") from None
    finally:
        connection.close()  # type: ignore[attr-defined]


def _status_error(status: int) -> str | None:
    if status in (403, 404):
        return f"File not found({status})"
    if 400 <= status < 500:
        return f"Client error ({status})"
    if status >= 500:
        return f"Server error ({status})"
    return None


def _download(client: OtaClient, log: Callable[[str], None]) -> bytes:
    """The image as esp_https_ota receives it: one GET, or HEAD + Range GETs (partial mode)."""
    if not client.partial:
        status, _, body = _get(client, "GET", {})
        problem = _status_error(status)
        if problem:
            raise OtaError(problem)
        return body
    status, headers, _ = _get(client, "HEAD", {})
    if status != 200:
        raise OtaError(f"Received incorrect http status {status}")
    total = int(headers.get("content-length", "0"))
    log(f"ota: HEAD: Content-Length {total}; Range GETs of {client.request_size} bytes")
    received = b""
    while len(received) < total:
        end = min(len(received) + client.request_size, total) - 1
        status, _, body = _get(client, "GET", {"Range": f"bytes={len(received)}-{end}"})
        problem = _status_error(status)
        if problem:
            raise OtaError(problem)
        if not body:
            break
        received += body
        log(f"ota: Range bytes={len(received) - len(body)}-{len(received) - 1}: {status}")
    return received


def _check_header(data: bytes, client: OtaClient, running: images.AppImage) -> None:
    """esp_https_ota_get_img_desc and the chip check of the first perform(), before any erase."""
    if len(data) < _HEADER:
        raise OtaError("Complete headers were not received")
    if data[0] != 0xE9:
        raise OtaError(f"OTA image has invalid magic byte (expected 0xE9, saw 0x{data[0]:02x})")
    if int.from_bytes(data[0x20:0x24], "little") != 0xABCD5432:
        raise OtaError("Incorrect app descriptor magic")
    expected, found = images.chip_id(client.target), int.from_bytes(data[12:14], "little")
    if found != expected:
        raise OtaError(f"Mismatch chip id, expected {expected}, found {found}")
    version = data[0x30:0x50].split(b"\0", 1)[0].decode(errors="replace")
    if client.check_version and version == running.version:
        raise OtaError(
            "Current running version is the same as a new. We will not continue the update."
        )


def update(
    flash: Flash, booted: Booted, client: OtaClient, log: Callable[[str], None]
) -> Partition:
    """Download, write the next slot, validate it, and point otadata at it; on any error the
    board keeps booting what it booted."""
    log(f"ota: Starting OTA... from {client.url}")
    data = _download(client, log)
    _check_header(data, client, booted.app)
    slot = next_update_partition(booted.table, booted.partition)
    log(f"ota: Writing to partition subtype {slot.subtype} at offset {slot.offset:#x}")
    if len(data) > slot.size:
        raise OtaError(f"image of {len(data)} bytes does not fit {slot.name} ({slot.size} bytes)")
    flash.write(slot.offset, data + b"\xff" * (slot.size - len(data)))
    if client.stop_after is not None:
        raise OtaError("Complete data was not received.")
    try:
        written = images.read_app(flash.read(slot.offset, len(data)), client.target, name=slot.name)
    except images.ImageError as error:
        raise OtaError(f"Image validation failed, image is corrupted ({error})") from None
    table = booted.table
    assert table.otadata is not None  # a table with OTA slots and no otadata fails above
    current = flash.read(table.otadata.offset, table.otadata.size)
    flash.write(table.otadata.offset, otadata.set_boot(table, current, slot))
    log(
        f"ota: wrote '{written.project_name}' {written.version} ({written.size} bytes, "
        f"SHA-256 {written.sha256[:16]}…) to {slot.name}"
    )
    log("ota: OTA Succeed, Rebooting...")
    return slot
