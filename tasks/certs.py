"""TLS for esp_https_ota: a persistent local CA (embedded in firmware) and a server cert.

Name and chain rules as in mbedTLS 3.6.2 (`x509_crt_verify_name`, `x509_crt_check_parent`).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tasks.errors import ConfigError, ProjectError
from tasks.hosts import is_ip
from tasks.render import write_if_changed

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    _IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

__all__ = [
    "CA_DAYS",
    "KEY_TYPES",
    "RENEW_WITHIN",
    "CertError",
    "CertPaths",
    "CertPlan",
    "IssueReport",
    "KeyType",
    "check_embedded_ca",
    "check_leaf",
    "covers_host",
    "fingerprint",
    "issue",
    "paths",
    "pending",
    "place_ca",
    "plan",
]

KeyType = Literal["ec-p256", "rsa-2048"]
KEY_TYPES: tuple[KeyType, ...] = ("ec-p256", "rsa-2048")
CA_DAYS = 3650
RENEW_WITHIN = timedelta(days=30)
# Boards and laptops disagree about the time; a cert that starts "now" fails on a slow clock.
CLOCK_SKEW = timedelta(hours=1)
_DIR_MODE, _KEY_MODE, _CERT_MODE = 0o700, 0o600, 0o644
_REISSUE = "run `doit certs` to reissue"


class CertError(ProjectError):
    """A certificate or key is missing, does not fit the OTA URL, or does not belong to the CA."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertPaths:
    """The files in the certs dir; only the two `*_key.pem` files hold secrets."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def paths(certs_dir: Path) -> CertPaths:
    """The file names inside `certs_dir`."""
    return CertPaths(
        ca_cert=certs_dir / "ca_cert.pem",
        ca_key=certs_dir / "ca_key.pem",
        server_cert=certs_dir / "server_cert.pem",
        server_key=certs_dir / "server_key.pem",
    )


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
    *, project: str, host: str, key: str, days: int, certs_dir: Path, env: Mapping[str, str]
) -> CertPlan:
    """The cert plan for a resolved URL host; `env` may name a CI-provided CA."""
    if key not in KEY_TYPES:
        choices = ", ".join(f"'{k}'" for k in KEY_TYPES)
        raise ConfigError(("ota", "cert", "key"), f"expected one of {choices}, got '{key}'")
    if days < 1:
        raise ConfigError(("ota", "cert", "days"), f"expected at least 1, got {days}")
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
        key="rsa-2048" if key == "rsa-2048" else "ec-p256",
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


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the (first) certificate's DER, lower-case hex."""
    from cryptography.hazmat.primitives.serialization import Encoding

    der = _parse_cert(cert_pem, "certificate").public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def covers_host(cert: x509.Certificate | bytes, host: str) -> bool:
    """Whether a client checking `host` accepts the cert's names (exact match, no wildcards).

    Python's ssl and mbedTLS 3.6 look only at the SAN when there is one; Python ignores the CN
    entirely and matches an IP host only against iPAddress entries. This is the stricter of both.
    """
    from cryptography import x509

    parsed = _parse_cert(cert, "certificate") if isinstance(cert, bytes) else cert
    try:
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if is_ip(host):
        return ipaddress.ip_address(host) in san.get_values_for_type(x509.IPAddress)
    return host.lower() in {name.lower() for name in san.get_values_for_type(x509.DNSName)}


def check_leaf(
    cert_pem: bytes, key_pem: bytes, ca_pem: bytes, host: str, now: datetime | None = None
) -> None:
    """Raise CertError unless the server cert fits `host`, its key, the CA and the time."""
    leaf = _parse_cert(cert_pem, "the server cert")
    ca = _parse_cert(ca_pem, "the CA cert")
    if not _signed_by(leaf, ca):
        raise CertError(
            f"the server cert was not signed by the CA (SHA-256 {_short(fingerprint(ca_pem))}); "
            f"{_REISSUE}"
        )
    if not _same_key(leaf, _parse_key(key_pem, "the server key")):
        raise CertError(f"the server key does not match the server cert; {_REISSUE}")
    if not covers_host(leaf, host):
        names = ", ".join(_san_names(leaf)) or "no names"
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


def check_embedded_ca(embedded_pem: bytes, ca_pem: bytes, app: str) -> None:
    """Raise CertError when the CA built into `app` is not the CA that signs the server cert."""
    embedded, current = fingerprint(embedded_pem), fingerprint(ca_pem)
    if embedded != current:
        raise CertError(
            f"the CA embedded in app '{app}' (SHA-256 {_short(embedded)}) is not the CA that "
            f"signed the server cert (SHA-256 {_short(current)}); rebuild the app"
        )


# ---------------------------------------------------------------- edge actions


