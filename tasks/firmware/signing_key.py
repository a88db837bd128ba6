"""The project's app-signing key (ota.sign): keys/signing_key.pem, or $OTA_SIGNING_KEY in CI;
made once with espsecure, checked against ota.sign, and replaced only on purpose (rotate).
Losing it ends OTA for every board flashed with apps it signed, so every step says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config.model import Project
from ..errors import ConfigError, ProjectError, warn
from ..idf.signing import DIR_MODE, KEY_MODE, key_scheme, new_key

__all__ = ["SigningKeyError", "SigningPlan", "create_key", "plan", "rotate"]

_LOSS = (
    "keep a copy somewhere safe: a lost signing key means no further OTA update for any board "
    "flashed with these apps (each needs a serial flash)"
)


class SigningKeyError(ProjectError):
    """The signing key is missing, unreadable or of the wrong scheme."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningPlan:
    """Which scheme signs the images and with which key file."""

    scheme: str  # rsa3072 | ecdsa256
    key: Path  # keys/signing_key.pem, or $OTA_SIGNING_KEY
    from_env: bool

    def to_json(self) -> dict[str, object]:
        return {"scheme": self.scheme, "key": str(self.key), "from_env": self.from_env}


def plan(project: Project, env: Mapping[str, str], keys_dir: Path) -> SigningPlan | None:
    """The signing plan for ota.sign; None when images are not signed.

    Raises:
        ConfigError: $OTA_SIGNING_KEY names a file that does not exist.
    """
    if project.ota is None or project.ota.sign is None:
        return None
    named = env.get("OTA_SIGNING_KEY", "").strip()
    if named:
        key = Path(named).expanduser()
        if not key.is_file():
            raise ConfigError(
                ("ota", "sign"),
                f"$OTA_SIGNING_KEY names '{named}', which is not a file",
                "point it at the signing key (a PEM file), or unset it to use keys/",
            )
        return SigningPlan(scheme=project.ota.sign, key=key.resolve(), from_env=True)
    return SigningPlan(scheme=project.ota.sign, key=keys_dir / "signing_key.pem", from_env=False)


def create_key(plan: SigningPlan) -> str:
    """Make keys/signing_key.pem once (warning that its loss is fatal); check an existing or CI
    key matches ota.sign. Returns the line to print."""
    if not plan.key.exists():
        if plan.from_env:
            raise SigningKeyError(f"$OTA_SIGNING_KEY: {plan.key} does not exist")
        new_key(plan.scheme, plan.key)
        warn(f"signing key created: {plan.key} ({plan.scheme}); {_LOSS}")
        return f"signing key created: {plan.key}"
    found = key_scheme(plan.key)
    if found != plan.scheme:
        raise SigningKeyError(
            f"{plan.key} is a {found} key but ota.sign is {plan.scheme}; set ota.sign to match, "
            "or `doit rotate-signing-key` (boards then need a serial flash)"
        )
    if not plan.from_env:
        os.chmod(plan.key, KEY_MODE)
        os.chmod(plan.key.parent, DIR_MODE)
    return f"signing key: {plan.key} ({plan.scheme})"


def rotate(plan: SigningPlan, now: datetime | None = None) -> str:
    """Replace the signing key on purpose; the old one is kept as signing_key.pem.<time>.old."""
    if plan.from_env:
        raise SigningKeyError("$OTA_SIGNING_KEY names the key, so it cannot be rotated here")
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    old = plan.key.with_name(f"{plan.key.name}.{moment}.old")
    if plan.key.exists():
        os.replace(plan.key, old)
    new_key(plan.scheme, plan.key)
    warn(
        f"signing key rotated: {plan.key}; the old key is kept as {old.name}. Boards running "
        "apps signed with the old key refuse images signed with the new one: flash them over "
        f"serial. {_LOSS}"
    )
    return f"signing key rotated: {plan.key} (old key kept as {old})"
