"""The listening side of `doit serve`: accept loop, TLS per connection, and the transfers it
reports to a listener (console.py turns them into the request log).

The protocol itself is protocol.py; this module owns sockets and threads.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .budget import Budget, Refused, Slot, Throttle, descriptor_budget, eviction_note
from .console import Console, Transfer
from .protocol import (
    Limits,
    Malformed,
    Request,
    Resource,
    Response,
    error,
    head_bytes,
    read_request,
    respond,
)

if TYPE_CHECKING:
    import ssl

__all__ = ["SLICE", "Console", "Listener", "Server", "TLSSetupError", "Transfer", "bind_failure"]

SLICE = 256 * 1024  # bytes per send: what matched openssl s_server (toolchain notes)


class TLSSetupError(Exception):
    """The server certificate or key could not be loaded (not a listen-socket problem)."""


Listener = Callable[[Literal["start", "end", "note"], Transfer | str], None]


class Server:
    """A bound TLS listener; `serve()` accepts until `stop` is set (or KeyboardInterrupt)."""

    def __init__(
        self,
        *,
        resources: Mapping[str, Resource],
        cert: Path,
        key: Path,
        bind: str,
        port: int,
        listener: Listener | None = None,
        limits: Limits | None = None,
        listening: socket.socket | None = None,
    ) -> None:
        """`listening`: a socket already bound and listening, handed over (socket activation,
        tests); `bind` and `port` are then not used."""
        self.resources = dict(resources)
        self.limits = limits = limits or Limits()
        self.listener: Listener = listener or (lambda kind, item: None)
        self._context = _context(cert, key)
        self._socket = listening or _listen(bind, port)
        descriptors = descriptor_budget()
        self.connections = min(limits.connections, descriptors)
        self.budget = Budget(self.connections, limits.per_client, descriptors)
        self._throttle = Throttle()
        self._closed = threading.Event()
        self._reaped = self._noted = 0.0

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def limits_text(self) -> str:
        """The connection budget, for the start-up lines."""
        return (
            f"connections: at most {self.budget.total}, "
            f"{min(self.budget.per_client, self.budget.total)} per client "
            "address; when full, the one idle longest is closed for a newcomer"
        )

    def serve(self, stop: threading.Event | None = None) -> None:
        self._socket.settimeout(0.2)
        try:
            while not self._closed.is_set() and not (stop is not None and stop.is_set()):
                self._reap()
                try:
                    conn, address = self._socket.accept()
                except TimeoutError:
                    continue
                except OSError as err:  # EMFILE, ENFILE, ECONNABORTED, ENOBUFS: all pass
                    if self._closed.is_set():
                        break
                    self._accept_failed(err)
                    continue
                self._admit(conn, address)
        finally:
            self.close()

    def close(self) -> None:
        self._closed.set()
        self._socket.close()
        for conn in self.budget.sockets():
            _shutdown(conn)

    def _admit(
        self, conn: socket.socket, address: tuple[str, int] | tuple[str, int, int, int]
    ) -> None:
        """Give the connection a slot and a thread, or close it at once; nothing here waits for
        the client, so one slow or hostile client never holds up the accept loop."""
        now = time.monotonic()
        decision = self.budget.admit(
            address[0], conn, now=now, deadline=now + self.limits.head_timeout
        )
        if isinstance(decision, Refused):
            conn.close()
            self._refused(decision, now)
            return
        slot, victim = decision
        if victim is not None:
            _shutdown(victim.conn)  # its worker sees EOF (or the evicted flag) and closes it
            held = self._throttle.due("evicted", now)
            if held is not None:
                self.listener("note", eviction_note(self.budget.total, victim.address, held))
        worker = threading.Thread(
            target=self._connection, args=(conn, _client(address), slot), daemon=True
        )
        try:
            worker.start()
        except RuntimeError as err:  # can't start new thread: a process or memory limit
            self.budget.release(slot)
            conn.close()
            self._accept_failed(OSError(str(err)))

    def _refused(self, refused: Refused, now: float) -> None:
        held = self._throttle.due(f"{refused.reason} {refused.address}", now)
        if held is not None:
            self.listener("note", refused.note(held))

    def _accept_failed(self, err: OSError) -> None:
        """One note a second at most, then a short pause: out of descriptors, retrying at once
        would only spin; the server keeps serving the connections it has."""
        now = time.monotonic()
        if now - self._noted >= 1.0:
            self._noted = now
            self.listener("note", f"accept failed: {_reason(err)}; still serving, retrying")
        self._closed.wait(0.1)

    def _reap(self) -> None:
        """Disconnect clients past their head deadline: a byte per timeout period must not hold a
        slot for ever. Runs from the accept loop, at most every 0.2 s."""
        now = time.monotonic()
        if now - self._reaped < 0.2:
            return
        self._reaped = now
        for conn in self.budget.expired(now):
            _shutdown(conn)

    def _connection(self, raw: socket.socket, client: str, slot: Slot) -> None:
        import ssl

        conn = raw
        deadline = slot.deadline
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The handshake runs here, off the accept loop, under a timeout: a board that resets
            # mid-handshake, or a client that never says hello, holds only its own thread.
            raw.settimeout(self.limits.handshake_timeout)
            conn = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            if not self.budget.swap(slot, conn):
                return
            try:
                conn.do_handshake()
            except (OSError, ssl.SSLError) as err:
                late = time.monotonic() >= deadline
                reason = f"not done within {self.limits.head_timeout:g} s" if late else _reason(err)
                if not slot.evicted:
                    self.listener("note", f"{client} TLS handshake failed: {reason}")
                return
            self._requests(conn, client, slot, deadline)
            if not self._closed.is_set() and not slot.evicted:
                # close_notify: OpenSSL 3 clients call a bare EOF "unexpected eof while reading".
                conn.settimeout(0.5)
                conn.unwrap()
        except (OSError, ValueError):
            pass
        finally:
            conn.close()
            self.budget.release(slot)

    def _requests(self, tls: ssl.SSLSocket, client: str, slot: Slot, deadline: float) -> None:
        stream = tls.makefile("rb", buffering=4096)  # per connection: keep 200 of them small
        try:
            while not self._closed.is_set():
                tls.settimeout(self.limits.idle_timeout)
                if not self.budget.waiting(slot, now=time.monotonic(), deadline=deadline):
                    return
                try:
                    request = read_request(stream, self.limits)
                except Malformed as bad:
                    if self.budget.busy(slot):
                        self._send(tls, client, None, error(bad.status))
                    return
                except (TimeoutError, OSError, ValueError):
                    request = None
                # From here until `waiting` above the connection is never evicted.
                if not self.budget.busy(slot):
                    return
                if request is None:
                    if time.monotonic() >= deadline and not self._closed.is_set():
                        limit = f"{self.limits.head_timeout:g} s"
                        self.listener("note", f"{client} dropped: no request head within {limit}")
                    return
                response = respond(request, self.resources)
                tls.settimeout(self.limits.send_timeout)
                if not self._send(tls, client, request, response) or response.close:
                    return
                deadline = time.monotonic() + self.limits.head_timeout
        finally:
            stream.close()

    def _send(
        self, tls: ssl.SSLSocket, client: str, request: Request | None, response: Response
    ) -> bool:
        transfer = Transfer(
            client=client,
            method=request.method if request else "-",
            path=_printable(request.target) if request else "-",
            range_text=_printable(response.range_text),
            status=response.status,
            total=len(response.body),
        )
        self.listener("start", transfer)
        version = request.version if request else (1, 1)
        try:
            tls.sendall(head_bytes(response, version=version))
            body = response.body
            for start in range(0, len(body), SLICE):
                tls.sendall(body[start : start + SLICE])
                transfer.sent = min(len(body), start + SLICE)
            # sendall returns once the kernel holds the bytes (megabytes of them): the transfer
            # ends when the client has acknowledged them.
            return self._drained(tls)
        except OSError:
            return False
        finally:
            transfer.ended = time.monotonic()
            self.listener("end", transfer)

    def _drained(self, conn: socket.socket) -> bool:
        """Wait (within send_timeout) until the client has acknowledged everything sent."""
        deadline = time.monotonic() + self.limits.send_timeout
        pause = 0.001
        while _unacknowledged(conn) and not self._closed.is_set():
            if time.monotonic() >= deadline or _reset(conn):
                return False
            self._closed.wait(pause)  # the kernel has no wake-up for "all acknowledged"
            pause = min(pause * 2, 0.05)
        return True


def _unacknowledged(conn: socket.socket) -> int | None:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux SIOCOUTQ);
    None where the system cannot say."""
    import fcntl
    import struct
    import termios

    request = getattr(termios, "TIOCOUTQ", None)
    if request is None or sys.platform != "linux":
        return None
    try:
        return int(struct.unpack("i", fcntl.ioctl(conn.fileno(), request, b"\0" * 4))[0])
    except (OSError, ValueError):
        return None


