"""The serial link to a board's ROM loader, through esptool's Python API: which port, which
baud, the chip check, and esptool's chatter reduced to one progress line per region.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import DeviceError, clip

__all__ = [
    "FALLBACK_BAUD",
    "ConnectError",
    "Link",
    "as_device_error",
    "connect",
    "connect_hint",
    "env_baud",
    "is_transfer_error",
    "port_gone",
    "port_problem",
    "probe_port",
    "resolve_port",
    "went_away",
]

FALLBACK_BAUD = 115200


class ConnectError(DeviceError):
    """The ROM loader did not answer on the port (nothing was exchanged yet)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A port esptool opens, and what the other end of it can do."""

    port: str  # a device path or a pyserial URL
    resettable: bool = True  # DTR/RTS reach EN and IO0: esptool resets the chip
    fixed_baud: bool = False  # the far end sets the rate (a TCP bridge): never change_baud

    @classmethod
    def of(cls, port: str) -> Link:
        """A port the user named. pyserial's raw TCP (socket://) carries neither DTR/RTS nor
        a baud rate; a device path and rfc2217:// carry both."""
        tcp = port.startswith("socket://")
        return cls(port=port, resettable=not tcp, fixed_baud=tcp)


def resolve_port(option: str | None, env: Mapping[str, str], configured: str | None) -> str:
    """--port, else $ESPPORT, else flash.port, else the one serial port that looks like a board."""
    for value in (option, env.get("ESPPORT"), configured):
        if value:
            return value
    from serial.tools import list_ports

    candidates = sorted(str(port.device) for port in list_ports.comports() if port.vid is not None)
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise DeviceError(
            f"several serial ports could be the board: {', '.join(candidates)}; "
            "choose one with doit flash --port PORT, $ESPPORT or flash.port"
        )
    raise DeviceError(
        "no serial port found; plug the board in with a data cable (not charge-only), check you "
        "may open it (Linux: add yourself to the dialout group and log in again), or name it "
        "with doit flash --port PORT or $ESPPORT"
    )


def _chip_name(target: str) -> str:
    from esptool.targets import CHIP_DEFS

    return str(CHIP_DEFS[target].CHIP_NAME)


@contextmanager
def connect(
    link: Link | str,
    baud: int,
    target: str,
    *,
    before: str = "default-reset",
    stub: bool = True,
) -> Iterator[Any]:
    """An esptool connection to the board, its chip checked against `target`, flash attached."""
    from esptool.cmds import attach_flash, detect_chip, run_stub
    from esptool.util import FatalError

    link = link if isinstance(link, Link) else Link.of(link)
    port = link.port

    # Like esptool: sync with the ROM loader at 115200, then switch to the fast rate.
    try:
        esp = detect_chip(port, min(baud, FALLBACK_BAUD), before, False, 3)
    except (FatalError, OSError) as error:
        raise ConnectError(connect_hint(port, error)) from None
    try:
        found, wanted = str(esp.CHIP_NAME), _chip_name(target)
        if found != wanted:
            raise DeviceError(f"board is {found}, project.yaml says {target} ({wanted})")
        if stub and not getattr(esp, "IS_STUB", False):
            esp = run_stub(esp)
        if baud > FALLBACK_BAUD and not link.fixed_baud:
            esp.change_baud(baud)
        attach_flash(esp)
        yield esp
    finally:
        port_handle = getattr(esp, "_port", None)
        if port_handle is not None:
            port_handle.close()


def port_problem(port: str) -> str | None:
    """What is surely wrong with a device path before opening it; None for URLs and good paths."""
    if "://" in port:
        return None  # pyserial URLs (socket://, rfc2217://) are checked by connecting
    if not os.path.exists(port):
        from serial.tools import list_ports

        present = sorted(str(p.device) for p in list_ports.comports())
        listed = ", ".join(present) if present else "none"
        return (
            f"no such port {clip(port)} (ports present: {listed}); plug the board in or fix --port"
        )
    if not os.access(port, os.R_OK | os.W_OK):
        return (
            f"{clip(port)}: permission denied; on Linux add yourself to the dialout group, "
            "log in again"
        )
    return None


def probe_port(port: str) -> None:
    """Open and close a device path once, exclusively, so that a missing, forbidden or busy port
    is reported truthfully (esp-idf-monitor prints "Connection failed" and exits 0)."""
    problem = port_problem(port)
    if problem:
        raise DeviceError(problem)
    if "://" in port:
        return
    import serial

    try:
        serial.Serial(port, exclusive=True).close()
    except (serial.SerialException, OSError) as error:
        raise DeviceError(connect_hint(port, error)) from None


def connect_hint(port: str, error: BaseException) -> str:
    problem = port_problem(port)
    if problem:
        return problem
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    lowered = text.lower()
    if "permission denied" in lowered or "errno 13" in lowered:
        return (
            f"{port}: permission denied; on Linux add yourself to the dialout group, log in again"
        )
    # pyserial's "the port is busy or doesn't exist" covers both: existence was checked above.
    if any(w in lowered for w in ("busy", "resource temporarily unavailable", "errno 16")):
        return f"{port} is busy: another program (a serial monitor?) holds it; close it and retry"
    return (
        f"cannot talk to the board on {port}: {text}; check the cable and port, hold BOOT while "
        "resetting if it does not enter the bootloader (probably the connection, not this tool)"
    )


def port_gone(port: str) -> bool:
    """A device path that no longer exists (its USB device went away); URLs cannot say."""
    return "://" not in port and not os.path.exists(port)


def went_away(port: str, role: str, error: BaseException) -> str:
    """The line for a board lost in the middle of a write."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = "its port is gone" if port_gone(port) else "it stopped answering"
    return (
        f"the board on {port} went away while {role} was being written ({where}: {clip(text)}); "
        "reconnect it (its port may come back under another name) and run `doit flash` again: "
        "it rewrites whatever differs"
    )


def env_baud(env: Mapping[str, str]) -> int | None:
    text = env.get("ESPBAUD", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise DeviceError(f"ESPBAUD='{text}' is not a baud rate; use a number like 460800")
    return int(text)


def is_transfer_error(error: BaseException) -> bool:
    """A serial link that dropped or timed out mid-transfer: worth one try at 115200."""
    text = str(error).lower()
    if isinstance(error, DeviceError):
        return False
    return isinstance(error, OSError) or any(
        word in text for word in ("timed out", "timeout", "serial data stream stopped", "packet")
    )


def as_device_error(error: BaseException, port: str | None = None) -> BaseException:
    """esptool's own refusals pass through in its words; link trouble gets the cable hint."""
    from esptool.util import FatalError

    if isinstance(error, DeviceError):
        return error
    if isinstance(error, FatalError) and not is_transfer_error(error):
        return DeviceError(f"esptool: {str(error).strip()}")
    if port is not None and (isinstance(error, FatalError | OSError)):
        return DeviceError(connect_hint(port, error))
    return error  # anything else is a bug in this project: keep its traceback
