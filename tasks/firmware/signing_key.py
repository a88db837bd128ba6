"""The project's app-signing key (ota.sign): keys/signing_key.pem, or $OTA_SIGNING_KEY in CI, or
a key that never leaves an HSM or a signing service (ota.sign_command with the public key here).
One loader checks every key the same way before anything is built; a key is made once with
espsecure and replaced only on purpose (rotate). Losing it ends OTA for every board flashed
with apps it signed, so every step says so.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config.model import Project
from ..errors import ConfigError, ProjectError, warn
from ..idf.chips import CHIPS
from ..paths import key_files

# The keys are made, read and used by actions: idf.signing is imported in them, not when doit
# creates the tasks (bench/noop.py).

__all__ = [
    "PASSPHRASE_ENV",
    "SigningKey",
    "SigningKeyError",
    "SigningPlan",
    "create_key",
    "key_ready",
    "load",
    "plan",
    "public_key_digest",
    "rotate",
]

PASSPHRASE_ENV = "OTA_SIGNING_KEY_PASSPHRASE"
_LOSS = (
    "keep a copy somewhere safe: a lost signing key means no further OTA update for any board "
    "flashed with these apps (each needs a serial flash)"
)
_KEY_LIMIT = 64 * 1024  # a PEM key is a few KiB; anything larger is not one


class SigningKeyError(ProjectError):
    """The signing key is missing, unreadable or of the wrong scheme."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningPlan:
    """Which scheme signs the images, with which key file, and (sign_command) who signs."""

    scheme: str  # rsa3072 | ecdsa256
    key: Path  # keys/signing_key.pem, keys/signing_pubkey.pem, or $OTA_SIGNING_KEY
    from_env: bool
    target: str = ""
    command: tuple[str, ...] = ()  # ota.sign_command, split; empty: espsecure signs here

    @property
    def external(self) -> bool:
        """The private key is elsewhere: ota.sign_command signs, the key file is public."""
        return bool(self.command)

    @property
    def source(self) -> str:
        """How messages name the key."""
        return f"$OTA_SIGNING_KEY ({self.key})" if self.from_env else str(self.key)

    def to_json(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "key": str(self.key),
            "from_env": self.from_env,
            "target": self.target,
            # Only a digest: doit keeps fingerprints in .doit.db and `doit info` prints them.
            "command": hashlib.sha256("\0".join(self.command).encode()).hexdigest()
            if self.command
            else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A key the loader accepted: its scheme, its public half, and the private half (decrypted,
    in memory only) unless ota.sign_command signs elsewhere."""

    plan: SigningPlan
    scheme: str
    public_pem: bytes
    private_pem: bytes | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        """SHA-256 of the public key, as `espsecure digest-sbv2-public-key` computes it."""
        return public_key_digest(self.public_pem)

    def sign(self, image: bytes) -> bytes:
        """The image padded to 4 KiB plus its signature sector (espsecure sign-data)."""
        if self.private_pem is not None:
            from ..idf import signing

            return signing.sign(self.private_pem, image)
        return _sign_external(self, image)


def plan(project: Project, env: Mapping[str, str], keys_dir: Path) -> SigningPlan | None:
    """The signing plan for ota.sign; None when images are not signed.

    Raises:
        ConfigError: $OTA_SIGNING_KEY names a file that does not exist.
    """
    if project.ota is None or project.ota.sign is None:
        return None
    command = tuple(shlex.split(project.ota.sign_command or ""))
    common: dict[str, Any] = {
        "scheme": project.ota.sign,
        "target": project.target,
        "command": command,
    }
    named = env.get("OTA_SIGNING_KEY", "").strip()
    if named:
        key = Path(named).expanduser()
        try:
            usable = key.is_file()
        except OSError:  # a folder on the way cannot be searched: the loader says so
            usable = True
        if not usable:
            raise ConfigError(
                ("ota", "sign"),
                f"$OTA_SIGNING_KEY names '{named}', which is not a file",
                "point it at the signing key (a PEM file), or unset it to use keys/",
            )
        return SigningPlan(key=key.absolute(), from_env=True, **common)
    files = key_files(keys_dir)
    key = files.signing_pubkey if command else files.signing_key
    return SigningPlan(key=key, from_env=False, **common)


def public_key_digest(public_pem: bytes) -> str:
    """SHA-256 of the public key, as `espsecure digest-sbv2-public-key` computes it."""
    from ..idf import signing

    return signing.public_key_digest(public_pem)


def _status(path: Path, *, follow: bool) -> os.stat_result | None:
    """stat (or lstat) of `path`; None when there is nothing there.

    Raises:
        SigningKeyError: a folder on the way cannot be searched (EACCES), and the like.
    """
    try:
        return path.stat() if follow else path.lstat()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SigningKeyError(
            f"{path} cannot be reached ({error.strerror}); make it and its folders readable "
            "by this user"
        ) from None


def _read(plan: SigningPlan) -> bytes:
    """The key file's bytes, or one line saying why there are none."""
    where = plan.source
    link = _status(plan.key, follow=False)
    found = _status(plan.key, follow=True) if link is not None else None
    if link is not None and found is None:
        raise SigningKeyError(
            f"{where} is a link to '{os.readlink(plan.key)}', which does not exist; "
            "point it at the key file"
        )
    if found is None:
        fix = (
            f"put the public key of the key ota.sign_command signs with there ({_EXTRACT})"
            if plan.external
            else "run `doit signing-key` to make one for a new project, or restore it from "
            "your backup (boards running apps it signed take updates only signed with it)"
        )
        raise SigningKeyError(f"{where} is missing; {fix}")
    if not stat.S_ISREG(found.st_mode):
        raise SigningKeyError(f"{where} is not a file; point it at the PEM key file")
    try:
        with plan.key.open("rb") as handle:
            data = handle.read(_KEY_LIMIT + 1)
    except OSError as error:
        raise SigningKeyError(
            f"{where} cannot be read ({error.strerror}); make it readable by this user"
        ) from None
    if not data.strip():
        raise SigningKeyError(f"{where} is empty; restore the key from your backup")
    if len(data) > _KEY_LIMIT:
        raise SigningKeyError(f"{where} is over 64 KiB, so not a PEM key; point it at the key")
    return data


_EXTRACT = "espsecure extract-public-key --version 2 --keyfile KEY signing_pubkey.pem"


def _private(plan: SigningPlan, data: bytes, env: Mapping[str, str]) -> Any:
    """The private key in `data`, opened with $OTA_SIGNING_KEY_PASSPHRASE where it needs one."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    passphrase = env.get(PASSPHRASE_ENV, "")
    encrypted = b"ENCRYPTED" in data
    try:
        return load_pem_private_key(data, password=passphrase.encode() if encrypted else None)
    except TypeError:
        raise SigningKeyError(
            f"{plan.source} is protected by a passphrase and ${PASSPHRASE_ENV} is not set; "
            "set it in the environment (never in a file in the repository)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        if encrypted and passphrase:
            raise SigningKeyError(
                f"{plan.source} does not open with ${PASSPHRASE_ENV} (a wrong passphrase, or a "
                "damaged key)"
            ) from None
        raise SigningKeyError(
            f"{plan.source} is not a valid PEM private key (damaged or of an unknown format); "
            "restore the key from your backup"
        ) from None


def _public(plan: SigningPlan, data: bytes) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(f"{plan.source} is not a valid PEM public key ({_EXTRACT})") from None


def _parse(plan: SigningPlan, data: bytes, env: Mapping[str, str]) -> tuple[Any, bool]:
    """(the key, whether it is the private one)."""
    if b"PRIVATE KEY-----" in data:
        return _private(plan, data, env), True
    if b"PUBLIC KEY-----" in data:
        if not plan.external:
            raise SigningKeyError(
                f"{plan.source} holds only a public key; signing needs the private key, or set "
                "ota.sign_command to sign with a key held elsewhere (an HSM, a signing service)"
            )
        return _public(plan, data), False
    what = "public" if plan.external else "private"
    raise SigningKeyError(
        f"{plan.source} is not a PEM {what} key (no '-----BEGIN ... {what.upper()} KEY-----' "
        "block); point it at the key file"
    )


def _an(word: str) -> str:
    """'an rsa3072', 'an ecdsa256', 'a DSA': the article as the name is read aloud."""
    return f"{'an' if word[:1].lower() in 'aefhilmnorsx' else 'a'} {word}"


def _check_scheme(plan: SigningPlan, scheme: str) -> None:
    """The key's scheme against ota.sign and the target's Secure Boot V2 schemes."""
    if scheme == plan.scheme:
        return
    schemes = CHIPS[plan.target].sign_schemes if plan.target in CHIPS else (plan.scheme,)
    if scheme.startswith("RSA-") or scheme not in ("rsa3072", "ecdsa192", "ecdsa256", "ecdsa384"):
        raise SigningKeyError(
            f"{plan.source} is {_an(scheme)} key; Secure Boot V2 signs with rsa3072 (RSA-3072) "
            f"or ecdsa256 (ECDSA P-256), and ota.sign is {plan.scheme}: use a key made by "
            f"`espsecure generate-signing-key --version 2 --scheme {plan.scheme}`"
        )
    allowed = f" ({plan.target} verifies {', '.join(schemes)} only)" if plan.target else ""
    other = f"set ota.sign: {scheme}, or " if scheme in schemes else ""
    replace = (
        f"point $OTA_SIGNING_KEY at {_an(plan.scheme)} key"
        if plan.from_env
        else f"replace it with {_an(plan.scheme)} key (`doit rotate-signing-key`; boards running "
        "apps it signed then need a serial flash)"
    )
    wrong = f"{plan.source} is {_an(scheme)} key but ota.sign is {plan.scheme}{allowed}"
    raise SigningKeyError(f"{wrong}; {other}{replace}")


def load(plan: SigningPlan, env: Mapping[str, str]) -> SigningKey:
    """The one check every key goes through (keys/, $OTA_SIGNING_KEY, a public key for
    ota.sign_command): readable, PEM, passphrase, scheme against ota.sign and the target.

    Raises:
        SigningKeyError: one line naming the key, what is wrong and what to do.
    """
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from ..idf import signing

    data = _read(plan)
    key, private = _parse(plan, data, env)
    _check_scheme(plan, signing.key_scheme(key))
    public = key.public_key() if private else key
    public_pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    private_pem = None
    if private and not plan.external:
        private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return SigningKey(plan=plan, scheme=plan.scheme, public_pem=public_pem, private_pem=private_pem)


def key_ready(plan: SigningPlan, env: Mapping[str, str]) -> bool:
    """The key is there and passes the loader (doit's uptodate: otherwise the task runs and
    makes it, or says why not)."""
    try:
        load(plan, env)
    except SigningKeyError:
        return False
    return True


def _sign_external(key: SigningKey, image: bytes) -> bytes:
    """ota.sign_command signs `padded(image)` ({data}) into {signature}; espsecure checks that
    signature against the public key and builds the signature block from it."""
    from .. import process
    from ..idf import signing

    with tempfile.TemporaryDirectory() as scratch:
        data, signature = Path(scratch) / "unsigned.bin", Path(scratch) / "signature.bin"
        data.write_bytes(signing.padded(image))
        command = [
            arg.replace("{data}", str(data)).replace("{signature}", str(signature))
            for arg in key.plan.command
        ]
        process.run(command, what="ota.sign_command")
        try:
            made = signature.read_bytes()
        except OSError:
            made = b""
        if not made:
            raise SigningKeyError(
                f"ota.sign_command wrote no signature to {{signature}} ({signature}); it must "
                "write the raw signature of the {data} file there"
            )
        try:
            return signing.sign_with_signature(key.public_pem, made, image)
        except signing.SignatureError as error:
            raise SigningKeyError(
                f"ota.sign_command: {error}; it must sign {{data}} with the private key of "
                f"{key.plan.source} ({key.scheme}: {_SIGNATURE_FORMAT[key.scheme]})"
            ) from None


_SIGNATURE_FORMAT = {
    "rsa3072": "RSA-PSS, SHA-256, MGF1 SHA-256, salt 32, the raw 384 bytes",
    "ecdsa256": "ECDSA over SHA-256, DER-encoded",
}


def _tighten(plan: SigningPlan) -> None:
    """keys/ 0700 and the key 0600, never through a link: a linked key or folder belongs to
    the user (say so where it is readable by others)."""
    from ..idf.signing import DIR_MODE, KEY_MODE

    for path, mode in ((plan.key.parent, DIR_MODE), (plan.key, KEY_MODE)):
        if path.is_symlink():
            target = path.resolve()
            if target.exists() and stat.S_IMODE(target.stat().st_mode) & 0o077:
                warn(f"{path} is a link to {target}, which others can read; chmod it yourself")
            continue
        os.chmod(path, mode)


def create_key(plan: SigningPlan, env: Mapping[str, str] | None = None) -> str:
    """Make keys/signing_key.pem once (warning that its loss is fatal); check an existing or CI
    key with the loader. Returns the line to print."""
    from ..idf.signing import new_key

    env = os.environ if env is None else env
    if _status(plan.key, follow=False) is None and not plan.from_env:
        if plan.external:
            _read(plan)  # says where the public key goes
        new_key(plan.scheme, plan.key)
        warn(f"signing key created: {plan.key} ({plan.scheme}); {_LOSS}")
        return f"signing key created: {plan.key}"
    loaded = load(plan, env)
    if not plan.from_env and not plan.external:
        _tighten(plan)
    signer = "ota.sign_command signs" if plan.external else plan.scheme
    return f"signing key: {plan.source} ({signer}; key digest {loaded.digest[:16]}…)"


def rotate(plan: SigningPlan, now: datetime | None = None) -> str:
    """Replace the signing key on purpose; the old one is kept as signing_key.pem.<time>.old."""
    from ..idf.signing import new_key

    if plan.from_env:
        raise SigningKeyError("$OTA_SIGNING_KEY names the key, so it cannot be rotated here")
    if plan.external:
        raise SigningKeyError(
            "ota.sign_command signs with a key held elsewhere; rotate it there and put its "
            f"public key in {plan.key}"
        )
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    old = plan.key.with_name(f"{plan.key.name}.{moment}.old")
    if plan.key.exists() or plan.key.is_symlink():
        os.replace(plan.key, old)
    new_key(plan.scheme, plan.key)
    warn(
        f"signing key rotated: {plan.key}; the old key is kept as {old.name}. Boards running "
        "apps signed with the old key refuse images signed with the new one: flash them over "
        f"serial. {_LOSS}"
    )
    return f"signing key rotated: {plan.key} (old key kept as {old})"
