"""Which of Espressif's OTA components an app's own code calls, read from its sources: the
decision is the app's code, never its name (esp_encrypted_img v2's decrypt API, as ESP-IDF
v5.3's examples/system/ota/pre_encrypted_ota calls it).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DECRYPT_CALL", "decrypts", "embeds"]

# What an app that takes pre-encrypted images calls (esp_encrypted_img.h).
DECRYPT_CALL = "esp_encrypted_img_decrypt_start"
_SOURCE_SUFFIXES = {".c", ".cc", ".cpp", ".h", ".hpp"}
_SKIPPED = {"build", "managed_components", ".git"}
_LINE_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def _sources(folder: Path) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        parts = set(path.relative_to(folder).parts)
        if path.suffix in _SOURCE_SUFFIXES and not parts & _SKIPPED and path.is_file():
            found.append(path)
    return found


def decrypts(folder: Path) -> bool:
    """Whether the app's code starts esp_encrypted_img's decryption (outside comments)."""
    for path in _sources(folder):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if DECRYPT_CALL in _LINE_COMMENT.sub("", text):
            return True
    return False


def embeds(folder: Path, relative: str) -> bool:
    """Whether a CMakeLists.txt of the app embeds a file ending in `relative` (EMBED_*FILES)."""
    name = relative.strip("/")
    for path in sorted(folder.rglob("CMakeLists.txt")):
        if set(path.relative_to(folder).parts) & _SKIPPED:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "EMBED_" in text and name in text:
            return True
    return False
