"""Every key a project can sign with goes through one loader (firmware/signing_key.load): keys/,
$OTA_SIGNING_KEY, and the public key of ota.sign_command. Each bad key is one line, exit code
≠ 0, no traceback, through `doit build` in a subprocess as a user runs it, before idf.py runs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from esp_ota_doit.firmware import signing_key
from esp_ota_doit.idf import signing

from tests.doitrun import doit_process, edit

_PEM = serialization.Encoding.PEM
_PKCS8 = serialization.PrivateFormat.PKCS8
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _private(key: object, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(_PEM, _PKCS8, encryption)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture(scope="module")
def rsa3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _bad_keys(good: rsa.RSAPrivateKey) -> dict[str, tuple[bytes | None, str]]:
    """name -> (the key file's bytes, the words its one line must hold); None: no file."""
    p256 = ec.generate_private_key(ec.SECP256R1())
    return {
        "empty": (b"", "is empty; restore the key from your backup"),
        "not-pem": (b"hello world\n", "is not a PEM private key (no '-----BEGIN"),
        "malformed": (
            b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
            "is not a valid PEM private key (damaged or of an unknown format)",
        ),
        "public-only": (
            good.public_key().public_bytes(_PEM, _SPKI),
            "holds only a public key; signing needs the private key, or set ota.sign_command",
        ),
        "passphrase": (
            _private(good, b"s3cret"),
            "is protected by a passphrase and $OTA_SIGNING_KEY_PASSPHRASE is not set",
        ),
        "rsa2048": (
            _private(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "is an RSA-2048 key; Secure Boot V2 signs with rsa3072 (RSA-3072) or ecdsa256",
        ),
        "ecdsa256-for-rsa3072": (
            _private(p256),
            "is an ecdsa256 key but ota.sign is rsa3072 (esp32 verifies rsa3072 only)",
        ),
        "ed25519": (
            _private(ed25519.Ed25519PrivateKey.generate()),
            "is an Ed25519 key; Secure Boot V2 signs with rsa3072",
        ),
    }


_CASES = [
    "empty",
    "not-pem",
    "malformed",
    "public-only",
    "passphrase",
    "rsa2048",
    "ecdsa256-for-rsa3072",
    "ed25519",
]


def _signed_project(project: Path) -> None:
    edit(project, "  image: hello_world\n", "  image: hello_world\n  sign: rsa3072\n")


def _assert_one_line(result: object, words: str) -> None:
    out = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 0, out  # type: ignore[attr-defined]
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if words in line]
    assert len(lines) == 1, out
    assert "\n" not in lines[0]


@pytest.mark.parametrize("case", _CASES)
def test_bad_key__in_keys_folder(
    project_dir: Path, idf: Path, rsa3072: rsa.RSAPrivateKey, case: str
) -> None:
    data, words = _bad_keys(rsa3072)[case]
    _signed_project(project_dir)
    key = project_dir / "keys" / "signing_key.pem"
    key.parent.mkdir()
    assert data is not None
    key.write_bytes(data)
    result = doit_process(project_dir, "build")
    _assert_one_line(result, words)
    assert f"{key} {words.split(' (')[0]}".split(";")[0] in result.stdout + result.stderr
    assert "idf.py build" not in result.stdout  # refused before anything was built
    assert key.read_bytes() == data  # never replaced


@pytest.mark.parametrize("case", _CASES)
def test_bad_key__through_ota_signing_key(
    project_dir: Path, idf: Path, rsa3072: rsa.RSAPrivateKey, case: str, tmp_path: Path
) -> None:
    data, words = _bad_keys(rsa3072)[case]
    _signed_project(project_dir)
    key = tmp_path / "ci" / "key.pem"
    key.parent.mkdir()
    assert data is not None
    key.write_bytes(data)
    env = {**os.environ, "OTA_SIGNING_KEY": str(key)}
    result = doit_process(project_dir, "build", env=env)
    _assert_one_line(result, words)
    assert f"$OTA_SIGNING_KEY ({key})" in result.stdout + result.stderr
    assert "idf.py build" not in result.stdout


def _link(target: Path, where: Path) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(target)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: tmp / "nowhere.pem", "which does not exist; point it at the key file"),
        (lambda tmp: tmp, "is not a file; point it at the PEM key file"),
    ],
)
def test_bad_key__links_in_keys_folder(
    project_dir: Path, idf: Path, tmp_path: Path, make: Callable[[Path], Path], words: str
) -> None:
    _signed_project(project_dir)
    _link(make(tmp_path / "outside"), project_dir / "keys" / "signing_key.pem")
    (tmp_path / "outside").mkdir()
    result = doit_process(project_dir, "build")
    _assert_one_line(result, words)


