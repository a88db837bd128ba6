"""Validators for project.yaml values, each (value, path) -> a typed value or ConfigError, and the
unknown/missing key check of a section. Pure, no I/O. Messages follow house style: what is wrong,
quoted values, then `; how to fix`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..errors import ConfigError, KeyPath, clip
from ..idf import chips, releases
from . import hosts

_URL_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")

__all__ = [
    "Check",
    "Invalid",
    "UnknownKeyError",
    "Url",
    "app_path",
    "boolean",
    "config_options",
    "did_you_mean",
    "encrypt_scheme",
    "flash_size",
    "idf_version",
    "integer",
    "key_errors",
    "mapping",
    "one_of",
    "optional",
    "pattern",
    "relative_file",
    "relative_path",
    "shown",
    "sign_command",
    "sign_scheme",
    "ssid",
    "string",
    "table_offset",
    "url",
    "version",
    "wifi_password",
    "yaml_text",
]

T = TypeVar("T")
Check = Callable[[object, KeyPath], Any]

_SDK_NAME = r"CONFIG_[A-Z0-9_]+"  # compiled by re on first use


class UnknownKeyError(ConfigError):
    """Reported at the key, not the value."""


class Invalid(Exception):
    """A section with one or more errors; the parent collects them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors


def yaml_text(value: object) -> str:
    """A value as project.yaml spells it: null, true/false, {}, hex ints in hex, "" for empty."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{}" if not value else "a mapping"
    if isinstance(value, list):
        return "[]" if not value else "a list"
    if value == "":
        return '""'
    return str(value) if isinstance(value, str) else repr(value)  # HexInt's repr is hex


def shown(value: object) -> str:
    """A value as a message quotes it: strings in single quotes, YAML spellings for the rest."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{clip(value)}'" if isinstance(value, str) else clip(yaml_text(value))


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """`did you mean 'size'?` for a close match, else the list of valid choices."""
    import difflib  # for a mistake only: not on every run's import (bench/noop.py)

    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid: " + ", ".join(sorted(choices))


def key_errors(
    data: Mapping[Any, Any], path: KeyPath, known: Mapping[str, str], required: Collection[str]
) -> list[ConfigError]:
    """Unknown keys (with did-you-mean) and missing required ones; `known` maps key -> example.

    A misspelt required key is reported once, as unknown, not also as missing.
    """
    errors: list[ConfigError] = []
    meant: set[str] = set()
    for key in data:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(str(key), list(known), n=1)
            meant.update(close)
            hint = did_you_mean(str(key), known)
            errors.append(UnknownKeyError((*path, key), f"unknown key {shown(key)}", hint))
    for key in required:
        if key not in data and key not in meant:
            hint = f"add {key}: {known[key]}" if known[key] else ""
            errors.append(ConfigError(path, f"missing key {shown(key)}", hint))
    return errors


