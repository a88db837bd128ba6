"""A virtual board: esp32-mock-bootloader's emulated ROM loader on a loopback socket, whose flash
is a file (erased = 0xFF), loaded when the board starts and saved after each loader session.

The real esptool talks to it through `socket://127.0.0.1:PORT`. Workarounds for the emulator's
known limits are in toolchain-notes.md: a 1 s receive timeout, one handle_client per
connection with exit_on_disconnect, an explicit chip, and compressed writes only.

The emulator's eFuse reads say revision v0.0; the board reports the revision of the silicon on
sale (idf/chips.py), in the eFuse words esptool v5 reads it from, so esptool checks real
images' minimum revision (v0.3 for ESP-IDF v5.3's esp32c3) as a real chip would.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from ..device.esplink import Link
from ..errors import DeviceError
from ..files import write_if_changed
from ..idf import chips
from . import INSTALL_HINT

__all__ = ["VirtualBoard", "revision_registers"]


def _emulator() -> Any:
    try:
        import esp32_mock_bootloader.server as server
    except ImportError:
        raise DeviceError(
            "the virtual board needs the ROM loader emulator (esp32-mock-bootloader); "
            + INSTALL_HINT
        ) from None
    # Stub read-flash aborts at random with the default 50 ms (toolchain-notes.md).
    server._CLIENT_RECV_TIMEOUT = 1.0
    if not isinstance(server._read_reg_value_for_chip, _WithRevision):
        server._read_reg_value_for_chip = _WithRevision(server._read_reg_value_for_chip)
    spi = server.SpiPeripheralMock
    if not getattr(spi.read_reg, "answers_flash_size", False):
        spi.read_reg = _with_flash_size(spi.read_reg, server.protocol.MOCK_FLASH_ID)
    return server


# The flash size of the board whose connection this thread serves (one thread per board).
_serving = threading.local()


def _with_flash_size(read: Callable[[Any, int], int], mock_id: int) -> Callable[[Any, int], int]:
    """The emulator's SPI register read, whose JEDEC id (RDID) says 4 MB whatever the flash,
    with the capacity byte of this board's flash instead (2^N bytes), so esptool's
    detect_flash_size reads what a chip of that size reports."""

    def read_reg(spi: Any, address: int) -> int:
        value = read(spi, address)
        size = getattr(_serving, "flash_size", 0)
        if value == mock_id and size:
            return (value & 0xFFFF) | (size.bit_length() - 1) << 16
        return value

    read_reg.answers_flash_size = True  # type: ignore[attr-defined]
    return read_reg


class _WithRevision:
    """The emulator's register read, with the chip revision's eFuse bits set."""

    def __init__(self, read: Callable[[int, str], int]) -> None:
        self._read = read

    def __call__(self, address: int, chip: str) -> int:
        return self._read(address, chip) | _registers(chip).get(address, 0)


@functools.cache
def _registers(target: str) -> dict[int, int]:
    known = chips.CHIPS.get(target)
    return revision_registers(target, known.revision) if known else {}


def revision_registers(target: str, revision: int) -> dict[int, int]:
    """The register values from which esptool v5's ROM class for `target` reads `revision`
    (major * 100 + minor): its get_major_chip_version and get_minor_chip_version, inverted."""
    from esptool.targets import CHIP_DEFS

    rom = CHIP_DEFS[target]
    major, minor = divmod(revision, 100)
    if target == "esp32":  # three scattered bits count the major revision: 0, 1, 3, 7 = v0..v3
        bits = (0, 1, 3, 7)[major]
        base = rom.EFUSE_RD_REG_BASE
        return {
            base + 4 * 3: (bits & 1) << 15,
            base + 4 * 5: (bits >> 1 & 1) << 20 | minor << 24,
            rom.APB_CTL_DATE_ADDR: (bits >> 2) << rom.APB_CTL_DATE_S,
        }
    if target == "esp32c2":
        return {rom.EFUSE_BLOCK2_ADDR + 4: minor << 16 | major << 20}
    block1 = rom.EFUSE_BLOCK1_ADDR
    words: dict[str, dict[int, int]] = {
        # minor's low three bits in word 3, its fourth bit and major in word 5
        "esp32c3": {block1 + 12: (minor & 7) << 18, block1 + 20: (minor >> 3) << 23 | major << 24},
        "esp32s3": {block1 + 12: (minor & 7) << 18, block1 + 20: (minor >> 3) << 23 | major << 24},
        "esp32s2": {block1 + 12: major << 18 | (minor >> 3) << 20, block1 + 16: (minor & 7) << 4},
        "esp32c6": {block1 + 12: minor << 18 | major << 22},
        "esp32h2": {block1 + 12: minor << 18 | major << 21},
        "esp32p4": {block1 + 8: minor | (major & 3) << 4 | (major >> 2) << 23},
    }
    return words.get(target, {block1 + 8: minor | major << 4})  # C5, C61


class VirtualBoard:
    """`with VirtualBoard(path, target="esp32", flash_size=4 << 20) as board: board.port`."""

    def __init__(self, flash_file: Path, *, target: str, flash_size: int) -> None:
        self.flash_file = flash_file
        self.target = target
        self.flash_size = flash_size
        self._server = _emulator()
        self._flash = self._server.FlashImage()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> str:
        assert self._listener is not None, "start the board first"
        return f"socket://127.0.0.1:{self._listener.getsockname()[1]}"

    @property
    def link(self) -> Link:
        """The emulated loader over loopback TCP: no reset lines, no baud rate."""
        return Link(port=self.port, resettable=False, fixed_baud=True)

    def read(self, offset: int, size: int) -> bytes:
        with self._lock:
            return bytes(self._flash.data[offset : offset + size])

    def write(self, offset: int, data: bytes) -> None:
        """Change flash directly (what an app does at run time), then save."""
        with self._lock:
            self._flash.data[offset : offset + len(data)] = data
        self.save()

    def load(self) -> None:
        data = self.flash_file.read_bytes() if self.flash_file.exists() else b""
        # The emulator's buffer is 4 MiB; a bigger layout needs a bigger one.
        image = bytearray(data[: self.flash_size].ljust(self.flash_size, b"\xff"))
        with self._lock:
            self._flash.data = image

    def save(self) -> None:
        with self._lock:
            data = bytes(self._flash.data)
        # It holds whatever the apps embed (the Wi-Fi password, for OTA clients).
        write_if_changed(self.flash_file, data, mode=0o600)

    def start(self) -> VirtualBoard:
        self.load()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name="virtual-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
        self.save()

    def _serve(self) -> None:
        assert self._listener is not None
        _serving.flash_size = self.flash_size
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                transport = self._server.BootloaderConnection(
                    sock=connection, track_disconnect=True
                )
                self._server.handle_client(
                    transport,
                    self._stop,
                    self.target,
                    None,
                    exit_on_disconnect=True,
                    flash=self._flash,
                )
            self.save()

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