def test_bad_key__links_through_ota_signing_key(project_dir: Path, tmp_path: Path) -> None:
    _signed_project(project_dir)
    for target in (tmp_path / "nowhere.pem", tmp_path):
        link = tmp_path / f"link-{target.name}"
        link.symlink_to(target)
        result = doit_process(
            project_dir, "build", env={**os.environ, "OTA_SIGNING_KEY": str(link)}
        )
        assert result.returncode == 3
        assert result.stderr == (
            f"ERROR: ota.sign: $OTA_SIGNING_KEY names '{link}', which is not a file; point it at "
            "the signing key (a PEM file), or unset it to use keys/\n"
        )
        assert "Traceback" not in result.stderr


def test_bad_key__unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EACCES (root reads every file, so the error is injected where the loader reads)."""
    key = tmp_path / "signing_key.pem"
    key.write_bytes(b"x")

    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    plan = signing_key.SigningPlan(scheme="rsa3072", key=key, from_env=True, target="esp32")
    with pytest.raises(signing_key.SigningKeyError) as caught:
        signing_key.load(plan, {})
    assert str(caught.value) == (
        f"$OTA_SIGNING_KEY ({key}) cannot be read (Permission denied); make it readable by "
        "this user"
    )


def test_bad_key__in_a_folder_that_cannot_be_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES on a folder on the way (injected: root searches every folder)."""
    key = tmp_path / "locked" / "signing_key.pem"

    def refuse(self: Path, *_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "lstat", refuse)
    monkeypatch.setattr(Path, "stat", refuse)
    plan = signing_key.SigningPlan(scheme="rsa3072", key=key, from_env=False, target="esp32")
    with pytest.raises(signing_key.SigningKeyError) as caught:
        signing_key.load(plan, {})
    assert str(caught.value) == (
        f"{key} cannot be reached (Permission denied); make it and its folders readable by "
        "this user"
    )
    assert not signing_key.key_ready(plan, {})


def test_passphrase__wrong_one_is_one_line(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    key = tmp_path / "k.pem"
    key.write_bytes(_private(rsa3072, b"right"))
    plan = signing_key.SigningPlan(scheme="rsa3072", key=key, from_env=True, target="esp32")
    with pytest.raises(signing_key.SigningKeyError, match="does not open with"):
        signing_key.load(plan, {"OTA_SIGNING_KEY_PASSPHRASE": "wrong"})
    loaded = signing_key.load(plan, {"OTA_SIGNING_KEY_PASSPHRASE": "right"})
    assert loaded.private_pem is not None and b"ENCRYPTED" not in loaded.private_pem
    assert "right" not in repr(loaded) and "PRIVATE" not in repr(loaded)


def test_passphrase__build_signs_with_it(
    project_dir: Path, idf: Path, tmp_path: Path, rsa3072: rsa.RSAPrivateKey
) -> None:
    _signed_project(project_dir)
    key = tmp_path / "ci.pem"
    key.write_bytes(_private(rsa3072, b"pass phrase"))
    env = {**os.environ, "OTA_SIGNING_KEY": str(key), "OTA_SIGNING_KEY_PASSPHRASE": "pass phrase"}
    result = doit_process(project_dir, "build", env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    signed = project_dir / "build/hello_world/hello_world-signed.bin"
    signing.verify(signed.read_bytes(), rsa3072.public_key().public_bytes(_PEM, _SPKI), signed.name)
    assert "pass phrase" not in (project_dir / ".doit.db").read_bytes().decode("latin-1")


def test_public_key_digest__as_espsecure_computes_it(
    tmp_path: Path, rsa3072: rsa.RSAPrivateKey
) -> None:
    import subprocess
    import sys

    public = rsa3072.public_key().public_bytes(_PEM, _SPKI)
    (tmp_path / "pub.pem").write_bytes(public)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "espsecure",
            "digest-sbv2-public-key",
            "--keyfile",
            str(tmp_path / "pub.pem"),
            "--output",
            str(tmp_path / "digest.bin"),
        ],
        check=True,
        capture_output=True,
    )
    expected = (tmp_path / "digest.bin").read_bytes().hex()
    assert signing_key.public_key_digest(public) == expected
    assert signing_key.public_key_digest(_private(rsa3072)) == expected


