"""Certificates: real TLS handshakes (Python ssl, openssl, curl), reissue rules, files, CI mode."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from esp_ota_doit.config.hosts import is_ip
from esp_ota_doit.errors import ConfigError
from esp_ota_doit.paths import CertFiles, cert_files
from esp_ota_doit.tls import certs
from esp_ota_doit.tls.certs import (
    CertError,
    CertPlan,
    KeyType,
    check_embedded_ca,
    check_leaf,
    covers_host,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REISSUE = "run `doit certs` to reissue"
TIMEOUT = 10
E = TypeVar("E", bound=x509.ExtensionType)


def check_files(files: CertFiles, host: str, now: datetime) -> None:
    """check_leaf on the files issue() wrote: raises unless they fit `host` at `now`."""
    check_leaf(
        files.server_cert.read_bytes(),
        files.server_key.read_bytes(),
        files.ca_cert.read_bytes(),
        host,
        now,
    )


def make_plan(
    certs_dir: Path,
    host: str,
    *,
    key: KeyType = "ec-p256",
    days: int = 825,
    env: dict[str, str] | None = None,
) -> CertPlan:
    return certs.plan(
        project="demo", host=host, key=key, days=days, certs_dir=certs_dir, env=env or {}
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Name -> (bytes, mtime_ns, mode) of every file in a folder."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode & 0o777)
        for p in sorted(folder.iterdir())
    }


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def external_ca(folder: Path, *, ca: bool = True, name: str = "CI CA") -> tuple[Path, Path]:
    """A CA made without esp_ota_doit.tls.certs, as a CI secret store would hold it."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "ci_ca.pem", folder / "ci_ca.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


# ---------------------------------------------------------------- a real TLS server on loopback


