"""X.509 for `esp_ota_doit.certs`: keys, CA and server certs, PEM, names; cryptography loads lazily.

Name and chain rules as in mbedTLS 3.6.2 (`x509_crt_verify_name`, `x509_crt_check_parent`).
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..config.hosts import is_ip
from ..config.model import CertKey
from ..errors import ProjectError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

__all__ = [
    "CLOCK_SKEW",
    "CertError",
    "KeyType",
    "cert_to_pem",
    "common_name",
    "covers_host",
    "fingerprint",
    "key_to_pem",
    "key_type",
    "load_pair",
    "new_ca",
    "new_key",
    "new_leaf",
    "parse_cert",
    "parse_key",
    "read_cert",
    "read_key",
    "same_key",
    "san_names",
    "san_texts",
    "san_texts_for",
    "signed_by",
]

KeyType = CertKey  # ota.cert.key: the model owns the choices
# Boards and laptops disagree about the time; a cert that starts "now" fails on a slow clock.
CLOCK_SKEW = timedelta(hours=1)

_E = TypeVar("_E", bound="x509.ExtensionType")


class CertError(ProjectError):
    """A certificate or key is missing, does not fit the OTA URL, or does not belong to the CA."""


# ---------------------------------------------------------------- building certificates


def new_key(kind: KeyType) -> IssuerKey:
    """A fresh private key of `kind`."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if kind == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def new_ca(
    *, project: str, kind: KeyType, now: datetime, days: int
) -> tuple[x509.Certificate, IssuerKey]:
    """A self-signed CA named after `project` that may sign server certs only, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = new_key(kind)
    # RFC 5280 caps a CN at 64 characters.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{project[:57]} OTA CA")])
    cert = (
        _builder(name, name, key, now=now, days=days)
        # path_len 0: this CA signs server certs only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def new_leaf(
    *,
    host: str,
    key: IssuerKey,
    ca: x509.Certificate,
    ca_key: IssuerKey,
    now: datetime,
    days: int,
) -> x509.Certificate:
    """A server cert for `host` holding `key`, signed by `ca`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    # CN = host for clients that still read it (mbedTLS without a SAN); RFC 5280 caps it at 64.
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, host)] if len(host) <= 64 else []
    ski = _extension(ca, x509.SubjectKeyIdentifier)
    if ski is None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    else:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    usage = _key_usage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey))
    return (
        _builder(x509.Name(cn), ca.subject, key, now=now, days=days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # RFC 5280: the SAN must be critical when the subject is empty.
        .add_extension(x509.SubjectAlternativeName(_san_for(host)), critical=not cn)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: IssuerKey, *, now: datetime, days: int
) -> x509.CertificateBuilder:
    """What CA and server certs share: names, public key, a random serial, the validity."""
    from cryptography import x509

    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
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
    """The bytes of `path`; a missing or unreadable file is a CertError naming `label`."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertError(f"{label}: file '{path}' does not exist") from None
    except OSError as err:
        raise CertError(f"{label}: cannot read '{path}' ({err.strerror})") from None


def read_cert(path: Path, label: str, what: str | None = None) -> x509.Certificate:
    """The certificate in `path`; errors name the file `label` and its content `what` or `label`."""
    return parse_cert(_read(path, label), label if what is None else what)


def read_key(path: Path, label: str, what: str | None = None) -> IssuerKey:
    """The private key in `path`; errors name the file `label` and its content `what` or `label`."""
    return parse_key(_read(path, label), label if what is None else what)


def parse_cert(data: bytes, what: str) -> x509.Certificate:
    """The (first) certificate in PEM `data`."""
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertError(f"{what} is not a PEM certificate") from None


def parse_key(data: bytes, what: str) -> IssuerKey:
    """The unencrypted EC or RSA private key in PEM `data`."""
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


def load_pair(
    cert_path: Path, key_path: Path, cert_label: str, key_label: str
) -> tuple[x509.Certificate, IssuerKey]:
    """A CA cert and its key from two files; raise CertError unless they match and may sign."""
    cert = read_cert(cert_path, cert_label, f"{cert_label}: '{cert_path}'")
    key = read_key(key_path, key_label, f"{key_label}: '{key_path}'")
    if not same_key(cert, key):
        raise CertError(
            f"{cert_label} and {key_label} do not match (the key is not the certificate's key)"
        )
    _require_ca(cert, f"{cert_label}: '{cert_path}'")
    return cert, key


def _require_ca(cert: x509.Certificate, what: str) -> None:
    """mbedTLS `x509_crt_check_parent`: a v3 CA needs CA:TRUE and, with keyUsage, keyCertSign."""
    from cryptography import x509

    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise CertError(f"{what} is not a CA certificate (it lacks basicConstraints CA:TRUE)")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise CertError(f"{what} may not sign certificates (its keyUsage lacks keyCertSign)")


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    """The value of the cert's `kind` extension, or None when it has none."""
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the (first) certificate's DER, lower-case hex."""
    from cryptography.hazmat.primitives.serialization import Encoding

    der = parse_cert(cert_pem, "certificate").public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def covers_host(cert: x509.Certificate | bytes, host: str) -> bool:
    """Whether a client checking `host` accepts the cert's names (exact match, no wildcards).

    Python's ssl and mbedTLS 3.6 look only at the SAN when there is one; Python ignores the CN
    entirely and matches an IP host only against iPAddress entries. This is the stricter of both.
    """
    from cryptography import x509

    parsed = parse_cert(cert, "certificate") if isinstance(cert, bytes) else cert
    san = _extension(parsed, x509.SubjectAlternativeName)
    if san is None:
        return False
    if is_ip(host):
        return ipaddress.ip_address(host) in san.get_values_for_type(x509.IPAddress)
    return host.lower() in {name.lower() for name in san.get_values_for_type(x509.DNSName)}


def same_key(cert: x509.Certificate, key: IssuerKey) -> bool:
    """Whether `key` is the private half of the cert's public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der, spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def signed_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `ca` issued `leaf` and its signature checks out."""
    from cryptography.exceptions import InvalidSignature

    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def key_type(public: object) -> str:
    """A public key's type in `KeyType` spelling (`ec-p256`, `rsa-2048`; others by analogy)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(public, ec.EllipticCurvePublicKey):
        return "ec-p256" if isinstance(public.curve, ec.SECP256R1) else f"ec-{public.curve.name}"
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa-{public.key_size}"
    return type(public).__name__


def common_name(cert: x509.Certificate) -> str | None:
    """The subject's (first) CN, or None."""
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def san_texts(cert: x509.Certificate) -> list[str]:
    """The SAN entries as `IP:…`/`DNS:…`, in certificate order."""
    from cryptography import x509

    san = _extension(cert, x509.SubjectAlternativeName)
    return [] if san is None else [_general_name_text(name) for name in san]


def san_texts_for(host: str) -> list[str]:
    """The SAN entries `new_leaf` writes for `host`, spelt as `san_texts` reads them."""
    return [_general_name_text(name) for name in _san_for(host)]


def _general_name_text(name: x509.GeneralName) -> str:
    from cryptography import x509

    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    return f"{type(name).__name__}:{name.value}"


def san_names(cert: x509.Certificate) -> list[str]:
    """The names a person recognises ('10.0.0.5', not 'IP:10.0.0.5, DNS:10.0.0.5'), deduplicated."""
    return list(dict.fromkeys(text.split(":", 1)[1] for text in san_texts(cert)))


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


def key_to_pem(key: IssuerKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (callers write it 0600)."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