def place_ca(ca_pem_src: Path, dest: Path) -> bool:
    """Copy the public CA cert (only the certificate, never a key) to `dest`; True if written."""
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = _parse_cert(_read(ca_pem_src, "CA cert"), f"CA cert '{ca_pem_src}'")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return write_if_changed(dest, cert.public_bytes(Encoding.PEM), mode=_CERT_MODE)


def pending(plan: CertPlan, now: datetime | None = None) -> str | None:
    """Why `issue` would write something; None when certs/ is current (doit's uptodate)."""
    where = paths(plan.certs_dir)
    try:
        ca = _parse_cert(_read(where.ca_cert, "CA cert"), "CA cert")
        if plan.ca_cert_file is not None:
            wanted = _parse_cert(_read(plan.ca_cert_file, "OTA_CA_CERT"), "OTA_CA_CERT")
            if _cert_pem(wanted) != _cert_pem(ca):
                return "OTA_CA_CERT names another CA"
    except CertError as err:
        return str(err)
    return _stale_leaf(plan, where, ca, _utc(now))


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
    where = paths(plan.certs_dir)
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


def _issue(plan: CertPlan, where: CertPaths, rotate_ca: bool, moment: datetime) -> IssueReport:
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
    cert: x509.Certificate
    key: _IssuerKey
    state: Literal["created", "reused", "rotated", "from-env"]
    written: tuple[Path, ...]
    retired: tuple[Path, ...]
    lines: tuple[str, ...]


def _ca(plan: CertPlan, where: CertPaths, rotate: bool, now: datetime) -> _Ca:
    if plan.ca_cert_file is not None and plan.ca_key_file is not None:
        if rotate:
            raise CertError(
                "OTA_CA_CERT and OTA_CA_KEY name the CA, so it cannot be rotated here; "
                "rotate it where those files come from"
            )
        return _ci_ca(plan.ca_cert_file, plan.ca_key_file, where)
    retired = _retire(where, now) if rotate else ()
    if not where.ca_cert.exists() and not where.ca_key.exists():
        cert, key = _new_ca(plan, now)
        write_if_changed(where.ca_key, _key_pem(key), mode=_KEY_MODE)
        write_if_changed(where.ca_cert, _cert_pem(cert), mode=_CERT_MODE)
        state: Literal["created", "rotated"] = "rotated" if retired else "created"
        lines = [f"CA {state}: {where.ca_cert}; firmware must embed it to accept this server"]
        if retired:
            kept = ", ".join(p.name for p in retired)
            lines.append(f"old CA kept as {kept}; boards trusting only it refuse this server")
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
    cert, key = _load_pair(where.ca_cert, where.ca_key, where.ca_cert.name, where.ca_key.name)
    _tighten(where.ca_key)
    return _Ca(
        cert=cert,
        key=key,
        state="reused",
        written=(),
        retired=(),
        lines=(f"CA reused: {where.ca_cert}",),
    )


def _ci_ca(cert_file: Path, key_file: Path, where: CertPaths) -> _Ca:
    cert, key = _load_pair(cert_file, key_file, "OTA_CA_CERT", "OTA_CA_KEY")
    pem = _cert_pem(cert)
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


def _retire(where: CertPaths, now: datetime) -> tuple[Path, ...]:
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
    plan: CertPlan, where: CertPaths, ca: x509.Certificate, now: datetime
) -> str | None:
    """Why the server cert must be reissued, or None to keep it."""
    if not where.server_cert.exists() and not where.server_key.exists():
        return _NONE_YET
    try:
        leaf = _parse_cert(_read(where.server_cert, "server cert"), "server cert")
        key = _parse_key(_read(where.server_key, "server key"), "server key")
    except CertError as err:
        return f"the existing files are unusable ({err})"
    old_type = _key_type(leaf.public_key())
    if old_type != plan.key:
        return f"key type changed from {old_type} to {plan.key}"
    if not _signed_by(leaf, ca):
        return "not signed by the current CA"
    old_host = _common_name(leaf)
    if old_host != plan.host or not covers_host(leaf, plan.host):
        return f"host changed from {old_host or '?'} to {plan.host}"
    wanted = [_general_name_text(n) for n in _san_for(plan.host)]
    if sorted(_san_texts(leaf)) != sorted(wanted):
        return f"its names '{', '.join(_san_texts(leaf))}' are not '{', '.join(wanted)}'"
    if now < leaf.not_valid_before_utc:
        return f"not valid before {_when(leaf.not_valid_before_utc)}"
    # A cert shorter-lived than two windows would be reissued on every run; halve it there.
    window = min(RENEW_WITHIN, timedelta(days=plan.days) / 2)
    if leaf.not_valid_after_utc - now < window:
        return f"expires {_when(leaf.not_valid_after_utc)} (within {window.days} days)"
    if not _same_key(leaf, key):
        return f"{where.server_key.name} does not match {where.server_cert.name}"
    return None


