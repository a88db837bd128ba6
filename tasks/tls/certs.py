"""TLS for esp_https_ota: a persistent local CA (embedded in firmware) and a server cert.

Plans and files live here (what to issue, when to reissue); X.509 mechanics in `certs_x509`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import ConfigError
from ..files import write_if_changed
from ..paths import CertFiles, cert_files
from .x509 import (
    CertError,
    KeyType,
    cert_to_pem,
    common_name,
    covers_host,
    fingerprint,
    key_to_pem,
    key_type,
    load_pair,
    new_ca,
    new_key,
    new_leaf,
    parse_cert,
    parse_key,
    read_cert,
    read_key,
    same_key,
    san_names,
    san_texts,
    san_texts_for,
    signed_by,
)

if TYPE_CHECKING:
    from cryptography import x509

    from .x509 import IssuerKey

__all__ = [
    "CA_DAYS",
    "RENEW_WITHIN",
    "CertError",
    "CertPlan",
    "IssueReport",
    "KeyType",
    "ca_digests",
    "check_embedded_ca",
    "check_leaf",
    "covers_host",
    "current_window",
    "fingerprint",
    "issue",
    "pending",
    "place_ca",
    "plan",
]

CA_DAYS = 3650
RENEW_WITHIN = timedelta(days=30)
_DIR_MODE, _KEY_MODE, _CERT_MODE = 0o700, 0o600, 0o644
_REISSUE = "run `doit certs` to reissue"


@dataclass(frozen=True, slots=True, kw_only=True)
class CertPlan:
    """What `issue` makes: the CA (local, or the CI files) and a server cert for `host`."""

    project: str
    host: str
    key: KeyType
    days: int
    certs_dir: Path
    ca_cert_file: Path | None = None
    ca_key_file: Path | None = None

    def to_json(self) -> dict[str, str | int | None]:
        """Plain data for doit's `config_changed`."""
        return {
            "project": self.project,
            "host": self.host,
            "key": self.key,
            "days": self.days,
            "certs_dir": str(self.certs_dir),
            "ca_cert_file": None if self.ca_cert_file is None else str(self.ca_cert_file),
            "ca_key_file": None if self.ca_key_file is None else str(self.ca_key_file),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueReport:
    """What `issue` did and why; `lines` are for people, the rest for tests and callers."""

    ca: Literal["created", "reused", "rotated", "from-env"]
    leaf: Literal["issued", "reissued", "reused"]
    ca_fingerprint: str
    leaf_fingerprint: str
    written: tuple[Path, ...]
    retired: tuple[Path, ...]
    lines: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether any file was written or renamed."""
        return bool(self.written or self.retired)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def plan(
    *, project: str, host: str, key: KeyType, days: int, certs_dir: Path, env: Mapping[str, str]
) -> CertPlan:
    """The cert plan for a resolved URL host; `env` may name a CI-provided CA.

    `key` and `days` come from the model (ota.cert), which validated them.
    """
    if not host or not host.isascii():
        raise ConfigError(
            ("ota", "url"),
            f"host '{host}' cannot go into a certificate",
            "write the name in its xn-- (punycode) form",
        )
    ca_cert, ca_key = _ci_files(env)
    return CertPlan(
        project=project,
        host=host,
        key=key,
        days=days,
        certs_dir=certs_dir,
        ca_cert_file=ca_cert,
        ca_key_file=ca_key,
    )


def _ci_files(env: Mapping[str, str]) -> tuple[Path | None, Path | None]:
    cert, key = env.get("OTA_CA_CERT", ""), env.get("OTA_CA_KEY", "")
    if bool(cert) != bool(key):
        given, missing = ("OTA_CA_CERT", "OTA_CA_KEY") if cert else ("OTA_CA_KEY", "OTA_CA_CERT")
        raise ConfigError((), f"{given} is set but {missing} is not", "set both or neither")
    if not cert:
        return None, None
    return Path(cert).expanduser(), Path(key).expanduser()


# ---------------------------------------------------------------- checks (pure, on PEM bytes)


def check_leaf(
    cert_pem: bytes, key_pem: bytes, ca_pem: bytes, host: str, now: datetime | None = None
) -> None:
    """Raise CertError unless the server cert fits `host`, its key, the CA and the time."""
    leaf = parse_cert(cert_pem, "the server cert")
    ca = parse_cert(ca_pem, "the CA cert")
    if not signed_by(leaf, ca):
        raise CertError(
            f"the server cert was not signed by the CA (SHA-256 {_short(fingerprint(ca_pem))}); "
            f"{_REISSUE}"
        )
    if not same_key(leaf, parse_key(key_pem, "the server key")):
        raise CertError(f"the server key does not match the server cert; {_REISSUE}")
    if not covers_host(leaf, host):
        names = ", ".join(san_names(leaf)) or "no names"
        raise CertError(
            f"server cert covers '{names}' but the OTA URL host is '{host}'; {_REISSUE}"
        )
    moment = _utc(now)
    if moment < leaf.not_valid_before_utc:
        raise CertError(
            f"server cert is not valid before {_when(leaf.not_valid_before_utc)}; "
            "check this machine's clock"
        )
    if moment > leaf.not_valid_after_utc:
        raise CertError(f"server cert expired on {_when(leaf.not_valid_after_utc)}; {_REISSUE}")


def ca_digests(ca_pem: bytes) -> frozenset[str]:
    """SHA-256 of certs/ca_cert.pem as stored and as `place_ca` writes it for a build to embed
    (app.json's and the board record's ca_sha256 are one of these when the CA is current)."""
    embedded = cert_to_pem(parse_cert(ca_pem, "the CA cert"))
    return frozenset({hashlib.sha256(ca_pem).hexdigest(), hashlib.sha256(embedded).hexdigest()})


def check_embedded_ca(embedded_sha256: str | None, ca_pem: bytes, app: str) -> None:
    """Raise CertError when the CA built into `app` (app.json's ca_sha256; None: it embeds none)
    is not the CA that signs the server cert: boards running it would refuse this server."""
    if embedded_sha256 is None or embedded_sha256 in ca_digests(ca_pem):
        return
    current = hashlib.sha256(ca_pem).hexdigest()
    raise CertError(
        f"the CA embedded in app '{app}' (SHA-256 {_short(embedded_sha256)}) is not the CA that "
        f"signed the server cert (certs/ca_cert.pem, SHA-256 {_short(current)}); "
        f"run `doit build:{app}` and flash it over serial"
    )


# ---------------------------------------------------------------- edge actions


def place_ca(ca_pem_src: Path, dest: Path) -> bool:
    """Copy the public CA cert (only the certificate, never a key) to `dest`; True if written."""
    cert = read_cert(ca_pem_src, "CA cert", f"CA cert '{ca_pem_src}'")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return write_if_changed(dest, cert_to_pem(cert), mode=_CERT_MODE)


def pending(plan: CertPlan, now: datetime | None = None) -> str | None:
    """Why `issue` would write something; None when certs/ is current (doit's uptodate)."""
    where = cert_files(plan.certs_dir)
    try:
        ca = read_cert(where.ca_cert, "CA cert")
        if plan.ca_cert_file is not None:
            wanted = read_cert(plan.ca_cert_file, "OTA_CA_CERT")
            if cert_to_pem(wanted) != cert_to_pem(ca):
                return "OTA_CA_CERT names another CA"
    except CertError as err:
        return str(err)
    return _stale_leaf(plan, where, ca, _utc(now))


def current_window(plan: CertPlan) -> tuple[datetime, datetime]:
    """When the server cert `issue` left is current: from its not-before until the renewal
    window opens. While its files are the bytes issue left, `pending` says None in between.

    Raises:
        CertError: the server cert cannot be read.
    """
    leaf = read_cert(cert_files(plan.certs_dir).server_cert, "server cert")
    window = min(RENEW_WITHIN, timedelta(days=plan.days) / 2)
    return leaf.not_valid_before_utc, leaf.not_valid_after_utc - window


def issue(plan: CertPlan, *, rotate_ca: bool = False, now: datetime | None = None) -> IssueReport:
    """Make sure the certs dir holds a CA and a current server cert; touch nothing that is fine.

    Args:
        plan: from `plan()`.
        rotate_ca: replace the local CA on purpose; the old files are kept as `*.<UTC time>.old`.
        now: the current time (tests inject it).

    Raises:
        CertError: the CA files are unusable, or rotation was asked of a CI-provided CA.
    """
    moment = _utc(now)
    where = cert_files(plan.certs_dir)
    _ensure_dir(plan.certs_dir)
    with _locked(plan.certs_dir):
        return _issue(plan, where, rotate_ca, moment)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    # Two doit processes may run `certs` at once; without this each could make half a CA.
    import fcntl

    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _issue(plan: CertPlan, where: CertFiles, rotate_ca: bool, moment: datetime) -> IssueReport:
    ca = _ca(plan, where, rotate_ca, moment)
    written = list(ca.written)
    reason = _stale_leaf(plan, where, ca.cert, moment)
    if reason is None:
        leaf_state: Literal["issued", "reissued", "reused"] = "reused"
        leaf_line = f"server cert reused: covers '{plan.host}', {plan.key}"
        _tighten(where.server_key)
    else:
        leaf_state = "issued" if reason == _NONE_YET else "reissued"
        leaf_line = f"server cert reissued: {reason}"
        if leaf_state == "issued":
            leaf_line = f"server cert issued for '{plan.host}': {plan.key}, {plan.days} days"
        written += _write_leaf(plan, where, ca.cert, ca.key, moment)
    return IssueReport(
        ca=ca.state,
        leaf=leaf_state,
        ca_fingerprint=fingerprint(where.ca_cert.read_bytes()),
        leaf_fingerprint=fingerprint(where.server_cert.read_bytes()),
        written=tuple(written),
        retired=ca.retired,
        lines=(*ca.lines, leaf_line),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ca:
    """The CA an issue signs with, and what became of its files."""

    cert: x509.Certificate
    key: IssuerKey
    state: Literal["created", "reused", "rotated", "from-env"]
    written: tuple[Path, ...]
    retired: tuple[Path, ...]
    lines: tuple[str, ...]


def _ca(plan: CertPlan, where: CertFiles, rotate: bool, now: datetime) -> _Ca:
    if plan.ca_cert_file is not None and plan.ca_key_file is not None:
        if rotate:
            raise CertError(
                "OTA_CA_CERT and OTA_CA_KEY name the CA, so it cannot be rotated here; "
                "rotate it where those files come from"
            )
        return _ci_ca(plan.ca_cert_file, plan.ca_key_file, where)
    retired = _retire(where, now) if rotate else ()
    unfinished = _set_aside_unfinished(where, now)
    if not where.ca_cert.exists() and not where.ca_key.exists():
        cert, key = new_ca(project=plan.project, kind=plan.key, now=now, days=CA_DAYS)
        _write_pair(where.ca_key, key, where.ca_cert, cert)
        state: Literal["created", "rotated"] = "rotated" if retired else "created"
        lines = [f"CA {state}: {where.ca_cert}; firmware must embed it to accept this server"]
        if retired:
            kept = ", ".join(p.name for p in retired)
            lines.append(f"old CA kept as {kept}; boards trusting only it refuse this server")
        if unfinished is not None:
            lines.append(
                f"a CA key without its cert (an interrupted run) was never issued; "
                f"kept as {unfinished.name}"
            )
        return _Ca(
            cert=cert,
            key=key,
            state=state,
            written=(where.ca_key, where.ca_cert),
            retired=retired,
            lines=tuple(lines),
        )
    for present, absent in ((where.ca_cert, where.ca_key), (where.ca_key, where.ca_cert)):
        if present.exists() and not absent.exists():
            raise CertError(
                f"'{present}' exists but '{absent}' does not; restore it from a backup, or "
                "rotate the CA on purpose (boards trusting the old CA will refuse updates)"
            )
    cert, key = load_pair(where.ca_cert, where.ca_key, where.ca_cert.name, where.ca_key.name)
    _tighten(where.ca_key)
    return _Ca(
        cert=cert,
        key=key,
        state="reused",
        written=(),
        retired=(),
        lines=(f"CA reused: {where.ca_cert}",),
    )


def _ci_ca(cert_file: Path, key_file: Path, where: CertFiles) -> _Ca:
    cert, key = load_pair(cert_file, key_file, "OTA_CA_CERT", "OTA_CA_KEY")
    pem = cert_to_pem(cert)
    # A local CA key next to a different cert would leave a pair that no longer matches.
    if where.ca_key.exists() and (not where.ca_cert.exists() or where.ca_cert.read_bytes() != pem):
        raise CertError(
            f"'{where.ca_key}' belongs to a local CA and OTA_CA_CERT names another; "
            f"move the ca_*.pem files out of '{where.ca_cert.parent}' or unset OTA_CA_CERT and "
            "OTA_CA_KEY"
        )
    # Later tasks (the firmware build) read the CA from the certs dir in both modes.
    written = (where.ca_cert,) if write_if_changed(where.ca_cert, pem, mode=_CERT_MODE) else ()
    return _Ca(
        cert=cert,
        key=key,
        state="from-env",
        written=written,
        retired=(),
        lines=(f"CA from OTA_CA_CERT '{cert_file}', copied to {where.ca_cert}",),
    )


def _set_aside_unfinished(where: CertFiles, now: datetime) -> Path | None:
    """The CA key is written (and synced) before its cert, so the cert is the commit point: a key
    alone was never issued to any firmware. It is moved aside, never deleted."""
    if not where.ca_key.exists() or where.ca_cert.exists():
        return None
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target, n = where.ca_key.with_name(f"{where.ca_key.name}.{stamp}.unissued"), 1
    while target.exists():
        n += 1
        target = where.ca_key.with_name(f"{where.ca_key.name}.{stamp}-{n}.unissued")
    where.ca_key.rename(target)
    return target


def _retire(where: CertFiles, now: datetime) -> tuple[Path, ...]:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    kept = []
    for path in (where.ca_cert, where.ca_key):
        if not path.exists():
            continue
        target, n = path.with_name(f"{path.name}.{stamp}.old"), 1
        while target.exists():  # never overwrite an older rotation's files
            n += 1
            target = path.with_name(f"{path.name}.{stamp}-{n}.old")
        path.rename(target)
        kept.append(target)
    return tuple(kept)


_NONE_YET = "none existed"


def _stale_leaf(
    plan: CertPlan, where: CertFiles, ca: x509.Certificate, now: datetime
) -> str | None:
    """Why the server cert must be reissued, or None to keep it."""
    if not where.server_cert.exists() and not where.server_key.exists():
        return _NONE_YET
    try:
        leaf = read_cert(where.server_cert, "server cert")
        key = read_key(where.server_key, "server key")
    except CertError as err:
        return f"the existing files are unusable ({err})"
    old_type = key_type(leaf.public_key())
    if old_type != plan.key:
        return f"key type changed from {old_type} to {plan.key}"
    if not signed_by(leaf, ca):
        return "not signed by the current CA"
    old_host = common_name(leaf)
    if old_host != plan.host or not covers_host(leaf, plan.host):
        return f"host changed from {old_host or '?'} to {plan.host}"
    wanted = san_texts_for(plan.host)
    if sorted(san_texts(leaf)) != sorted(wanted):
        return f"its names '{', '.join(san_texts(leaf))}' are not '{', '.join(wanted)}'"
    if now < leaf.not_valid_before_utc:
        return f"not valid before {_when(leaf.not_valid_before_utc)}"
    # A cert shorter-lived than two windows would be reissued on every run; halve it there.
    window = min(RENEW_WITHIN, timedelta(days=plan.days) / 2)
    if leaf.not_valid_after_utc - now < window:
        return f"expires {_when(leaf.not_valid_after_utc)} (within {window.days} days)"
    if not same_key(leaf, key):
        return f"{where.server_key.name} does not match {where.server_cert.name}"
    return None


def _write_leaf(
    plan: CertPlan, where: CertFiles, ca: x509.Certificate, ca_key: IssuerKey, now: datetime
) -> list[Path]:
    key = new_key(plan.key)
    cert = new_leaf(host=plan.host, key=key, ca=ca, ca_key=ca_key, now=now, days=plan.days)
    # Key first: a crash in between leaves a mismatched pair, which the next run reissues.
    return _write_pair(where.server_key, key, where.server_cert, cert)


def _write_pair(
    key_file: Path, key: IssuerKey, cert_file: Path, cert: x509.Certificate
) -> list[Path]:
    """Write the key (0600), then its cert; the files whose content changed."""
    pairs = ((key_file, key_to_pem(key), _KEY_MODE), (cert_file, cert_to_pem(cert), _CERT_MODE))
    return [path for path, data, mode in pairs if write_if_changed(path, data, mode=mode)]


# ---------------------------------------------------------------- files and small helpers


def _ensure_dir(path: Path) -> None:
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing dir.
    if path.stat().st_mode & 0o077:
        path.chmod(_DIR_MODE)


def _tighten(key_file: Path) -> None:
    if key_file.exists() and key_file.stat().st_mode & 0o077:
        key_file.chmod(_KEY_MODE)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _short(hex_digest: str) -> str:
    return f"{hex_digest[:16]}…"
