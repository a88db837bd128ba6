"""The request log of `doit serve`: one line per finished transfer (text or JSON), and on a
terminal one live line of the downloads under way.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, TextIO

__all__ = ["Console", "Transfer"]


@dataclass(slots=True, kw_only=True)
class Transfer:
    """One response being sent, for the request log and the live progress line."""

    client: str
    method: str
    path: str
    range_text: str
    status: int = 0
    total: int = 0
    sent: int = 0  # body bytes the client has (acknowledged, where the system says)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None  # when the client had the last byte, or the transfer broke off

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started


class Console:
    """Request log lines (text or JSON) and, on a terminal only, one live line of downloads."""

    PROGRESS_MIN = 64 * 1024  # smaller bodies finish before a progress line could show them

    def __init__(self, log_format: Literal["text", "json"] = "text", stream: TextIO | None = None):
        self.json = log_format == "json"
        self._stream = stream
        self._lock = threading.Lock()
        self._active: dict[int, Transfer] = {}
        self._done = threading.Event()
        self._drawn = False
        self._thread: threading.Thread | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout  # doit swaps sys.stdout per action; look it up late

    def __enter__(self) -> Console:
        if self.stream.isatty():
            self._thread = threading.Thread(target=self._progress, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._write("")

    def listener(self, kind: Literal["start", "end", "note"], item: Transfer | str) -> None:
        if isinstance(item, str):
            self.line(item)
        elif kind == "start":
            with self._lock:
                self._active[id(item)] = item
        else:
            with self._lock:
                self._active.pop(id(item), None)
            self._write(self.request_line(item))

    def line(self, text: str) -> None:
        """A note (banner, handshake failure), as text or as a JSON event."""
        if self.json:
            text = json.dumps({"time": _now(), "event": "note", "message": text})
        self._write(text)

    def request_line(self, item: Transfer) -> str:
        """The log line of a finished transfer: its whole time, until the client had it all."""
        seconds = item.seconds
        if self.json:
            fields = {
                "time": _now(),
                "client": item.client,
                "method": item.method,
                "path": item.path,
                "range": item.range_text or None,
                "status": item.status,
                "bytes": item.sent,
                "duration": round(seconds, 4),
            }
            return json.dumps(fields)
        shown = f" range={item.range_text}" if item.range_text else ""
        return (
            f"{_now()} {item.client} {item.method} {item.path}{shown} {item.status} "
            f"{item.sent}B {seconds * 1000:.1f}ms"
        )

    def _write(self, text: str) -> None:
        with self._lock:
            clear = "\r\x1b[K" if self._drawn else ""
            self._drawn = False
            if text or clear:
                self.stream.write(clear + (text + "\n" if text else ""))
                self.stream.flush()

    def _progress(self) -> None:
        import shutil

        while not self._done.wait(0.5):
            with self._lock:
                active = [t for t in self._active.values() if t.total >= self.PROGRESS_MIN]
                if not active and not self._drawn:
                    continue
                parts = [f"{t.client} {t.path} {t.sent * 100 // max(t.total, 1)}%" for t in active]
                width = shutil.get_terminal_size().columns - 1
                text = f"downloading: {'  '.join(parts)}" if parts else ""
                self.stream.write("\r\x1b[K" + text[:width])
                self.stream.flush()
                self._drawn = bool(text)


def _now() -> str:
    return time.strftime("%H:%M:%S")
