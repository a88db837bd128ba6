"""What an ESP-IDF app's own C/C++ code does about OTA (esp_https_ota, esp_http_client_config_t
and esp_ota_ops of ESP-IDF v5.3.2), read under its effective configuration: the sources of main/
and of its own components/, with `#if`/`#ifdef` decided as sdkconfig.h would decide them.

Pure over texts and a config mapping (sdkconfig.json's names and values), plus `scan`, which reads
an app folder. The facts are what the tool plays and warns about, never the app's name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DECRYPT_CALL",
    "AppCode",
    "Overrides",
    "Payload",
    "Trust",
    "decrypts",
    "facts",
    "payload_refusal",
    "scan",
    "sources",
    "warnings",
]

Trust = Literal["embedded_ca", "bundle"]
Payload = Literal["plain", "pre-encrypted", "delta"]
_SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp"}
_SKIPPED_DIRS = {"build", "managed_components", "test", "tests", "test_apps"}
# esp_https_ota's request size when partial download leaves max_http_request_size 0
# (DEFAULT_REQUEST_SIZE in esp_https_ota.c).
DEFAULT_REQUEST_SIZE = 64 * 1024

# Patterns as text, compiled (and cached) by re on first use: the build's planners import this
# module for its types, and only the actions read code (bench/noop.py).
_OTA_CALL = r"\b(esp_https_ota|esp_https_ota_begin|esp_ota_begin)\s*\("
# A comparison of two esp_app_desc_t.version fields; one with the last image that failed to
# boot (esp_ota_get_last_invalid_partition: native_ota_example's `invalid_app_info`) refuses only
# an image that already rolled back, not the running version.
_VERSION_COMPARE = (
    r"\b(?:memcmp|strn?cmp|strcasecmp|strncasecmp)\s*\(\s*(?![^,;]*invalid)[^,;]*?\bversion\b"
    r"[^,;]*?,\s*(?![^,;]*invalid)[^,;]*?\bversion\b"
)
# The version read into numbers (sscanf, strtoul, atoi...) and compared as such: a comparison
# this reading cannot follow, so an assumption with its key.
_VERSION_PARSE = r"\b(sscanf|strto[u]?l{1,2}|atoi|atol)\s*\(\s*[^,;]*?(?:->|\.)version\b"
_SKIP_CN = r"\bskip_cert_common_name_check\s*=\s*([^,;}\n]+)"
_CERT_PEM = r"\bcert_pem\s*=\s*([^,;}\n]+)"
_BUNDLE = r"\bcrt_bundle_attach\s*=\s*([^,;}\n]+)"
# Its own TLS client (mbedtls, esp-tls) attaching ESP-IDF's bundle: esp_crt_bundle_attach(&conf).
_BUNDLE_CALL = r"\besp_crt_bundle_attach\s*\("
_GLOBAL_STORE = r"\buse_global_ca_store\s*=\s*(true|1)\b"
_PARTIAL = r"\bpartial_http_download\s*=\s*([^,;}\n]+)"
_REQUEST_SIZE = r"\bmax_http_request_size\s*=\s*([^,;}\n]+)"
_CONFIRM = r"\besp_ota_mark_app_valid_cancel_rollback\s*\("
# What an app that takes pre-encrypted images calls (esp_encrypted_img.h, v2 API).
DECRYPT_CALL = "esp_encrypted_img_decrypt_start"
_ENCRYPTED = rf"\b({DECRYPT_CALL}|decrypt_cb)\b"
_COMMENTS = r"(?s)//[^\n]*|/\*.*?\*/"
_DELTA = r"\besp_delta_ota_\w+\s*\("
_WIFI = r"\besp_wifi_(init|start|connect)\s*\("
_ETHERNET = r"\besp_eth_(driver_install|start)\s*\("
_TRUE = r"\s*(true|1)\s*"
_NULL = r"\s*(NULL|nullptr|0)\s*"


@dataclass(frozen=True, slots=True, kw_only=True)
class Overrides:
    """What project.yaml states where the code cannot be read (apps.<name>: null = the code's)."""

    compares_version: bool | None = None
    skips_host_check: bool | None = None
    trusts: Trust | None = None
    confirms_update: bool | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Overrides:
        """As to_json wrote them; anything else is no statement (null)."""

        def flag(key: str) -> bool | None:
            value = data.get(key)
            return value if isinstance(value, bool) else None

        trusts = data.get("trusts")
        return cls(
            compares_version=flag("compares_version"),
            skips_host_check=flag("skips_host_check"),
            trusts="bundle" if trusts == "bundle" else "embedded_ca" if trusts else None,
            confirms_update=flag("confirms_update"),
        )

    def to_json(self) -> dict[str, bool | str | None]:
        return {
            "compares_version": self.compares_version,
            "skips_host_check": self.skips_host_check,
            "trusts": self.trusts,
            "confirms_update": self.confirms_update,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AppCode:
    """What the app's code does, under the configuration it was read with."""

    ota_client: bool  # it calls esp_https_ota, esp_https_ota_begin or esp_ota_begin
    compares_version: bool  # refuses an image whose esp_app_desc_t.version is the running one
    skips_host_check: bool  # skip_cert_common_name_check = true
    trusts: tuple[Trust, ...]  # cert_pem (the embedded CA) and/or crt_bundle_attach
    payload: Payload
    partial: bool  # partial_http_download
    request_size: int  # max_http_request_size (DEFAULT_REQUEST_SIZE when 0 or unset)
    confirms_update: bool  # calls esp_ota_mark_app_valid_cancel_rollback()
    network: tuple[str, ...]  # "wifi", "ethernet"
    # CONFIG_MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH names the file where the CA is placed.
    bundle_holds_ca: bool = False
    # The configuration's CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: confirming matters only then.
    under_rollback: bool = False
    assumed: tuple[str, ...] = ()  # one line per fact the code could not tell for sure

    @property
    def trusts_project_ca(self) -> bool:
        """The app accepts a server certificate the project's CA signed (assumed, where its own
        code sets no trust at all)."""
        return (
            not self.trusts
            or "embedded_ca" in self.trusts
            or ("bundle" in self.trusts and self.bundle_holds_ca)
        )

    @property
    def bundle_only(self) -> bool:
        """It trusts ESP-IDF's certificate bundle alone, which holds no project CA."""
        return bool(self.trusts) and not self.trusts_project_ca

    def to_json(self) -> dict[str, object]:
        return {
            "ota_client": self.ota_client,
            "compares_version": self.compares_version,
            "skips_host_check": self.skips_host_check,
            "trusts": list(self.trusts),
            "payload": self.payload,
            "partial": self.partial,
            "request_size": self.request_size,
            "confirms_update": self.confirms_update,
            "network": list(self.network),
            "bundle_holds_ca": self.bundle_holds_ca,
            "under_rollback": self.under_rollback,
            "assumed": list(self.assumed),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppCode:
        """The facts as to_json wrote them (the caller checks the shape of the whole file)."""
        return cls(
            ota_client=bool(data["ota_client"]),
            compares_version=bool(data["compares_version"]),
            skips_host_check=bool(data["skips_host_check"]),
            trusts=tuple(str(t) for t in data["trusts"]),  # type: ignore[misc]
            payload=data["payload"],
            partial=bool(data["partial"]),
            request_size=int(data["request_size"]),
            confirms_update=bool(data["confirms_update"]),
            network=tuple(str(n) for n in data["network"]),
            bundle_holds_ca=bool(data["bundle_holds_ca"]),
            under_rollback=bool(data["under_rollback"]),
            assumed=tuple(str(line) for line in data["assumed"]),
        )


# --- the facts -----------------------------------------------------------------------------------


def _value(expression: str, config: Mapping[str, Any]) -> int | None:
    text = expression.strip().strip("()")
    if re.fullmatch(r"\d+|0[xX][0-9a-fA-F]+", text):
        return int(text, 0)
    if text.startswith("CONFIG_"):
        value = config.get(text.removeprefix("CONFIG_"))
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None


def _flag(pattern: str, code: str) -> bool | None:
    """True where the code sets the field to true, False where nowhere, None where it sets it
    to something this reading cannot evaluate."""
    values = [found.group(1) for found in re.finditer(pattern, code)]
    if any(re.fullmatch(_TRUE, value) for value in values):
        return True
    if all(re.fullmatch(_NULL, value) or value.strip() == "false" for value in values):
        return False
    return None


def facts(
    texts: Iterable[str],
    config: Mapping[str, Any],
    *,
    examples_common: bool,
    overrides: Overrides = Overrides(),
    app: str = "<name>",
    ca_cert: str | None = None,
) -> AppCode:
    """The app's OTA behaviour from its source texts under `config` (sdkconfig.json's names).

    Where the code cannot be read for sure, the fact says what was assumed, with the
    apps.<app> key that states it.
    """
    from .preprocessor import active_code

    pairs = [active_code(text, config) for text in texts]
    certain = "\n".join(code for code, _ in pairs)
    maybe = "\n".join(code for _, code in pairs)
    both = certain + "\n" + maybe
    assumed: list[str] = []

    def known(pattern: str, what: str, key: str, default: bool) -> bool:
        if re.search(pattern, certain):
            return True
        if re.search(pattern, maybe):
            assumed.append(
                f"{what}: assumed {'yes' if default else 'no'} (only under a macro the "
                f"configuration does not decide); state it with apps.{app}.{key}"
            )
            return default
        return False

    ota_client = re.search(_OTA_CALL, both) is not None
    compares = known(_VERSION_COMPARE, "compares versions before writing", "compares_version", True)
    parsed = re.search(_VERSION_PARSE, both)
    if not compares and parsed:
        assumed.append(
            f"compares versions before writing: assumed yes (its code reads the version with "
            f"{parsed.group(1)}(), a comparison this reading cannot follow); state it with "
            f"apps.{app}.compares_version"
        )
        compares = True
    skip = _flag(_SKIP_CN, both)
    if skip is None:
        assumed.append(
            "skip_cert_common_name_check: set from a value the code computes; assumed false "
            f"(the server's name is checked); state it with apps.{app}.skips_host_check"
        )
    trusts = _trusts(certain, maybe, ota_client, assumed, app)
    confirms = known(
        _CONFIRM,
        "confirms itself (esp_ota_mark_app_valid_cancel_rollback)",
        "confirms_update",
        True,
    )
    partial = _flag(_PARTIAL, both) is True
    sizes = [_value(found.group(1), config) for found in re.finditer(_REQUEST_SIZE, both)]
    size = next((found for found in sizes if found), None) or DEFAULT_REQUEST_SIZE
    payload: Payload = (
        "pre-encrypted"
        if re.search(_ENCRYPTED, both)
        else "delta"
        if re.search(_DELTA, both)
        else "plain"
    )
    code = AppCode(
        ota_client=ota_client,
        compares_version=compares,
        skips_host_check=bool(skip),
        trusts=trusts,
        payload=payload,
        partial=partial,
        request_size=size,
        confirms_update=confirms,
        network=_network(both, config, examples_common),
        bundle_holds_ca=_bundle_holds(config, ca_cert),
        under_rollback=config.get("BOOTLOADER_APP_ROLLBACK_ENABLE") is True,
        assumed=tuple(assumed),
    )
    return _overridden(code, overrides)


def _trusts(
    certain: str, maybe: str, ota_client: bool, assumed: list[str], app: str
) -> tuple[Trust, ...]:
    found: list[Trust] = []
    both = certain + "\n" + maybe
    if _flag(_CERT_PEM, both) is not False or re.search(_GLOBAL_STORE, both):
        found.append("embedded_ca")
    if _flag(_BUNDLE, both) is not False or re.search(_BUNDLE_CALL, both):
        found.append("bundle")
    if not found and ota_client:
        assumed.append(
            "trust: no cert_pem or crt_bundle_attach in the app's own code; assumed the embedded "
            f"CA; state it with apps.{app}.trusts"
        )
        found.append("embedded_ca")
    return tuple(found)


def _bundle_holds(config: Mapping[str, Any], ca_cert: str | None) -> bool:
    """The custom bundle is built from the file where the app's CA is placed (ESP-IDF reads
    MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH relative to the project folder)."""
    path = config.get("MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH")
    if ca_cert is None or config.get("MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE") is not True:
        return False
    return isinstance(path, str) and os.path.normpath(path) == os.path.normpath(ca_cert)


def _network(code: str, config: Mapping[str, Any], examples_common: bool) -> tuple[str, ...]:
    """How the app reaches the server: protocol_examples_common's choice, else its own calls."""
    if examples_common and (
        "EXAMPLE_CONNECT_WIFI" in config or "EXAMPLE_CONNECT_ETHERNET" in config
    ):
        chosen = [
            name
            for name, option in (
                ("wifi", "EXAMPLE_CONNECT_WIFI"),
                ("ethernet", "EXAMPLE_CONNECT_ETHERNET"),
            )
            if config.get(option) is True
        ]
        return tuple(chosen)
    own = [
        name
        for name, pattern in (("wifi", _WIFI), ("ethernet", _ETHERNET))
        if re.search(pattern, code)
    ]
    return tuple(own)


def _overridden(code: AppCode, overrides: Overrides) -> AppCode:
    """project.yaml's statements win over the reading, and retire its assumption lines."""
    changes: dict[str, Any] = {}
    retired: list[str] = []
    for key in ("compares_version", "skips_host_check", "confirms_update"):
        value = getattr(overrides, key)
        if value is not None:
            changes[key] = value
            retired.append(key)
    if overrides.trusts is not None:
        changes["trusts"] = (overrides.trusts,)
        retired.append("trusts")
    assumed = tuple(
        line for line in code.assumed if not any(line.endswith(f".{key}") for key in retired)
    )
    return replace(code, **changes, assumed=assumed)


def with_old_names(config: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    """The configuration as sdkconfig.h gives it to C: kconfgen also defines each renamed
    option's old name ("List of deprecated options"), so code written for an older ESP-IDF
    (`#ifdef CONFIG_APP_ROLLBACK_ENABLE`) reads the same value; an inverted bool (`!NEW`) reads
    the opposite."""
    values = dict(config)
    for old, new in renames.items():
        old_name = old.removeprefix("CONFIG_")
        new_name = new.removeprefix("!").removeprefix("CONFIG_")
        if old_name in values or new_name not in values:
            continue
        value = values[new_name]
        if new.startswith("!"):
            if not isinstance(value, bool):
                continue
            value = not value
        values[old_name] = value
    return values


def sources(root: Path) -> list[Path]:
    """The app's own C/C++ files: main/ and each components/<name>/ that ESP-IDF's build takes
    as a component (it holds a CMakeLists.txt), never build output or managed components
    (those are ESP-IDF's or the registry's, not the app's), nor a folder of sources (a copy of
    ESP-IDF's components, say) that nothing builds."""
    found: list[Path] = []
    components = root / "components"
    built = (
        sorted(path for path in components.iterdir() if (path / "CMakeLists.txt").is_file())
        if components.is_dir()
        else []
    )
    for top in (root / "main", *built):
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*")):
            parts = set(path.relative_to(root).parts[:-1])
            if path.suffix in _SUFFIXES and path.is_file() and not parts & _SKIPPED_DIRS:
                found.append(path)
    return found


def scan(
    root: Path,
    config: Mapping[str, Any],
    *,
    examples_common: bool,
    overrides: Overrides = Overrides(),
    app: str = "<name>",
    ca_cert: str | None = None,
) -> AppCode:
    """facts() over the app folder's own sources (unreadable bytes are skipped, not guessed)."""
    texts = [path.read_text(encoding="utf-8", errors="replace") for path in sources(root)]
    return facts(
        texts,
        config,
        examples_common=examples_common,
        overrides=overrides,
        app=app,
        ca_cert=ca_cert,
    )


def decrypts(root: Path) -> bool:
    """Whether the app's own code starts esp_encrypted_img's decryption (outside comments), under
    any configuration: what `ota.encrypt` needs of its OTA client before anything is built."""
    return any(
        DECRYPT_CALL in re.sub(_COMMENTS, "", path.read_text(encoding="utf-8", errors="replace"))
        for path in sources(root)
    )


_PAYLOAD_NEEDS = {
    "pre-encrypted": "images encrypted for it with esp_encrypted_img (its RSA key)",
    "delta": "delta images made with esp_delta_ota against the version it runs",
}


# The project.yaml key that makes the images such an app takes.
PAYLOAD_KEYS: dict[str, str] = {"pre-encrypted": "ota.encrypt: rsa3072", "delta": "ota.delta: true"}


def payload_refusal(code: AppCode, *, encrypt: bool = False, delta: bool = False) -> str | None:
    """Why the images this project serves cannot update this app, in one clause; None where
    they can (a plain client, or the payload that ota.encrypt / ota.delta makes)."""
    made = {"plain": True, "pre-encrypted": encrypt, "delta": delta}
    if made[code.payload]:
        return None
    need = _PAYLOAD_NEEDS[code.payload]
    return f"its code takes {code.payload} updates: it needs {need} ({PAYLOAD_KEYS[code.payload]})"


def warnings(
    code: AppCode, *, app: str, client: bool, encrypt: bool = False, delta: bool = False
) -> list[str]:
    """What a board running this app would do that its owner may not expect, one line each
    (`encrypt`, `delta`: the project makes those images, ota.encrypt / ota.delta)."""
    notes = [f"app '{app}': {line}" for line in code.assumed]
    if code.under_rollback and not code.confirms_update:
        notes.append(
            f"app '{app}' never calls esp_ota_mark_app_valid_cancel_rollback(): with app "
            "rollback on, a board boots it pending verify and goes back to the previous app at "
            "its next reset; call it once the app is known good (or set "
            f"apps.{app}.confirms_update: true where it does so out of sight)"
        )
    if not client:
        return notes
    if code.skips_host_check:
        notes.append(
            f"app '{app}' skips the server name check (skip_cert_common_name_check): it accepts "
            "any certificate its CA signed, for any host, which undoes the certificate's "
            "purpose; turn off the option or the code that sets it"
        )
    if code.bundle_only:
        notes.append(
            f"app '{app}' trusts only ESP-IDF's certificate bundle (crt_bundle_attach), which "
            "does not hold this project's CA, so a board refuses the handshake; embed the CA "
            "(cert_pem, or CONFIG_MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH set to the app's "
            "ca_cert), or serve with a certificate a public CA signed"
        )
    refusal = payload_refusal(code, encrypt=encrypt, delta=delta)
    if refusal:
        notes.append(f"app '{app}': {refusal}")
    return notes
