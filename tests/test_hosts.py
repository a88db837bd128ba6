"""The OTA URL host: OTA_HOST override, `auto` via an injected LAN lookup, normalisation."""

from __future__ import annotations

import socket

import pytest
from esp_ota_doit.config import hosts
from esp_ota_doit.config.hosts import is_ip, lan_address, resolve_host

NO_ROUTE = (
    "ota.url host 'auto': this machine has no default route, using 127.0.0.1; "
    "real boards cannot reach it (set OTA_HOST to the address boards use)"
)


def _no_lan() -> str | None:
    return None


def _lan() -> str | None:
    return "192.168.1.7"


def _lan_must_not_be_asked() -> str | None:
    raise AssertionError("the LAN lookup ran although the host was given")


@pytest.mark.parametrize(
    ("url_host", "env", "expected"),
    [
        ("auto", {"OTA_HOST": "10.0.0.5"}, "10.0.0.5"),
        ("ota.example.com", {"OTA_HOST": "Build-Box.LAN"}, "build-box.lan"),
        ("auto", {"OTA_HOST": "[fe80::1]"}, "fe80::1"),
        ("auto", {"OTA_HOST": " 10.0.0.6 "}, "10.0.0.6"),
        ("OTA.Example.COM", {}, "ota.example.com"),
        ("10.0.0.5", {}, "10.0.0.5"),
        ("::1", {}, "::1"),
        ("10.0.0.5", {"OTA_HOST": ""}, "10.0.0.5"),
    ],
)
def test_resolve_host__given(url_host: str, env: dict[str, str], expected: str) -> None:
    assert resolve_host(url_host, env, lan=_lan_must_not_be_asked) == (expected, None)


def test_resolve_host__auto_uses_lan_address() -> None:
    assert resolve_host("auto", {}, lan=_lan) == ("192.168.1.7", None)
    assert resolve_host("AUTO", {}, lan=_lan) == ("192.168.1.7", None)


def test_resolve_host__ota_host_auto_means_auto() -> None:
    assert resolve_host("10.0.0.5", {"OTA_HOST": "auto"}, lan=_lan) == ("192.168.1.7", None)


def test_resolve_host__auto_without_route_falls_back_with_warning() -> None:
    assert resolve_host("auto", {}, lan=_no_lan) == ("127.0.0.1", NO_ROUTE)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("10.0.0.5", True),
        ("::1", True),
        ("fe80::1", True),
        ("2001:db8::42", True),
        ("localhost", False),
        ("ota.example.com", False),
        ("10.0.0", False),
        ("[::1]", False),
        ("", False),
        ("010.0.0.1", False),
    ],
)
def test_is_ip(host: str, expected: bool) -> None:
    assert is_ip(host) is expected


def test_lan_address__real_lookup_is_an_ip_or_none() -> None:
    address = lan_address()
    assert address is None or (is_ip(address) and address != "0.0.0.0")


def test_lan_address__no_route_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(self: socket.socket, address: object) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", unreachable)
    assert lan_address() is None


def test_resolve_host__default_lookup_is_lan_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default argument is bound at definition time, so patch the socket, not the function.
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: None)
    monkeypatch.setattr(socket.socket, "getsockname", lambda self: ("10.9.8.7", 4242))
    assert hosts.resolve_host("auto", {}) == ("10.9.8.7", None)


@pytest.mark.parametrize(
    ("url_host", "env", "expected"),
    [
        ("auto", {}, None),
        ("auto", {"OTA_HOST": "AUTO"}, None),
        ("auto", {"OTA_HOST": "[fe80::1]"}, "fe80::1"),
        ("Ota.Example.com", {}, "ota.example.com"),
    ],
)
def test_static_host__only_what_is_named(
    url_host: str, env: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What loading knows without a probe; `auto` is left to the host task."""
    monkeypatch.setattr(hosts, "lan_address", _lan_must_not_be_asked)
    assert hosts.static_host(url_host, env) == expected
