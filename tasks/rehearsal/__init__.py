"""The rehearsal: the whole OTA story on a virtual board (rehearse), with an emulated ROM loader
(board), a bootloader and esp_https_ota-like client over its flash (device), a synthetic ESP-IDF
tree (idf_tree) and the idf.py stand-in (standin). An optional part (the `rehearse` extra):
only graph.py's rehearse task creators import it, inside them. May import: every area.
"""

from __future__ import annotations

import importlib.util

__all__ = ["INSTALL_HINT", "missing_extra"]

INSTALL_HINT = "pip install 'esp-ota-doit[rehearse]'"

# What the `rehearse` extra installs (pyproject.toml), by the module each distribution provides:
# the emulated ROM loader behind the virtual board, and kconfgen, which configures the idf.py
# stand-in's builds.
_EXTRA = {"esp32_mock_bootloader": "esp32-mock-bootloader", "kconfgen": "esp-idf-kconfig"}


def missing_extra() -> str | None:
    """One line saying what to install, when a distribution of the `rehearse` extra is absent."""
    absent = [dist for module, dist in _EXTRA.items() if not _importable(module)]
    if not absent:
        return None
    return f"doit rehearse needs {' and '.join(absent)} (the rehearse extra): {INSTALL_HINT}"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that cannot be imported, or a broken entry
        return False
