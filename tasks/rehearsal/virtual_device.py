"""What runs on the virtual board: ESP-IDF's bootloader choosing and checking an app
(bootloader_utility.c, docs/esp-idf.md §3.5), and an OTA client that downloads the update as
esp_https_ota does for the factory app's built configuration (docs/esp-idf.md §1, §7.4).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ..device.board import read_table
from ..errors import ProjectError
from ..idf import esp_image, otadata, signing
from ..idf.partition.rules import Partition, PartitionTable

__all__ = [
    "BootConfig",
    "Booted",
    "Flash",
    "OtaClient",
    "OtaError",
    "VirtualEfuse",
    "boot",
    "confirm",
    "download",
    "install",
    "next_update_partition",
    "ranges",
    "update",
]

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
    app: esp_image.AppImage
    pending: bool = False  # booted in ESP_OTA_IMG_PENDING_VERIFY: the app must confirm itself


@dataclass(frozen=True, slots=True, kw_only=True)
class BootConfig:
    """The bootloader's and the running app's options that change the rules (from sdkconfig)."""

    rollback: bool = False  # CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
    anti_rollback: bool = False  # CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
    signed_update: bool = False  # CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT
    idf_version: str = "5.3"  # the release the app is built with: its esp_ota_ops rules


@dataclass(slots=True)
class VirtualEfuse:
    """The eFuse secure version field, in memory only: the rehearsal burns nothing."""

    secure_version: int = 0

    def burn(self, version: int, log: Callable[[str], None]) -> None:
        """esp_efuse_update_secure_version: bits only ever get set."""
        if version > self.secure_version:
            self.secure_version = version
            log(f"efuse: Anti-rollback is set. eFuse field is updated({version}) (virtual)")


def _secure_version(flash: Flash, slot: Partition) -> int | None:
    """esp_app_desc_t.secure_version of the slot's app, None without an app descriptor."""
    desc = esp_image.app_desc(flash.read(slot.offset, esp_image.APP_DESC_END))
    return None if desc is None else desc.secure_version


def _load_order(table: PartitionTable, chosen: Partition | None) -> list[Partition]:
    """bootloader_utility_load_boot_image: the chosen slot, down to factory, then later slots."""
    slots = list(table.ota_slots)
    start = slots.index(chosen) if chosen in slots else -1
    order = [slots[i] for i in range(start, -1, -1)]
    order += [table.factory] if table.factory is not None else []
    return order + slots[start + 1 :]


def boot(
    flash: Flash,
    target: str,
    table_offset: int,
    log: Callable[[str], None],
    config: BootConfig | None = None,
    efuse: VirtualEfuse | None = None,
) -> Booted:
    """Pick the app as the bootloader does (writing otadata as it does), verify it (magic,
    checksum, SHA-256, chip id) and fall back to the other app partitions when it does not load."""
    config, efuse = config or BootConfig(), efuse or VirtualEfuse()
    table = read_table(flash.read, table_offset)

    def secure_ok(slot: Partition) -> bool:
        version = _secure_version(flash, slot)
        return version is not None and version >= efuse.secure_version

    selection = None
    if table.otadata is not None:
        data = flash.read(table.otadata.offset, table.otadata.size)
        selection = otadata.select(
            table,
            data,
            rollback=config.rollback,
            anti_rollback=config.anti_rollback,
            secure_ok=secure_ok,
        )
        for line in selection.lines:
            log(f"boot: {line}")
        if selection.data != data:
            flash.write(table.otadata.offset, selection.data)
    chosen = selection.slot if selection else (table.factory or next(iter(table.ota_slots), None))
    for partition in _load_order(table, chosen):
        if config.anti_rollback and not secure_ok(partition):
            log(f"boot: {partition.name}: secure_version below the eFuse value; not bootable")
            continue
        try:
            app = esp_image.read_app(
                flash.read(partition.offset, partition.size), target, name=partition.name
            )
        except esp_image.ImageError as error:
            log(f"boot: {error}; trying the next app partition")
            continue
        pending = False
        if selection is not None and table.otadata is not None:
            pending = _after_load(flash, table, selection, partition, config, efuse, app, log)
        log(f"boot: Loaded app from partition at offset {partition.offset:#x}")
        log(f"boot: app '{app.project_name}' version {app.version} ({partition.name})")
        return Booted(table=table, partition=partition, app=app, pending=pending)
    raise OtaError("No bootable app partitions in the partition table")