def test_create_key__never_chmods_through_a_link(tmp_path: Path) -> None:
    """A key or keys/ that is a link belongs to the user: its target's mode stays."""
    outside = tmp_path / "outside"
    outside.mkdir()
    signing.new_key("rsa3072", outside / "real.pem")
    outside.chmod(0o755)
    (outside / "real.pem").chmod(0o644)
    project_keys = tmp_path / "project" / "keys"
    _link(outside / "real.pem", project_keys / "signing_key.pem")
    plan = signing_key.SigningPlan(
        scheme="rsa3072", key=project_keys / "signing_key.pem", from_env=False
    )
    signing_key.create_key(plan, {})
    assert (outside / "real.pem").stat().st_mode & 0o777 == 0o644
    # keys/ itself a link: a new key is made there, the folder's mode stays.
    linked = tmp_path / "p2" / "keys"
    _link(outside, linked)
    plan = signing_key.SigningPlan(scheme="rsa3072", key=linked / "signing_key.pem", from_env=False)
    signing_key.create_key(plan, {})
    assert outside.stat().st_mode & 0o777 == 0o755
    assert (outside / "signing_key.pem").stat().st_mode & 0o777 == 0o600


# --- ota.sign_command: a key that never leaves an HSM or a signing service ------------------

_OPENSSL_RSA = (
    "openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 "
    "-sign {key} -out {{signature}} {{data}}"
)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_sign_command__build_signs_without_the_private_key(
    project_dir: Path, idf: Path, tmp_path: Path, rsa3072: rsa.RSAPrivateKey
) -> None:
    """The private key stays with the "signing service" (openssl here); the project holds only
    the public key, and the build still verifies the result with espsecure."""
    service = tmp_path / "service" / "key.pem"
    service.parent.mkdir()
    service.write_bytes(_private(rsa3072))
    command = _OPENSSL_RSA.format(key=service)
    edit(
        project_dir,
        "  image: hello_world\n",
        f'  image: hello_world\n  sign: rsa3072\n  sign_command: "{command}"\n',
    )
    public = project_dir / "keys" / "signing_pubkey.pem"
    public.parent.mkdir()
    public.write_bytes(rsa3072.public_key().public_bytes(_PEM, _SPKI))
    result = doit_process(project_dir, "build", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    signed = (project_dir / "build/hello_world/hello_world-signed.bin").read_bytes()
    signing.verify(signed, public.read_bytes(), "hello_world-signed.bin")
    assert not (project_dir / "keys" / "signing_key.pem").exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_sign_command__another_key_is_one_line(
    project_dir: Path, idf: Path, tmp_path: Path, rsa3072: rsa.RSAPrivateKey
) -> None:
    service = tmp_path / "other.pem"
    service.write_bytes(_private(rsa.generate_private_key(public_exponent=65537, key_size=3072)))
    edit(
        project_dir,
        "  image: hello_world\n",
        "  image: hello_world\n  sign: rsa3072\n"
        f'  sign_command: "{_OPENSSL_RSA.format(key=service)}"\n',
    )
    public = project_dir / "keys" / "signing_pubkey.pem"
    public.parent.mkdir()
    public.write_bytes(rsa3072.public_key().public_bytes(_PEM, _SPKI))
    result = doit_process(project_dir, "build", timeout=300)
    _assert_one_line(result, "ota.sign_command: the signature does not fit the image and key")


def test_sign_command__missing_public_key_says_where(project_dir: Path, idf: Path) -> None:
    edit(
        project_dir,
        "  image: hello_world\n",
        '  image: hello_world\n  sign: rsa3072\n  sign_command: "sign {data} {signature}"\n',
    )
    result = doit_process(project_dir, "build")
    _assert_one_line(result, "keys/signing_pubkey.pem is missing; put the public key")
