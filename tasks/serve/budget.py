"""The built-in server's connection budget: how many connections it holds, in total and per client
address, and which idle one it closes to make room. Bookkeeping only, under one lock; the server
(tasks/serve_server.py) makes the socket calls.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import socket

__all__ = [
    "CLOSING",
    "FD_MARGIN",
    "Budget",
    "Refused",
    "Slot",
    "Throttle",
    "descriptor_budget",
    "eviction_note",
    "raise_descriptor_limit",
]

FD_MARGIN = 64  # descriptors kept free below RLIMIT_NOFILE: listen socket, files, CLOSING sockets
CLOSING = 16  # evicted sockets not yet closed by their worker, at least; more where descriptors
# allow, since a flood's burst of evictions must not turn a board away while workers catch up


@dataclass(slots=True, eq=False, kw_only=True)
class Slot:
    """One admitted connection. `idle_since` is None while a request is being answered."""

    address: str
    conn: socket.socket  # the raw socket, then its TLS wrapper (same descriptor)
    deadline: float  # for the handshake and request head; inf while there is none
    idle_since: float | None
    evicted: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a new connection was closed at once: its address holds `limit` already, or every
    connection is mid-transfer (or too many evicted ones are still closing)."""

    reason: Literal["per_client", "full"]
    address: str
    limit: int

    def note(self, held: int) -> str:
        """The request-log note; `held` more like it were throttled since the last one."""
        more = f" ({held} more refused since the last note)" if held else ""
        if self.reason == "per_client":
            return (
                f"{self.address} refused: it holds {self.limit} connections already, the most "
                f"ota.max_per_client allows{more}"
            )
        return (
            f"{self.address} refused: all {self.limit} connections are mid-transfer or closing "
            f"(ota.max_connections){more}"
        )


def eviction_note(total: int, address: str, held: int) -> str:
    more = f" ({held} more since the last note)" if held else ""
    return (
        f"{total} connections open (ota.max_connections): closed the one idle longest, from "
        f"{address}, to make room{more}"
    )


@dataclass(slots=True)
class Budget:
    """At most `total` connections, and fewer than `total` from one address: at most
    `per_client` (when it is below `total`). With evicted ones still closing, at most
    `descriptors` sockets (at least total + CLOSING)."""

    total: int
    per_client: int
    descriptors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: set[Slot] = field(default_factory=set)  # evicted ones too, until their worker ends
    _per_address: Counter[str] = field(default_factory=Counter)  # not evicted
    _open: int = 0  # not evicted

    def __post_init__(self) -> None:
        self.descriptors = max(self.descriptors, self.total + CLOSING)

    def admit(
        self, address: str, conn: socket.socket, *, now: float, deadline: float
    ) -> tuple[Slot, Slot | None] | Refused:
        """A slot for a new connection, and the idle connection evicted for it, if one was."""
        with self._lock:
            # A cap at or above the total is no cap: a lone client then evicts its own idlest.
            if self._per_address[address] >= self.per_client < self.total:
                return Refused("per_client", address, self.per_client)
            victim = None
            if self._open >= self.total:
                victim = self._victim() if len(self._slots) < self.descriptors else None
                if victim is None:
                    return Refused("full", address, self.total)
                self._forget(victim)
            slot = Slot(address=address, conn=conn, deadline=deadline, idle_since=now)
            self._slots.add(slot)
            self._per_address[address] += 1
            self._open += 1
            return slot, victim

    def _victim(self) -> Slot | None:
        """The idle connection of the address holding most, idle longest among its own: a board
        with one connection goes last, a flood's oldest silent socket first."""
        idle = [s for s in self._slots if not s.evicted and s.idle_since is not None]
        return max(
            idle,
            key=lambda s: (self._per_address[s.address], -(s.idle_since or 0.0)),
            default=None,
        )

    def _forget(self, slot: Slot) -> None:
        slot.evicted = True
        self._open -= 1
        self._per_address[slot.address] -= 1
        if not self._per_address[slot.address]:
            del self._per_address[slot.address]

    def release(self, slot: Slot) -> None:
        """The worker closed the connection."""
        with self._lock:
            self._slots.discard(slot)
            if not slot.evicted:
                self._forget(slot)

    def swap(self, slot: Slot, conn: socket.socket) -> bool:
        """The connection is now `conn` (its TLS wrapper); False if it was evicted meanwhile."""
        with self._lock:
            slot.conn = conn
            return not slot.evicted

    def waiting(self, slot: Slot, *, now: float, deadline: float) -> bool:
        """Waiting for a request head (idle since the last answer); False if evicted."""
        with self._lock:
            if slot.idle_since is None:
                slot.idle_since = now
            slot.deadline = deadline
            return not slot.evicted

    def busy(self, slot: Slot) -> bool:
        """Answering a request: never evicted from now until `waiting`; False if already was."""
        with self._lock:
            slot.idle_since, slot.deadline = None, math.inf
            return not slot.evicted

    def expired(self, now: float) -> list[socket.socket]:
        """Connections past their deadline (each returned once), to be shut down."""
        with self._lock:
            late = [slot for slot in self._slots if slot.deadline <= now]
            for slot in late:
                slot.deadline = math.inf
            return [slot.conn for slot in late]

    def sockets(self) -> list[socket.socket]:
        with self._lock:
            return [slot.conn for slot in self._slots]

    @property
    def open(self) -> int:
        """Connections held and not evicted."""
        with self._lock:
            return self._open


@dataclass(slots=True)
class Throttle:
    """At most one note per key every `every` seconds, saying how many were held back."""

    every: float = 10.0
    _last: dict[str, float] = field(default_factory=dict)
    _held: Counter[str] = field(default_factory=Counter)

    def due(self, key: str, now: float) -> int | None:
        """None: stay quiet. Else note now, with this many like it held back since the last."""
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._held[key] += 1
            return None
        if len(self._last) > 4096:  # many addresses: forget, at worst a note comes early
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        return self._held.pop(key, 0)


def descriptor_budget() -> int:
    """Connections that fit under the soft RLIMIT_NOFILE, keeping FD_MARGIN descriptors free."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 1 << 30
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 30 if soft == resource.RLIM_INFINITY else max(1, soft - FD_MARGIN)


def raise_descriptor_limit(connections: int) -> None:
    """Lift the soft RLIMIT_NOFILE to the hard one when it is too low for `connections` and as
    many evicted sockets still closing.

    Many systems start processes at a soft limit of 1024 (kept low for select(), which this
    server does not use) under a hard limit of 524288: that would cap the default budget."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + FD_MARGIN
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    raised = wanted if hard == resource.RLIM_INFINITY else hard
    if raised > soft:
        # Refused (a container's policy): the budget then stays under the soft limit instead.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