def _write_leaf(
    plan: CertPlan, where: CertPaths, ca: x509.Certificate, ca_key: _IssuerKey, now: datetime
) -> list[Path]:
    key = _new_key(plan.key)
    cert = _new_leaf(plan, key, ca, ca_key, now)
    # Key first: a crash in between leaves a mismatched pair, which the next run reissues.
    pairs = (
        (where.server_key, _key_pem(key), _KEY_MODE),
        (where.server_cert, _cert_pem(cert), _CERT_MODE),
    )
    return [path for path, data, mode in pairs if write_if_changed(path, data, mode=mode)]


# ---------------------------------------------------------------- building certificates


def _new_key(kind: KeyType) -> _IssuerKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if kind == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _new_ca(plan: CertPlan, now: datetime) -> tuple[x509.Certificate, _IssuerKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_key(plan.key)
    # RFC 5280 caps a CN at 64 characters.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{plan.project[:57]} OTA CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        # path_len 0: this CA signs server certs only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_leaf(
    plan: CertPlan, key: _IssuerKey, ca: x509.Certificate, ca_key: _IssuerKey, now: datetime
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    # CN = host for clients that still read it (mbedTLS without a SAN); RFC 5280 caps it at 64.
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, plan.host)] if len(plan.host) <= 64 else []
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    usage = _key_usage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(cn))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=plan.days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # RFC 5280: the SAN must be critical when the subject is empty.
        .add_extension(x509.SubjectAlternativeName(_san_for(plan.host)), critical=not cn)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(
    *, digital_signature: bool = False, key_encipherment: bool = False, key_cert_sign: bool = False
) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _san_for(host: str) -> list[x509.GeneralName]:
    from cryptography import x509

    if is_ip(host):
        # IP:<ip> for Python's ssl and mbedTLS 3.x; DNS:<ip> because mbedTLS 2.x ignores IP SANs.
        return [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName(host)]
    return [x509.DNSName(host)]


# ---------------------------------------------------------------- reading certificates


def _read(path: Path, label: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertError(f"{label}: file '{path}' does not exist") from None
    except OSError as err:
        raise CertError(f"{label}: cannot read '{path}' ({err.strerror})") from None


def _parse_cert(data: bytes, what: str) -> x509.Certificate:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertError(f"{what} is not a PEM certificate") from None


def _parse_key(data: bytes, what: str) -> _IssuerKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Deliberately not chained: the parser's message may quote the key material.
        raise CertError(f"{what} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertError(f"{what} is not an EC or RSA key (ESP-IDF's mbedTLS needs one of those)")
    return key


def _load_pair(
    cert_path: Path, key_path: Path, cert_label: str, key_label: str
) -> tuple[x509.Certificate, _IssuerKey]:
    cert = _parse_cert(_read(cert_path, cert_label), f"{cert_label}: '{cert_path}'")
    key = _parse_key(_read(key_path, key_label), f"{key_label}: '{key_path}'")
    if not _same_key(cert, key):
        raise CertError(
            f"{cert_label} and {key_label} do not match (the key is not the certificate's key)"
        )
    _require_ca(cert, f"{cert_label}: '{cert_path}'")
    return cert, key


def _require_ca(cert: x509.Certificate, what: str) -> None:
    """mbedTLS `x509_crt_check_parent`: a v3 CA needs CA:TRUE and, with keyUsage, keyCertSign."""
    from cryptography import x509

    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertError(f"{what} is not a CA certificate (it lacks basicConstraints CA:TRUE)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise CertError(f"{what} may not sign certificates (its keyUsage lacks keyCertSign)")


def _same_key(cert: x509.Certificate, key: _IssuerKey) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der, spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def _signed_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_type(public: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(public, ec.EllipticCurvePublicKey):
        return "ec-p256" if isinstance(public.curve, ec.SECP256R1) else f"ec-{public.curve.name}"
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa-{public.key_size}"
    return type(public).__name__


def _common_name(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _san_texts(cert: x509.Certificate) -> list[str]:
    """The SAN entries as `IP:…`/`DNS:…`, in certificate order."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [_general_name_text(name) for name in san]


def _general_name_text(name: x509.GeneralName) -> str:
    from cryptography import x509

    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    return f"{type(name).__name__}:{name.value}"


def _san_names(cert: x509.Certificate) -> list[str]:
    """The names a person recognises ('10.0.0.5', not 'IP:10.0.0.5, DNS:10.0.0.5'), deduplicated."""
    return list(dict.fromkeys(text.split(":", 1)[1] for text in _san_texts(cert)))


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def _key_pem(key: _IssuerKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


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