def _after_load(
    flash: Flash,
    table: PartitionTable,
    selection: otadata.Selection,
    partition: Partition,
    config: BootConfig,
    efuse: VirtualEfuse,
    app: esp_image.AppImage,
    log: Callable[[str], None],
) -> bool:
    """set_actual_ota_seq and update_anti_rollback; True when the app boots pending verify."""
    assert table.otadata is not None
    slots = list(table.ota_slots)
    if selection.initial and partition in slots:
        index = slots.index(partition)
        current = flash.read(table.otadata.offset, table.otadata.size)
        flash.write(table.otadata.offset, otadata.set_actual_seq(current, index))
        log(f"boot: Set actual ota_seq={index + 1} in otadata[0]")
        if config.anti_rollback:
            efuse.burn(app.secure_version, log)
        return False
    if partition != selection.slot or selection.active_state is None:
        return False
    if config.anti_rollback and selection.active_state == otadata.VALID:
        efuse.burn(app.secure_version, log)
    return selection.active_state == otadata.PENDING_VERIFY


def confirm(
    flash: Flash,
    booted: Booted,
    config: BootConfig,
    efuse: VirtualEfuse,
    log: Callable[[str], None],
) -> None:
    """The new app calls esp_ota_mark_app_valid_cancel_rollback(): its entry becomes VALID and,
    with anti-rollback, its secure_version is burnt (esp_ota_set_anti_rollback)."""
    otadata_part = booted.table.otadata
    assert otadata_part is not None
    current = flash.read(otadata_part.offset, otadata_part.size)
    flash.write(otadata_part.offset, otadata.mark_valid(current))
    log(f"app: esp_ota_mark_app_valid_cancel_rollback(): {booted.partition.name} is valid")
    if config.anti_rollback:
        efuse.burn(booted.app.secure_version, log)


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
    partial: bool  # EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD: HEAD, then GETs of request_size
    request_size: int  # max_http_request_size: EXAMPLE_HTTP_REQUEST_SIZE, else 64 KiB
    check_version: bool  # the app's code compares esp_app_desc_t.version with the running one
    check_host: bool = True  # skip_cert_common_name_check leaves it off
    trusts_ca: bool = True  # cert_pem (or a bundle holding the CA); False: the bundle alone
    address: tuple[str, int] | None = None  # where the URL's host:port is reached (rehearsal)
    stop_after: int | None = None  # the connection drops after this many bytes (rehearsal)
    # esp_https_ota's decrypt_cb (esp_encrypted_img): the received bytes -> the image.
    decrypt: Callable[[bytes], bytes] | None = None


def _connection(client: OtaClient) -> tuple[object, str]:
    import http.client

    parts = urlsplit(client.url)
    host, port = parts.hostname or "", parts.port or 443
    if client.trusts_ca:
        context = ssl.create_default_context(cafile=str(client.ca_file))
    else:  # ESP-IDF's bundle of public roots: it holds no project CA, so nothing here verifies
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # esp-tls checks the name unless the app sets skip_cert_common_name_check; the chain always.
    context.check_hostname = client.check_host
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


def _body(client: OtaClient, headers: dict[str, str]) -> tuple[int, bytes]:
    """One GET; a 4xx/5xx status stops the update as esp_https_ota words it."""
    status, _, body = _get(client, "GET", headers)
    problem = _status_error(status)
    if problem:
        raise OtaError(problem)
    return status, body


def ranges(total: int, request_size: int) -> list[str | None]:
    """The Range header of each GET esp_https_ota's partial download sends for an image of
    `total` bytes (docs/esp-idf.md §7.4): none when it fits one request, else
    `bytes=<done>-<done+size-1>` and, for the last one, `bytes=<done>-`."""
    if total <= request_size:
        return [None]
    headers: list[str | None] = []
    for done in range(0, total, request_size):
        last = total - done <= request_size
        headers.append(f"bytes={done}-" if last else f"bytes={done}-{done + request_size - 1}")
    return headers


def download(client: OtaClient, log: Callable[[str], None]) -> bytes:
    """The image as esp_https_ota receives it: one GET, or (partial download) a HEAD for the
    length, then one plain GET when the image fits a request, else Range GETs."""
    if not client.partial:
        return _body(client, {})[1]
    status, headers, _ = _get(client, "HEAD", {})
    if status != 200:
        raise OtaError(f"Received incorrect http status {status}")
    total = int(headers.get("content-length", "0"))
    plan = ranges(total, client.request_size)
    log(
        f"ota: HEAD: Content-Length {total}; "
        + (
            f"one GET (the request size is {client.request_size})"
            if plan == [None]
            else f"{len(plan)} Range GETs of up to {client.request_size} bytes"
        )
    )
    received = b""
    for header in plan:
        status, body = _body(client, {"Range": header} if header else {})
        received += body
        if header:
            log(f"ota: GET Range {header}: {status}, {len(body)} bytes")
        if not body or (client.stop_after is not None and len(received) >= client.stop_after):
            break
    return received


