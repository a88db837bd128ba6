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


def of(
    app: str, name: str, signed_with: str | None, secure_version: int, boards: Sequence[BoardRecord]
) -> list[str]:
    """Each known board that would refuse this image, and why (one warning each): it is signed
    with another key (`signed_with`, the public key's SHA-256; None: unsigned) than the one the
    board's app trusts, or its secure_version is below the one the board's anti-rollback eFuse
    reached. Pure: content.check reads both facts of the served image."""
    notes = []
    for board in boards:
        trusted = board.trusted_key_sha256
        if trusted is not None and signed_with != trusted:
            signed = f"signed with key {signed_with[:16]}…" if signed_with else "unsigned"
            notes.append(
                f"board {board.mac}: its app trusts signing key {trusted[:16]}… only, and {name} "
                f"is {signed}; it will refuse this update (secure boot signature verification "
                "failed): flash it over serial with `doit flash`"
            )
        if secure_version < board.efuse_secure_version:
            notes.append(
                f"board {board.mac}: its anti-rollback eFuse holds secure_version "
                f"{board.efuse_secure_version}, and {name} has {secure_version}; it will refuse "
                f"this update: set apps.{app}.secure_version to {board.efuse_secure_version} or "
                "more"
            )
    return notes