_TCP_CLOSE = 7  # tcp_states.h: the state of a connection the peer reset


def _reset(conn: socket.socket) -> bool:
    """The peer reset the connection (it closed or died mid-body): what it never acknowledged
    stays counted in SIOCOUTQ for ever, so the wait above must not wait for it (Linux TCP_INFO,
    whose first byte is the state; False where the system cannot say)."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return False
    try:
        info = conn.getsockopt(socket.IPPROTO_TCP, option, 8)
    except (OSError, ValueError):
        return True  # the socket itself is gone
    return info[0] == _TCP_CLOSE


def _listen(bind: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((bind, port))
        # A backlog of 5 drops SYNs under 50 simultaneous connects; the retry costs ~1 s.
        listening.listen(256)
    except OSError:
        listening.close()
        raise
    return listening


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except OSError as err:  # ssl.SSLError is one, and so is a file that vanished since check()
        raise TLSSetupError(getattr(err, "reason", None) or err.strerror or str(err)) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _client(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(err: Exception) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    reason = getattr(err, "reason", None)
    return str(reason or err.strerror or err).lower() if isinstance(err, OSError) else str(err)


def _printable(text: str, limit: int = 200) -> str:
    """Attacker-chosen text made safe for a terminal line: no control characters, bounded."""
    cleaned = "".join(c if 0x20 <= ord(c) < 0x7F else f"\\x{ord(c):02x}" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


def _shutdown(conn: socket.socket) -> None:
    """Unblock a worker stuck in recv/send from another thread; the worker closes the socket.

    The plain socket's shutdown is used even on an SSLSocket, whose own shutdown() would drop the
    TLS state under the worker's feet."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


def bind_failure(bind: str, port: int, err: OSError) -> str:
    """The one line for a listen socket that could not be bound."""
    import errno

    if err.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {bind} is already in use by another process; find it with "
            f"`ss -ltnp 'sport = :{port}'`, stop it, or change ota.url's port"
        )
    if err.errno == errno.EACCES:
        return f"cannot listen on {bind}:{port}: permission denied; use a port above 1023"
    return f"cannot listen on {bind}:{port}: {err.strerror}; check ota.bind"
