"""A virtual board: esp32-mock-bootloader's emulated ROM loader on a loopback socket, whose flash
is a file (erased = 0xFF), loaded when the board starts and saved after each loader session.

The real esptool talks to it through `socket://127.0.0.1:PORT`. Workarounds for the emulator's
known limits are in toolchain-notes.md: a 1 s receive timeout, one handle_client per
connection with exit_on_disconnect, an explicit chip, and compressed writes only.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from ..device.link import Link
from ..errors import DeviceError
from ..files import write_if_changed

__all__ = ["INSTALL_HINT", "VirtualBoard"]

INSTALL_HINT = "pip install -e '.[rehearse]' (esp32-mock-bootloader, pinned with esptool)"


def _emulator() -> Any:
    try:
        import esp32_mock_bootloader.server as server
    except ImportError:
        raise DeviceError(
            f"the virtual board needs the ROM loader emulator; {INSTALL_HINT}"
        ) from None
    # Stub read-flash aborts at random with the default 50 ms (toolchain-notes.md).
    server._CLIENT_RECV_TIMEOUT = 1.0
    return server


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
        """The emulated loader over loopback TCP: no reset lines, no baud rate, and the only
        link that takes synthetic images."""
        return Link(port=self.port, resettable=False, fixed_baud=True, virtual=True)

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
