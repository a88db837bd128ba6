"""The host in the OTA URL (`ota.url`): `auto` becomes this machine's LAN address, `OTA_HOST` wins.

The one impure piece is `lan_address()`; `resolve_host` takes it as a parameter so tests inject it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping

from ..errors import ConfigError, clip

__all__ = ["AUTO", "FALLBACK_HOST", "host_problem", "is_ip", "lan_address", "resolve_host"]

# RFC 1123 labels: letters, digits and inner hyphens, 1 to 63 characters; 253 in all.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

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
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
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
