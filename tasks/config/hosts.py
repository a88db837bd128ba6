"""The host in the OTA URL (`ota.url`): `auto` becomes this machine's LAN address, `OTA_HOST` wins.

The one impure piece is `lan_address()`; `resolve_host` takes it as a parameter so tests inject it.
Loading knows only `static_host` (what project.yaml or $OTA_HOST names); the host task finds the
LAN address behind `auto` and hands it over in build/facts/host.json (`ServerHost`).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ToolError, clip
from ..files import ShapeError, field, read_json, schema_checked, write_if_changed

__all__ = [
    "AUTO",
    "FALLBACK_HOST",
    "ServerHost",
    "host_problem",
    "is_ip",
    "lan_address",
    "read",
    "resolve_host",
    "static_host",
    "write",
]

# RFC 1123 labels: letters, digits and inner hyphens, 1 to 63 characters; 253 in all.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # compiled by re on first use

AUTO = "auto"
FALLBACK_HOST = "127.0.0.1"
# Any routable address works: connect() on a UDP socket only picks the route, it sends nothing.
_PROBE_V4 = ("8.8.8.8", 53)

_NO_ROUTE = (
    "ota.url host 'auto': this machine has no default route, using 127.0.0.1; "
    "real boards cannot reach it (set OTA_HOST to the address boards use)"
)


def lan_address() -> str | None:
    """The IPv4 address of the interface holding the default route, or None without one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(_PROBE_V4)
            address = sock.getsockname()[0]
    except OSError:
        return None
    # An unbound or odd stack reports 0.0.0.0; boards cannot use that either.
    return str(address) if address and address != "0.0.0.0" else None


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (without brackets)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_problem(host: str) -> str | None:
    """Why `host` cannot be an OTA URL host (None when it can): a DNS name or an IP literal.

    A zone id (`fe80::1%eth0`) names this machine's interface, which means nothing on a board.
    """
    if "%" in host:
        return "has a zone id ('%...'), which names an interface of this machine, not a board's"
    if is_ip(host):
        return None
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(re.fullmatch(_LABEL, label) for label in labels):
        return "is neither an IP address nor a DNS name (labels of a-z, 0-9, '-', 1 to 63 each)"
    return None


def resolve_host(
    url_host: str,
    env: Mapping[str, str],
    *,
    lan: Callable[[], str | None] = lan_address,
) -> tuple[str, str | None]:
    """The host boards will use, and a warning text when the result is surely unreachable.

    Args:
        url_host: the host part of `ota.url`, or `auto`.
        env: the environment; a non-empty `OTA_HOST` overrides `url_host`.
        lan: the LAN lookup (injected by tests).

    Returns:
        `(host, warning)`: names lower-cased, IP literals without brackets; warning is None or
        one line for `errors.warn`.
    """
    host = static_host(url_host, env)
    if host is not None:
        return host, None
    address = lan()
    if address is None:
        return FALLBACK_HOST, _NO_ROUTE
    return address, None


def static_host(url_host: str, env: Mapping[str, str]) -> str | None:
    """The host boards use when project.yaml or a non-empty `OTA_HOST` names one (normalized as
    `resolve_host` returns it); None for `auto`, which this machine's routes decide.

    Raises:
        ConfigError: `OTA_HOST` is not a host name or address.
    """
    override = env.get("OTA_HOST", "").strip()
    host = override or url_host.strip()
    if override and override.lower() != AUTO:
        bare = override[1:-1] if override.startswith("[") and override.endswith("]") else override
        problem = host_problem(bare)
        if problem:
            raise ConfigError(
                ("ota", "url"),
                f"OTA_HOST '{clip(override)}' {problem}",
                "set OTA_HOST to a host name or address only",
            )
    return None if host.lower() == AUTO else _normalized(host)


def _normalized(host: str) -> str:
    # A bracketed IPv6 literal may arrive from OTA_HOST; certificates and sockets want it bare.
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return bare if is_ip(bare) else bare.lower()


SCHEMA = 1
_FIX = "run `doit host`"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerHost:
    """build/facts/host.json: the address `auto` stands for on this machine, as the host task
    found it (the tasks that put the URL in a file or a certificate read it in their action)."""

    host: str
    schema: int = SCHEMA

    def to_json(self) -> dict[str, object]:
        return {"schema": self.schema, "host": self.host}

    @classmethod
    def from_json(cls, data: object, *, source: Path) -> ServerHost:
        """The host in `data` (parsed JSON from `source`).

        Raises:
            ToolError: one line naming `source`, when it is of another schema or shape.
        """
        data = schema_checked(data, SCHEMA, what="a server host", source=source, fix=_FIX)
        try:
            return cls(host=field(data, "host", str))
        except ShapeError as error:
            raise ToolError(f"{source}: not a server host ({error}); {_FIX}") from None


def read(path: Path) -> ServerHost:
    return ServerHost.from_json(read_json(path, fix=_FIX), source=path)


def write(found: ServerHost, path: Path) -> None:
    """Written only when the address changed: what reads it stays up to date otherwise."""
    write_if_changed(path, json.dumps(found.to_json(), indent=1, sort_keys=True) + "\n")
