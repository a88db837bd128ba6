"""The host in the OTA URL (`ota.url`): `auto` becomes this machine's LAN address, `OTA_HOST` wins.

The one impure piece is `lan_address()`; `resolve_host` takes it as a parameter so tests inject it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping

__all__ = ["AUTO", "FALLBACK_HOST", "is_ip", "lan_address", "resolve_host"]

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
    override = env.get("OTA_HOST", "").strip()
    host = override or url_host.strip()
    if host.lower() == AUTO:
        address = lan()
        if address is None:
            return FALLBACK_HOST, _NO_ROUTE
        return address, None
    return _normalized(host), None


def _normalized(host: str) -> str:
    # A bracketed IPv6 literal may arrive from OTA_HOST; certificates and sockets want it bare.
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return bare if is_ip(bare) else bare.lower()
