"""Which known boards (build/boards/*.json) would refuse an OTA image, and why: signed with a key
their app does not trust, or a secure_version below the one their anti-rollback eFuse reached.
`doit serve` and `doit publish` print one warning per such board (content.check).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..device.record import BoardRecord

__all__ = ["of"]


def of(app: str, name: str, data: bytes, boards: Sequence[BoardRecord]) -> list[str]:
    """Each known board that would refuse this image, and why (one warning each): it is signed
    with another key than the one the board's app trusts, or its secure_version is below the
    one the board's anti-rollback eFuse reached. Pure but for espsecure's key digest."""
    from ..idf import images, signing

    desc = images.app_desc(data[: images.APP_DESC_END])
    version = desc.secure_version if desc is not None else 0
    public = signing.signed_public_key(data)
    served = signing.public_key_digest(public) if public is not None else None
    notes = []
    for board in boards:
        trusted = board.trusted_key_sha256
        if trusted is not None and served != trusted:
            signed = f"signed with key {served[:16]}…" if served else "unsigned"
            notes.append(
                f"board {board.mac}: its app trusts signing key {trusted[:16]}… only, and {name} "
                f"is {signed}; it will refuse this update (secure boot signature verification "
                "failed): flash it over serial with `doit flash`"
            )
        if version < board.efuse_secure_version:
            notes.append(
                f"board {board.mac}: its anti-rollback eFuse holds secure_version "
                f"{board.efuse_secure_version}, and {name} has {version}; it will refuse this "
                f"update: set apps.{app}.secure_version to {board.efuse_secure_version} or more"
            )
    return notes
