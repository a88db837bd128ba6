"""The project's image-encryption key (ota.encrypt): keys/encryption_key.pem, or
$OTA_ENCRYPTION_KEY in CI; an RSA-3072 private key made once. Its public half encrypts each
release; the OTA client app embeds the private key (esp_encrypted_img). It is never served and
never released.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config.model import Project
from ..errors import ConfigError, ProjectError, warn
from ..paths import key_files

# The key is made and read by actions: what they need is imported in them (bench/noop.py).

__all__ = ["EncryptionKeyError", "EncryptionPlan", "create_key", "plan", "read_public"]


class EncryptionKeyError(ProjectError):
    """The encryption key is missing or not an RSA-3072 private key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptionPlan:
    """Which key encrypts the served images (and which the OTA client embeds)."""

    scheme: str  # rsa3072
    key: Path
    from_env: bool

    def to_json(self) -> dict[str, object]:
        return {"scheme": self.scheme, "key": str(self.key), "from_env": self.from_env}


def plan(project: Project, env: Mapping[str, str], keys_dir: Path) -> EncryptionPlan | None:
    """The encryption plan for ota.encrypt; None when images are served plain.

    Raises:
        ConfigError: $OTA_ENCRYPTION_KEY names a file that does not exist.
    """
    if project.ota is None or project.ota.encrypt is None:
        return None
    named = env.get("OTA_ENCRYPTION_KEY", "").strip()
    if named:
        key = Path(named).expanduser()
        if not key.is_file():
            raise ConfigError(
                ("ota", "encrypt"),
                f"$OTA_ENCRYPTION_KEY names '{named}', which is not a file",
                "point it at the encryption key (a PEM file), or unset it to use keys/",
            )
        return EncryptionPlan(scheme=project.ota.encrypt, key=key.resolve(), from_env=True)
    key = key_files(keys_dir).encryption_key
    return EncryptionPlan(scheme=project.ota.encrypt, key=key, from_env=False)


def create_key(plan: EncryptionPlan) -> str:
    """Make keys/encryption_key.pem once (0600 in a 0700 folder); check an existing one.
    Returns the line to print."""
    from ..idf import encrypted_img
    from ..idf.signing import DIR_MODE

    if plan.key.exists():
        read_public(plan)
        if not plan.from_env:
            os.chmod(plan.key, encrypted_img.KEY_MODE)
        return f"encryption key: {plan.key} ({plan.scheme})"
    if plan.from_env:
        raise EncryptionKeyError(f"$OTA_ENCRYPTION_KEY: {plan.key} does not exist")
    plan.key.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(plan.key.parent, DIR_MODE)
    with tempfile.TemporaryDirectory(dir=plan.key.parent) as scratch:
        made = Path(scratch) / plan.key.name
        made.touch(mode=encrypted_img.KEY_MODE)
        made.write_bytes(encrypted_img.new_key())
        os.link(made, plan.key)  # fails rather than replace a key that appeared meanwhile
    warn(
        f"encryption key created: {plan.key} (rsa3072); boards flashed with an OTA client that "
        "embeds it can only decrypt images made with it: keep a copy somewhere safe"
    )
    return f"encryption key created: {plan.key}"


def read_public(plan: EncryptionPlan) -> bytes:
    """The key's public half (what encrypting needs).

    Raises:
        EncryptionKeyError: the key is missing or not an RSA-3072 private key.
    """
    try:
        pem = plan.key.read_bytes()
    except OSError as error:
        raise EncryptionKeyError(
            f"{plan.key}: cannot be read ({error.strerror}); run `doit encryption-key`"
        ) from None
    from ..idf import encrypted_img

    try:
        return encrypted_img.public_key(pem, str(plan.key))
    except encrypted_img.EncryptedImageError as error:
        raise EncryptionKeyError(str(error)) from None