def mapping(value: object, path: KeyPath, *, what: str = "a mapping") -> Mapping[Any, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected {what}, got {shown(value)}")
    return value


def string(value: object, path: KeyPath) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a string, got {shown(value)}", "quote it")
    return value


def pattern(regex: str, description: str) -> Check:
    """A string matching `regex` (fully); `description` says what is allowed."""
    compiled = re.compile(regex)

    def check(value: object, path: KeyPath) -> str:
        text = string(value, path)
        if not compiled.fullmatch(text):
            raise ConfigError(path, f"{shown(text)} is not valid", f"use {description}")
        return text

    return check


def boolean(value: object, path: KeyPath) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {shown(value)}")
    return value


def integer(minimum: int, maximum: int) -> Check:
    """An int in [minimum, maximum]; a string of digits (as ${VAR} expands) counts too."""

    def check(value: object, path: KeyPath) -> int:
        if isinstance(value, str) and value.strip().isdigit() and len(value) <= 40:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(path, f"expected a whole number, got {shown(value)}")
        if not minimum <= value <= maximum:
            raise ConfigError(path, f"{value} is out of range", f"use {minimum} to {maximum}")
        return value

    return check


def one_of(*choices: str) -> Check:
    """One of the given words; anything else gets a did-you-mean."""

    def check(value: object, path: KeyPath) -> str:
        if not isinstance(value, str) or value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else None
            listed = ", ".join(choices)
            raise ConfigError(path, f"{shown(value)} is not one of: {listed}", hint or "")
        return value

    return check


SIGN_SCHEMES = ("rsa3072", "ecdsa256")
# Why each other espsecure scheme is refused (ESP-IDF v5.3 bootloader Kconfig).
_REFUSED_SCHEMES = {
    "ecdsa192": "NIST P-192 is the weaker of Secure Boot V2's two ECDSA curves",
    "ecdsa384": "ESP-IDF v5.3 apps cannot verify NIST P-384 signatures",
    "ecdsa": "that is Secure Boot V1's scheme (ESP32 only, deprecated)",
    "rsa": "the Secure Boot V2 RSA scheme is spelt rsa3072",
}


def sign_scheme(value: object, path: KeyPath) -> str:
    """A Secure Boot V2 app-signing scheme this project supports."""
    if isinstance(value, str) and value in _REFUSED_SCHEMES:
        raise ConfigError(
            path,
            f"{shown(value)} is refused: {_REFUSED_SCHEMES[value]}",
            "use rsa3072, or ecdsa256 where the target has it",
        )
    return str(one_of(*SIGN_SCHEMES)(value, path))


def encrypt_scheme(value: object, path: KeyPath) -> str:
    """A pre-encrypted image scheme of esp_encrypted_img this project makes."""
    if value in ("ecies", "ecc256", "ecc-256"):
        raise ConfigError(
            path,
            f"{shown(value)} is refused: esp_encrypted_img's ECIES scheme derives each board's key "
            "from its own eFuse HMAC key, so one served image cannot reach a fleet",
            "use rsa3072",
        )
    return str(one_of("rsa3072")(value, path))


def sign_command(value: object, path: KeyPath) -> str:
    """A command line (split like a shell, not run by one) naming {data} and {signature}."""
    import shlex

    text = string(value, path)
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise ConfigError(
            path, f"cannot be split into words ({error})", "close the quote"
        ) from None
    for placeholder in ("{data}", "{signature}"):
        if not any(placeholder in word for word in words):
            raise ConfigError(
                path,
                f"names no {placeholder}",
                "the command signs the file {data} and writes the signature to {signature}",
            )
    return text


def optional(check: Check) -> Check:
    """`check`, or None when the value is null."""

    def nullable(value: object, path: KeyPath) -> object:
        return None if value is None else check(value, path)

    return nullable


@dataclass(frozen=True, slots=True, kw_only=True)
class Url:
    """An https URL, split; `host` is what was written (`auto` stays `auto` here)."""

    scheme: str
    host: str
    port: int
    path: str

    def with_host(self, host: str) -> str:
        shown_host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{shown_host}:{self.port}{self.path}"


def url(value: object, path: KeyPath) -> Url:
    """An https URL with a host and a file path, as ESP-IDF's OTA examples take it."""
    text = string(value, path)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise ConfigError(path, f"{shown(text)} is not a valid URL ({error})") from None
    if parts.scheme != "https":
        raise ConfigError(
            path,
            f"{shown(text)} must start with https://",
            "esp_https_ota refuses plain http unless CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP is set",
        )
    if not parts.hostname:
        raise ConfigError(path, f"{shown(text)} has no host", "write https://auto:8070/app.bin")
    if not parts.hostname.isascii():
        raise ConfigError(
            path, f"host {shown(parts.hostname)} is not ASCII", "write its xn-- (punycode) form"
        )
    problem = None if parts.hostname == hosts.AUTO else hosts.host_problem(parts.hostname)
    if problem:
        raise ConfigError(path, f"host {shown(parts.hostname)} {problem}", "fix the host")
    if port == 0:
        raise ConfigError(path, f"{shown(text)} has port 0", "use a port from 1 to 65535")
    if not parts.path or parts.path.endswith("/") or parts.query or parts.fragment:
        raise ConfigError(path, f"{shown(text)} must name a file", "end it with /<app>.bin")
    segments = parts.path.split("/")[1:]
    if any(part in (".", "..") or not _URL_SEGMENT.fullmatch(part) for part in segments):
        # The server and nginx serve the path literally: no escapes, no dot segments.
        raise ConfigError(
            path,
            f"path {shown(parts.path)} must be /name segments of letters, digits, '.', '_', '-'",
            "like /hello_world.bin",
        )
    if parts.path in ("/manifest.json", "/manifest"):
        raise ConfigError(
            path, f"path {shown(parts.path)} is where the manifest is served", "rename the image"
        )
    if len(text) > 255:
        # simple/advanced examples keep the URL in a 256-byte buffer (OTA_URL_SIZE).
        raise ConfigError(path, f"the URL has {len(text)} characters; ESP-IDF examples hold 255")
    return Url(
        scheme="https", host=parts.hostname, port=443 if port is None else port, path=parts.path
    )


# --- the value types of project.yaml ----------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def no_control(text: str, path: KeyPath, *, secret: bool = False) -> str:
    """sdkconfig is line-based and has no escape for a newline (kconfiglib escapes only \\ and
    \"): a control character in a value would end it or start a new CONFIG_ line."""
    found = _CONTROL.search(text)
    if found:
        where = "" if secret else f" in {shown(text)}"
        raise ConfigError(
            path, f"control character {found.group()!r}{where}", "sdkconfig values are one line"
        )
    return text


def bind_address(value: object, path: KeyPath) -> str:
    """An IP address to listen on (0.0.0.0 or :: for every interface)."""
    text = string(value, path)
    if "%" in text or not hosts.is_ip(text):
        raise ConfigError(
            path, f"{shown(text)} is not an IP address", "like 0.0.0.0 or 192.168.1.2"
        )
    return text


def version(value: object, path: KeyPath) -> str:
    """PROJECT_VER: 1 to 31 bytes, and not a bare number (YAML would turn 1.10 into 1.1)."""
    if isinstance(value, float):
        raise ConfigError(path, f"{value!r} reads as a number", f'quote it: "{value!r}"')
    text = string(value, path)
    if not text or len(text.encode()) > 31:
        # esp_app_desc_t.version is char[32]; ESP-IDF truncates silently.
        raise ConfigError(path, f"{shown(text)} must be 1 to 31 bytes (esp_app_desc_t.version)")
    return no_control(text, path)


def idf_version(value: object, path: KeyPath) -> str:
    """An ESP-IDF major.minor, quoted."""
    if isinstance(value, float):
        raise ConfigError(path, f"{value!r} reads as a number", f'quote it: "{value!r}"')
    text = str(pattern(r"\d+\.\d+", 'major.minor, like "5.3"')(value, path))
    if text not in releases.VERSIONS:
        raise ConfigError(
            path,
            f"ESP-IDF {text} is not a release this project builds with",
            "use one of: " + ", ".join(releases.VERSIONS),
        )
    return text


def relative_path(value: object, path: KeyPath) -> str:
    """A path that stays inside the app folder: not absolute, no '..'."""
    text = string(value, path)
    parts = Path(text).parts
    if not parts or Path(text).is_absolute() or ".." in parts:
        raise ConfigError(
            path,
            f"{shown(text)} must be a path inside the app folder",
            "like server_certs/ca_cert.pem",
        )
    return text


def relative_file(value: object, path: KeyPath) -> str:
    """A file named relative to project.yaml (its existence is checked when it is read)."""
    text = string(value, path)
    if Path(text).is_absolute():
        raise ConfigError(
            path, f"'{text}' is an absolute path", "name it relative to project.yaml's folder"
        )
    return text


def app_path(value: object, path: KeyPath) -> str:
    """An app project: idf:<path inside ESP-IDF>, or a folder (its existence is checked later)."""
    text = string(value, path)
    if not text.strip() or text.strip() == "idf:":
        raise ConfigError(
            path, "empty app path", "write idf:examples/... or a folder next to project.yaml"
        )
    return text


def flash_size(value: object, path: KeyPath) -> int:
    """A flash size word like 4MB, in bytes."""
    text = one_of(*chips.FLASH_SIZES)(value, path)
    return int(text[:-2]) * 1024 * 1024


def table_offset(value: object, path: KeyPath) -> int:
    """CONFIG_PARTITION_TABLE_OFFSET: a sector-aligned offset below 1MB."""
    offset = integer(0x1000, 0xFF000)(value, path)
    if offset % 0x1000:
        raise ConfigError(path, f"{offset:#x} is not a multiple of 0x1000", "use 0x8000 or 0x9000")
    return int(offset)


def ssid(value: object, path: KeyPath) -> str:
    """A Wi-Fi network name: 1 to 32 bytes."""
    text = string(value, path)
    if not 1 <= len(text.encode()) <= 32:
        raise ConfigError(
            path, f"an SSID has 1 to 32 bytes, {shown(text)} has {len(text.encode())}"
        )
    return no_control(text, path)


def wifi_password(value: object, path: KeyPath) -> str:
    """A WPA2 passphrase (8 to 63 characters, or 64 hex digits), or empty for an open network."""
    # Never echo the value: it is a secret.
    if not isinstance(value, str):
        raise ConfigError(path, "expected a string", 'write password: "${WIFI_PASSWORD}"')
    if value and not (8 <= len(value) <= 63 or re.fullmatch(r"[0-9a-fA-F]{64}", value)):
        raise ConfigError(
            path,
            f"a WPA2 passphrase has 8 to 63 characters, this one has {len(value)}",
            "check $WIFI_PASSWORD (empty means an open network)",
        )
    return no_control(value, path, secret=True)


def config_options(owner_of: Callable[[str], str | None]) -> Check:
    """A mapping of CONFIG_ options to bools, numbers or strings, as ((name, value), ...).

    `owner_of(name)` is the project.yaml key that sets option `name`, if any: those are refused.
    """

    def check(value: object, path: KeyPath) -> tuple[tuple[str, bool | int | str], ...]:
        data = mapping(value, path, what="a mapping of CONFIG_ options")
        items: list[tuple[str, bool | int | str]] = []
        errors: list[ConfigError] = []
        for name, raw in data.items():
            where = (*path, name)
            if not isinstance(name, str) or not re.fullmatch(_SDK_NAME, name):
                hint = f"write CONFIG_{name}" if isinstance(name, str) and name.isupper() else ""
                message = f"{shown(name)} is not a CONFIG_ option name"
                errors.append(UnknownKeyError(where, message, hint))
            elif owner := owner_of(name):
                errors.append(
                    UnknownKeyError(where, f"{name} is set from {owner}", f"set {owner} instead")
                )
            elif isinstance(raw, str) and _CONTROL.search(raw):
                try:
                    no_control(raw, where)
                except ConfigError as error:
                    errors.append(error)
            elif isinstance(raw, bool | int | str):
                items.append((name, raw))
            else:
                errors.append(
                    ConfigError(where, f"expected a bool, number or string, got {shown(raw)}")
                )
        if errors:
            raise Invalid(errors)
        return tuple(items)

    return check