def _check_header(data: bytes, client: OtaClient, running: esp_image.AppImage) -> None:
    """esp_https_ota_get_img_desc and the chip check of the first perform(), before any erase."""
    if len(data) < _HEADER:
        raise OtaError("Complete headers were not received")
    if data[0] != 0xE9:
        raise OtaError(f"OTA image has invalid magic byte (expected 0xE9, saw 0x{data[0]:02x})")
    desc = esp_image.app_desc(data)
    if desc is None:
        raise OtaError("Incorrect app descriptor magic")
    expected, found = esp_image.chip_id(client.target), int.from_bytes(data[12:14], "little")
    if found != expected:
        raise OtaError(f"Mismatch chip id, expected {expected}, found {found}")
    if client.check_version and desc.version == running.version:
        raise OtaError(
            "Current running version is the same as a new. We will not continue the update."
        )


def update(
    flash: Flash,
    booted: Booted,
    client: OtaClient,
    log: Callable[[str], None],
    config: BootConfig | None = None,
    efuse: VirtualEfuse | None = None,
) -> Partition:
    """Download, write the next slot, validate it, and point otadata at it; on any error the
    board keeps booting what it booted."""
    config, efuse = config or BootConfig(), efuse or VirtualEfuse()
    log(f"ota: Starting OTA... from {client.url}")
    if config.rollback and booted.pending:
        raise OtaError("Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)")
    data = download(client, log)
    log(f"ota: bytes on the air: {len(data)}")
    if client.decrypt is not None:
        data = client.decrypt(data)
    return install(flash, booted, data, client, log, config, efuse)


def install(
    flash: Flash,
    booted: Booted,
    data: bytes,
    client: OtaClient,
    log: Callable[[str], None],
    config: BootConfig,
    efuse: VirtualEfuse,
) -> Partition:
    """esp_ota_begin/write/end and esp_ota_set_boot_partition with the new image's bytes."""
    _check_header(data, client, booted.app)
    slot = next_update_partition(booted.table, booted.partition)
    log(f"ota: Writing to partition subtype {slot.subtype} at offset {slot.offset:#x}")
    if len(data) > slot.size:
        raise OtaError(f"image of {len(data)} bytes does not fit {slot.name} ({slot.size} bytes)")
    flash.write(slot.offset, data + b"\xff" * (slot.size - len(data)))
    if client.stop_after is not None:
        raise OtaError("Complete data was not received.")
    written = _validate(flash, booted, slot, data, client, config, log)
    table = booted.table
    assert table.otadata is not None  # a table with OTA slots and no otadata fails above
    if config.anti_rollback and written.secure_version < efuse.secure_version:
        # esp_ota_set_boot_partition refuses it and erases the slot (ESP_ERR_OTA_SMALL_SEC_VER).
        flash.write(slot.offset, b"\xff" * slot.size)
        raise OtaError(
            "esp_ota_set_boot_partition failed! err=0x1504 (ESP_ERR_OTA_SMALL_SEC_VER): This a "
            "new partition can not be booted due to a secure version is lower than stored in "
            f"efuse. Partition will be erased. (image {written.secure_version}, eFuse "
            f"{efuse.secure_version})"
        )
    current = flash.read(table.otadata.offset, table.otadata.size)
    state = otadata.NEW if config.rollback else otadata.UNDEFINED
    new = otadata.set_boot(table, current, slot, state=state, release=config.idf_version)
    flash.write(table.otadata.offset, new)
    log(
        f"ota: wrote '{written.project_name}' {written.version} ({written.size} bytes, "
        f"SHA-256 {written.sha256[:16]}…) to {slot.name}"
    )
    log("ota: OTA Succeed, Rebooting...")
    return slot


def _validate(
    flash: Flash,
    booted: Booted,
    slot: Partition,
    data: bytes,
    client: OtaClient,
    config: BootConfig,
    log: Callable[[str], None],
) -> esp_image.AppImage:
    """esp_ota_end's esp_image_verify: checksum and hash, then (signed apps) the signature
    against the key the running app was signed with."""
    try:
        written = esp_image.read_app(
            flash.read(slot.offset, len(data)), client.target, name=slot.name
        )
    except esp_image.ImageError as error:
        raise OtaError(f"Image validation failed, image is corrupted ({error})") from None
    if config.signed_update:
        running = flash.read(booted.partition.offset, booted.app.size)
        try:
            signing.check_update(flash.read(slot.offset, written.size), running, slot.name)
        except signing.SignatureError as error:
            raise OtaError(f"Image validation failed, image is corrupted ({error})") from None
        log("ota: secure_boot_v2: Take trusted digest key(s) from running app; verified")
    return written
