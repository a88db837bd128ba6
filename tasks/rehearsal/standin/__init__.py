"""The idf.py stand-in: ESP-IDF v5.3.2's idf.py command line and build outputs on a machine
without ESP-IDF (`python -m esp_ota_doit.rehearsal.standin <args>`). Its images verify like real
ones but hold no program; only the rehearsal and the tests run it.
"""

from __future__ import annotations

import sys

from ...idf.idftool import IdfTool

__all__ = ["tool"]


def tool() -> IdfTool:
    """How to run the stand-in as idf.py."""
    return IdfTool(
        command=(sys.executable, "-m", "esp_ota_doit.rehearsal.standin"),
        version="5.3.2",
    )
