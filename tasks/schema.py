"""Validators for project.yaml values: each takes (value, path) and returns a typed value or raises.

Pure, no I/O. Messages follow house style: what is wrong, quoted values, then `; how to fix`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tasks.errors import ConfigError, KeyPath

__all__ = [
    "Check",
    "Url",
    "boolean",
    "did_you_mean",
    "integer",
    "mapping",
    "one_of",
    "optional",
    "pattern",
    "shown",
    "string",
    "url",
]

T = TypeVar("T")
Check = Callable[[object, KeyPath], Any]


def shown(value: object) -> str:
    """A value as a message quotes it: strings in single quotes, YAML spellings for the rest."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{value}'" if isinstance(value, str) else repr(value)


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """`did you mean 'size'?` for a close match, else the list of valid choices."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid: " + ", ".join(sorted(choices))


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
        if isinstance(value, str) and value.strip().isdigit():
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
            path, f"host '{parts.hostname}' is not ASCII", "write its xn-- (punycode) form"
        )
    if not parts.path or parts.path.endswith("/") or parts.query or parts.fragment:
        raise ConfigError(path, f"{shown(text)} must name a file", "end it with /<app>.bin")
    if len(text) > 255:
        # simple/advanced examples keep the URL in a 256-byte buffer (OTA_URL_SIZE).
        raise ConfigError(path, f"the URL has {len(text)} characters; ESP-IDF examples hold 255")
    return Url(scheme="https", host=parts.hostname, port=port or 443, path=parts.path)