@contextmanager
def tls_server(cert_file: Path, key_file: Path) -> Iterator[int]:
    """Serve `HTTP/1.0 200 ok` over TLS on 127.0.0.1:<port> until the block ends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (ssl.SSLError, OSError):
            pass  # the client refused our cert: that is what failure cases test

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            answer(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(TIMEOUT)
        listener.close()


def python_get(port: int, host: str, ca_file: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_file))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    return reply


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(reason=f"{tool} is not installed")
    return path


def openssl_verify(port: int, host: str, ca_file: Path) -> subprocess.CompletedProcess[str]:
    check = ["-verify_ip", host] if is_ip(host) else ["-verify_hostname", host]
    sni = [] if is_ip(host) else ["-servername", host]
    command = [need("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", *sni]
    command += ["-CAfile", str(ca_file), "-verify_return_error", *check]
    return subprocess.run(command, input="", capture_output=True, text=True, timeout=TIMEOUT)


def curl_get(port: int, host: str, ca_file: Path) -> subprocess.CompletedProcess[str]:
    # -q first: ignore any ~/.curlrc; --noproxy: loopback never goes through a proxy.
    command = [need("curl"), "-q", "-sS", "--noproxy", "*", "--max-time", str(TIMEOUT)]
    command += ["--cacert", str(ca_file)]
    if not is_ip(host):
        command += ["--resolve", f"{host}:{port}:127.0.0.1"]
    command.append(f"https://{host}:{port}/")
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT + 5)


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    """Certs dirs (each with its own CA) for the hosts the handshake tests use."""
    out = {}
    for host in ("127.0.0.1", "localhost", "127.0.0.2", "otherhost"):
        folder = tmp_path_factory.mktemp("certs") / host
        certs.issue(make_plan(folder, host))
        out[host] = cert_files(folder)
    return out


# (host the cert is for, host the client asks for)
MATCHING = [("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")]
MISMATCHED = [("127.0.0.2", "127.0.0.1"), ("otherhost", "localhost")]


@pytest.mark.parametrize(("cert_host", "client_host"), MATCHING)
def test_handshake__python_accepts(
    issued: dict[str, CertFiles], cert_host: str, client_host: str
) -> None:
    files = issued[cert_host]
    with tls_server(files.server_cert, files.server_key) as port:
        assert python_get(port, client_host, files.ca_cert).endswith(b"\r\n\r\nok")


@pytest.mark.parametrize(("cert_host", "client_host"), MISMATCHED)
def test_handshake__python_refuses_other_host(
    issued: dict[str, CertFiles], cert_host: str, client_host: str
) -> None:
    files = issued[cert_host]
    with (
        tls_server(files.server_cert, files.server_key) as port,
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
    ):
        python_get(port, client_host, files.ca_cert)


def test_handshake__python_refuses_other_ca(issued: dict[str, CertFiles]) -> None:
    files, stranger = issued["127.0.0.1"], issued["127.0.0.2"]
    with (
        tls_server(files.server_cert, files.server_key) as port,
        pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"),
    ):
        python_get(port, "127.0.0.1", stranger.ca_cert)


def test_handshake__python_accepts_rsa_leaf(tmp_path: Path) -> None:
    files = cert_files(tmp_path / "certs")
    certs.issue(make_plan(tmp_path / "certs", "127.0.0.1", key="rsa-2048"))
    with tls_server(files.server_cert, files.server_key) as port:
        assert python_get(port, "127.0.0.1", files.ca_cert).endswith(b"ok")


@pytest.mark.parametrize(("cert_host", "client_host"), MATCHING)
def test_handshake__openssl_accepts(
    issued: dict[str, CertFiles], cert_host: str, client_host: str
) -> None:
    files = issued[cert_host]
    with tls_server(files.server_cert, files.server_key) as port:
        result = openssl_verify(port, client_host, files.ca_cert)
    assert result.returncode == 0, result.stderr
    assert "Verify return code: 0 (ok)" in result.stdout


@pytest.mark.parametrize(("cert_host", "client_host"), MISMATCHED)
def test_handshake__openssl_refuses_other_host(
    issued: dict[str, CertFiles], cert_host: str, client_host: str
) -> None:
    files = issued[cert_host]
    with tls_server(files.server_cert, files.server_key) as port:
        result = openssl_verify(port, client_host, files.ca_cert)
    assert result.returncode != 0
    assert "mismatch" in result.stdout + result.stderr


@pytest.mark.parametrize(("cert_host", "client_host"), MATCHING)
def test_handshake__curl_accepts(
    issued: dict[str, CertFiles], cert_host: str, client_host: str
) -> None:
    files = issued[cert_host]
    with tls_server(files.server_cert, files.server_key) as port:
        result = curl_get(port, client_host, files.ca_cert)
    assert (result.returncode, result.stdout) == (0, "ok"), result.stderr


@pytest.mark.parametrize(("cert_host", "client_host"), MISMATCHED)
def test_handshake__curl_refuses_other_host(
    issued: dict[str, CertFiles], cert_host: str, client_host: str
) -> None:
    files = issued[cert_host]
    with tls_server(files.server_cert, files.server_key) as port:
        result = curl_get(port, client_host, files.ca_cert)
    assert result.returncode == 60, result.stderr  # CURLE_PEER_FAILED_VERIFICATION
    assert result.stdout == ""


# ---------------------------------------------------------------- what issue() writes


def test_issue__fresh_creates_ca_and_leaf(tmp_path: Path) -> None:
    report = certs.issue(make_plan(tmp_path / "certs", "10.0.0.5"), now=T0)
    files = cert_files(tmp_path / "certs")
    assert (report.ca, report.leaf) == ("created", "issued")
    assert report.lines == (
        f"CA created: {files.ca_cert}; firmware must embed it to accept this server",
        "server cert issued for '10.0.0.5': ec-p256, 825 days",
    )
    assert report.written == (files.ca_key, files.ca_cert, files.server_key, files.server_cert)
    assert report.changed
    assert report.ca_fingerprint == certs.fingerprint(files.ca_cert.read_bytes())
    assert report.leaf_fingerprint == certs.fingerprint(files.server_cert.read_bytes())
    check_files(files, "10.0.0.5", T0)


def test_issue__concurrent_runs_make_one_ca(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    plan = make_plan(folder, "10.0.0.5")
    reports: list[certs.IssueReport] = []
    workers = [
        threading.Thread(target=lambda: reports.append(certs.issue(plan, now=T0))) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(TIMEOUT)
    assert sorted(r.ca for r in reports) == ["created", "reused", "reused", "reused"]
    assert len({r.ca_fingerprint for r in reports}) == 1
    assert len({r.leaf_fingerprint for r in reports}) == 1
    files = cert_files(folder)
    check_files(files, "10.0.0.5", T0)


def test_issue__ca_profile(tmp_path: Path) -> None:
    certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0)
    ca = load_cert(cert_files(tmp_path).ca_cert)
    assert ca.version == x509.Version.v3
    assert ca.subject.rfc4514_string() == "CN=demo OTA CA"
    assert ca.issuer == ca.subject
    constraints = ext(ca, x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ext(ca, x509.SubjectKeyIdentifier)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == timedelta(days=3650, hours=1)
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)


@pytest.mark.parametrize(
    ("host", "expected_san"),
    [
        ("10.0.0.5", ["IP:10.0.0.5", "DNS:10.0.0.5"]),
        ("ota.example.com", ["DNS:ota.example.com"]),
        ("fd00::5", ["IP:fd00::5", "DNS:fd00::5"]),
    ],
)
def test_issue__leaf_profile(tmp_path: Path, host: str, expected_san: list[str]) -> None:
    certs.issue(make_plan(tmp_path, host, days=100), now=T0)
    files = cert_files(tmp_path)
    leaf, ca = load_cert(files.server_cert), load_cert(files.ca_cert)
    assert leaf.subject.rfc4514_string() == f"CN={host}"
    assert leaf.issuer == ca.subject
    san = ext(leaf, x509.SubjectAlternativeName).value
    texts = [f"IP:{n.value}" if isinstance(n, x509.IPAddress) else f"DNS:{n.value}" for n in san]
    assert texts == expected_san
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = ext(leaf, x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment and not usage.key_cert_sign
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert leaf.not_valid_before_utc == T0 - timedelta(hours=1)
    assert leaf.not_valid_after_utc == T0 + timedelta(days=100)
    assert leaf.serial_number != ca.serial_number


def test_issue__second_run_touches_nothing(tmp_path: Path) -> None:
    plan = make_plan(tmp_path / "certs", "10.0.0.5")
    certs.issue(plan, now=T0)
    before = snapshot(tmp_path / "certs")
    report = certs.issue(plan, now=T0 + timedelta(days=1))
    assert snapshot(tmp_path / "certs") == before
    assert (report.ca, report.leaf, report.written, report.changed) == (
        "reused",
        "reused",
        (),
        False,
    )
    assert str(report).splitlines()[-1] == "server cert reused: covers '10.0.0.5', ec-p256"


def test_issue__host_change_reissues_only_the_leaf(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    first = certs.issue(make_plan(folder, "10.0.0.5"), now=T0)
    before = snapshot(folder)
    report = certs.issue(make_plan(folder, "192.168.1.7"), now=T0)
    after = snapshot(folder)
    for name in ("ca_cert.pem", "ca_key.pem"):
        assert after[name] == before[name]
    for name in ("server_cert.pem", "server_key.pem"):
        assert after[name][0] != before[name][0]
    assert (report.ca, report.leaf) == ("reused", "reissued")
    assert "server cert reissued: host changed from 10.0.0.5 to 192.168.1.7" in report.lines
    assert report.ca_fingerprint == first.ca_fingerprint
    assert report.leaf_fingerprint != first.leaf_fingerprint
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)  # no stray temp files


def test_issue__key_type_change_reissues(tmp_path: Path) -> None:
    certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0)
    report = certs.issue(make_plan(tmp_path, "10.0.0.5", key="rsa-2048"), now=T0)
    assert "server cert reissued: key type changed from ec-p256 to rsa-2048" in report.lines
    leaf = load_cert(cert_files(tmp_path).server_cert)
    public = leaf.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    assert ext(leaf, x509.KeyUsage).value.key_encipherment
    # The CA keeps the key type it was born with: devices already trust it.
    assert isinstance(
        load_cert(cert_files(tmp_path).ca_cert).public_key(), ec.EllipticCurvePublicKey
    )
    assert certs.issue(make_plan(tmp_path, "10.0.0.5", key="rsa-2048"), now=T0).changed is False


def test_issue__renews_within_30_days_of_expiry(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, "10.0.0.5", days=90)
    certs.issue(plan, now=T0)
    expiry = T0 + timedelta(days=90)
    assert certs.issue(plan, now=expiry - timedelta(days=31)).changed is False
    report = certs.issue(plan, now=expiry - timedelta(days=29))
    assert report.lines[-1] == "server cert reissued: expires 2025-05-30 12:00 UTC (within 30 days)"
    leaf = load_cert(cert_files(tmp_path).server_cert)
    assert leaf.not_valid_after_utc == expiry + timedelta(days=61)


def test_issue__mismatched_key_reissues(tmp_path: Path) -> None:
    files = cert_files(tmp_path)
    certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0)
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    files.server_key.write_bytes(stranger)
    report = certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0)
    assert report.lines[-1] == "server cert reissued: server_key.pem does not match server_cert.pem"
    assert files.server_key.read_bytes() != stranger
    check_files(files, "10.0.0.5", T0)


def test_issue__missing_key_file_reissues(tmp_path: Path) -> None:
    files = cert_files(tmp_path)
    certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0)
    files.server_key.unlink()
    assert certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0).leaf == "reissued"
    assert files.server_key.exists()


def test_issue__rotate_ca_keeps_old_files(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    plan = make_plan(folder, "10.0.0.5")
    first = certs.issue(plan, now=T0)
    old = snapshot(folder)
    report = certs.issue(plan, rotate_ca=True, now=T0)
    stamp = "20250301T120000Z"
    kept_cert, kept_key = folder / f"ca_cert.pem.{stamp}.old", folder / f"ca_key.pem.{stamp}.old"
    assert report.retired == (kept_cert, kept_key)
    assert kept_cert.read_bytes() == old["ca_cert.pem"][0]
    assert kept_key.read_bytes() == old["ca_key.pem"][0]
    assert kept_key.stat().st_mode & 0o777 == 0o600
    assert (report.ca, report.leaf) == ("rotated", "reissued")
    assert report.ca_fingerprint != first.ca_fingerprint
    assert report.lines[-1] == "server cert reissued: not signed by the current CA"
    # A second rotation in the same second must not overwrite the first one's files.
    again = certs.issue(plan, rotate_ca=True, now=T0)
    assert again.retired == (
        folder / f"ca_cert.pem.{stamp}-2.old",
        folder / f"ca_key.pem.{stamp}-2.old",
    )
    assert kept_cert.read_bytes() == old["ca_cert.pem"][0]


def test_issue__half_a_ca_is_an_error(tmp_path: Path) -> None:
    files = cert_files(tmp_path)
    certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0)
    files.ca_key.unlink()
    before = snapshot(tmp_path)
    with pytest.raises(CertError) as caught:
        certs.issue(make_plan(tmp_path, "10.0.0.5"), now=T0)
    assert str(caught.value) == (
        f"'{files.ca_cert}' exists but '{files.ca_key}' does not; restore it from a backup, or "
        "rotate the CA on purpose (boards trusting the old CA will refuse updates)"
    )
    assert snapshot(tmp_path) == before


def test_issue__file_modes(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    certs.issue(make_plan(folder, "10.0.0.5"), now=T0)
    assert folder.stat().st_mode & 0o777 == 0o700
    modes = {name: mode for name, (_, _, mode) in snapshot(folder).items()}
    assert modes == {
        "ca_cert.pem": 0o644,
        "ca_key.pem": 0o600,
        "server_cert.pem": 0o644,
        "server_key.pem": 0o600,
    }


def test_issue__tightens_loose_modes_without_rewriting(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    files = cert_files(folder)
    certs.issue(make_plan(folder, "10.0.0.5"), now=T0)
    folder.chmod(0o755)
    files.ca_key.chmod(0o644)
    files.server_key.chmod(0o640)
    before = snapshot(folder)
    assert certs.issue(make_plan(folder, "10.0.0.5"), now=T0).changed is False
    after = snapshot(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in ("ca_key.pem", "server_key.pem"):
        assert after[name][:2] == before[name][:2]
        assert after[name][2] == 0o600


def test_issue__no_private_key_outside_key_files(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    reports = [
        certs.issue(make_plan(folder, "10.0.0.5"), now=T0),
        certs.issue(make_plan(folder, "ota.example.com"), now=T0),
        certs.issue(make_plan(folder, "ota.example.com"), rotate_ca=True, now=T0),
    ]
    certs.place_ca(cert_files(folder).ca_cert, tmp_path / "app" / "main" / "ca_cert.pem")
    holders = sorted(
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if p.is_file()
        if b"PRIVATE KEY" in p.read_bytes()
    )
    assert holders == [
        "certs/ca_key.pem",
        "certs/ca_key.pem.20250301T120000Z.old",
        "certs/server_key.pem",
    ]
    assert not any("PRIVATE KEY" in str(report) for report in reports)


# ---------------------------------------------------------------- CI mode: OTA_CA_CERT, OTA_CA_KEY


def ci_env(cert: Path, key: Path) -> dict[str, str]:
    """CI mode: the CA comes from the files $OTA_CA_CERT and $OTA_CA_KEY name."""
    return {"OTA_CA_CERT": str(cert), "OTA_CA_KEY": str(key)}


def issue_ci(tmp_path: Path, env: dict[str, str]) -> certs.IssueReport:
    return certs.issue(make_plan(tmp_path / "certs", "10.0.0.5", env=env), now=T0)


def test_ci__uses_the_given_ca(tmp_path: Path) -> None:
    cert_file, key_file = external_ca(tmp_path / "secrets")
    env = ci_env(cert_file, key_file)
    plan = make_plan(tmp_path / "certs", "10.0.0.5", env=env)
    assert (plan.ca_cert_file, plan.ca_key_file) == (cert_file, key_file)
    report = certs.issue(plan, now=T0)
    files = cert_files(tmp_path / "certs")
    assert (report.ca, report.leaf) == ("from-env", "issued")
    assert not files.ca_key.exists()
    assert files.ca_cert.read_bytes() == cert_file.read_bytes()
    assert report.ca_fingerprint == certs.fingerprint(cert_file.read_bytes())
    check_leaf(
        files.server_cert.read_bytes(),
        files.server_key.read_bytes(),
        cert_file.read_bytes(),
        "10.0.0.5",
        T0,
    )
    before = snapshot(tmp_path / "certs")
    assert certs.issue(plan, now=T0).changed is False
    assert snapshot(tmp_path / "certs") == before


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTA_CA_CERT": "/x"}, "OTA_CA_CERT is set but OTA_CA_KEY is not; set both or neither"),
        ({"OTA_CA_KEY": "/x"}, "OTA_CA_KEY is set but OTA_CA_CERT is not; set both or neither"),
    ],
)
def test_ci__one_variable_is_an_error(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_plan(tmp_path, "10.0.0.5", env=env)
    assert str(caught.value) == message


def test_ci__missing_file(tmp_path: Path) -> None:
    _, key_file = external_ca(tmp_path / "secrets")
    missing = tmp_path / "nope.pem"
    env = ci_env(missing, key_file)
    with pytest.raises(CertError) as caught:
        issue_ci(tmp_path, env)
    assert str(caught.value) == f"OTA_CA_CERT: file '{missing}' does not exist"


def test_ci__mismatched_pair(tmp_path: Path) -> None:
    cert_file, _ = external_ca(tmp_path / "one")
    _, other_key = external_ca(tmp_path / "two")
    env = ci_env(cert_file, other_key)
    with pytest.raises(CertError) as caught:
        issue_ci(tmp_path, env)
    assert str(caught.value) == (
        "OTA_CA_CERT and OTA_CA_KEY do not match (the key is not the certificate's key)"
    )
    assert not (tmp_path / "certs" / "server_cert.pem").exists()


def test_ci__not_a_ca(tmp_path: Path) -> None:
    cert_file, key_file = external_ca(tmp_path / "secrets", ca=False)
    env = ci_env(cert_file, key_file)
    with pytest.raises(CertError) as caught:
        issue_ci(tmp_path, env)
    assert str(caught.value) == (
        f"OTA_CA_CERT: '{cert_file}' is not a CA certificate (it lacks basicConstraints CA:TRUE)"
    )


def test_ci__key_is_not_a_key(tmp_path: Path) -> None:
    cert_file, _ = external_ca(tmp_path / "secrets")
    env = ci_env(cert_file, cert_file)
    with pytest.raises(CertError) as caught:
        issue_ci(tmp_path, env)
    assert str(caught.value) == f"OTA_CA_KEY: '{cert_file}' is not an unencrypted PEM private key"


def test_ci__refuses_rotation_and_a_local_ca(tmp_path: Path) -> None:
    cert_file, key_file = external_ca(tmp_path / "secrets")
    env = ci_env(cert_file, key_file)
    folder = tmp_path / "certs"
    with pytest.raises(CertError, match="cannot be rotated here"):
        certs.issue(make_plan(folder, "10.0.0.5", env=env), rotate_ca=True, now=T0)
    certs.issue(make_plan(folder, "10.0.0.5"), now=T0)  # a local CA
    before = snapshot(folder)
    with pytest.raises(CertError, match="belongs to a local CA and OTA_CA_CERT names another"):
        certs.issue(make_plan(folder, "10.0.0.5", env=env), now=T0)
    assert snapshot(folder) == before


# ---------------------------------------------------------------- checks and their messages


@pytest.fixture
def pair(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    """(leaf, key, CA) PEMs for host 10.0.0.5, issued at T0 for 100 days."""
    certs.issue(make_plan(tmp_path / "a", "10.0.0.5", days=100), now=T0)
    files = cert_files(tmp_path / "a")
    return files.server_cert.read_bytes(), files.server_key.read_bytes(), files.ca_cert.read_bytes()


def test_check_leaf__host_not_covered(pair: tuple[bytes, bytes, bytes]) -> None:
    with pytest.raises(CertError) as caught:
        check_leaf(*pair, "c.example", T0)
    assert (
        str(caught.value)
        == f"server cert covers '10.0.0.5' but the OTA URL host is 'c.example'; {REISSUE}"
    )


def test_check_leaf__expired(pair: tuple[bytes, bytes, bytes]) -> None:
    with pytest.raises(CertError) as caught:
        check_leaf(*pair, "10.0.0.5", T0 + timedelta(days=101))
    assert str(caught.value) == f"server cert expired on 2025-06-09 12:00 UTC; {REISSUE}"


def test_check_leaf__not_yet_valid(pair: tuple[bytes, bytes, bytes]) -> None:
    with pytest.raises(CertError) as caught:
        check_leaf(*pair, "10.0.0.5", T0 - timedelta(days=1))
    assert str(caught.value) == (
        "server cert is not valid before 2025-03-01 11:00 UTC; check this machine's clock"
    )


def test_check_leaf__key_mismatch(tmp_path: Path, pair: tuple[bytes, bytes, bytes]) -> None:
    leaf, _, ca = pair
    certs.issue(make_plan(tmp_path / "b", "10.0.0.5"), now=T0)
    other_key = cert_files(tmp_path / "b").server_key.read_bytes()
    with pytest.raises(CertError) as caught:
        check_leaf(leaf, other_key, ca, "10.0.0.5", T0)
    assert str(caught.value) == f"the server key does not match the server cert; {REISSUE}"


def test_check_leaf__other_ca(tmp_path: Path, pair: tuple[bytes, bytes, bytes]) -> None:
    leaf, key, _ = pair
    certs.issue(make_plan(tmp_path / "b", "10.0.0.5"), now=T0)
    other_ca = cert_files(tmp_path / "b").ca_cert.read_bytes()
    short = certs.fingerprint(other_ca)[:16]
    with pytest.raises(CertError) as caught:
        check_leaf(leaf, key, other_ca, "10.0.0.5", T0)
    assert (
        str(caught.value)
        == f"the server cert was not signed by the CA (SHA-256 {short}…); {REISSUE}"
    )


def test_check_embedded_ca(tmp_path: Path, pair: tuple[bytes, bytes, bytes]) -> None:
    _, _, ca = pair
    for embedded in certs.ca_digests(ca):  # as stored, and as place_ca writes it for the build
        check_embedded_ca(embedded, ca, "factory")
    check_embedded_ca(None, ca, "factory")  # an app that embeds no CA
    certs.issue(make_plan(tmp_path / "b", "10.0.0.5"), now=T0)
    old = hashlib.sha256(cert_files(tmp_path / "b").ca_cert.read_bytes()).hexdigest()
    with pytest.raises(CertError) as caught:
        check_embedded_ca(old, ca, "factory")
    assert str(caught.value) == (
        f"the CA embedded in app 'factory' (SHA-256 {old[:16]}…) is not the CA that signed the "
        f"server cert (certs/ca_cert.pem, SHA-256 {hashlib.sha256(ca).hexdigest()[:16]}…); "
        "run `doit build:factory` and flash it over serial"
    )


def test_fingerprint_is_sha256_of_der(pair: tuple[bytes, bytes, bytes]) -> None:
    _, _, ca = pair
    der = ssl.PEM_cert_to_DER_cert(ca.decode())
    assert certs.fingerprint(ca) == hashlib.sha256(der).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", certs.fingerprint(ca))


def _cert_with(names: list[x509.GeneralName] | None, cn: str = "10.0.0.5") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=1))
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("names", "host", "expected"),
    [
        ([x509.IPAddress(ipaddress.ip_address("10.0.0.5"))], "10.0.0.5", True),
        ([x509.IPAddress(ipaddress.ip_address("10.0.0.5"))], "10.0.0.6", False),
        # Python's ssl does not match an IP host against a DNS entry; neither do we.
        ([x509.DNSName("10.0.0.5")], "10.0.0.5", False),
        ([x509.DNSName("Ota.Example.com")], "ota.example.COM", True),
        ([x509.DNSName("ota.example.com")], "www.example.com", False),
        ([x509.IPAddress(ipaddress.ip_address("fd00::5"))], "fd00:0::5", True),
        # Clients ignore the CN once there is a SAN, and Python ignores it always.
        (None, "10.0.0.5", False),
    ],
)
def test_covers_host(names: list[x509.GeneralName] | None, host: str, expected: bool) -> None:
    assert covers_host(_cert_with(names), host) is expected


def test_covers_host__accepts_pem(pair: tuple[bytes, bytes, bytes]) -> None:
    assert covers_host(pair[0], "10.0.0.5")


# ---------------------------------------------------------------- place_ca and the plan


def test_place_ca__copies_only_the_certificate(
    tmp_path: Path, pair: tuple[bytes, bytes, bytes]
) -> None:
    _, key, ca = pair
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(key + ca)  # a careless source holding a key as well
    dest = tmp_path / "app" / "main" / "ca_cert.pem"
    assert certs.place_ca(bundle, dest) is True
    assert dest.read_bytes() == ca
    assert dest.stat().st_mode & 0o777 == 0o644
    stamp = dest.stat().st_mtime_ns
    assert certs.place_ca(bundle, dest) is False
    assert dest.stat().st_mtime_ns == stamp


def test_place_ca__not_a_certificate(tmp_path: Path, pair: tuple[bytes, bytes, bytes]) -> None:
    source = tmp_path / "key.pem"
    source.write_bytes(pair[1])
    with pytest.raises(CertError) as caught:
        certs.place_ca(source, tmp_path / "out.pem")
    assert str(caught.value) == f"CA cert '{source}' is not a PEM certificate"
    assert not (tmp_path / "out.pem").exists()


def test_plan__to_json_is_plain(tmp_path: Path) -> None:
    env = {"OTA_CA_CERT": "/ci/ca.pem", "OTA_CA_KEY": "/ci/ca.key"}
    plan = make_plan(tmp_path, "10.0.0.5", key="rsa-2048", days=365, env=env)
    assert json.loads(json.dumps(plan.to_json())) == {
        "project": "demo",
        "host": "10.0.0.5",
        "key": "rsa-2048",
        "days": 365,
        "certs_dir": str(tmp_path),
        "ca_cert_file": "/ci/ca.pem",
        "ca_key_file": "/ci/ca.key",
    }
    assert make_plan(tmp_path, "h").to_json()["ca_cert_file"] is None


def test_plan__a_host_that_cannot_go_into_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_plan(tmp_path, "bücher.example")
    assert str(caught.value) == (
        "ota.url: host 'bücher.example' cannot go into a certificate; "
        "write the name in its xn-- (punycode) form"
    )
