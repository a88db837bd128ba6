"""What a test may ask of the idf.py stand-in beyond idf.py's own contract. The rehearsal asks
nothing; tests/fakes/idf.py builds one from its environment, so no test switch ships here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Behaviour"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    fail: Literal["", "cmake", "compile"] = ""  # a configure or compile failure, as ESP-IDF's
    menuconfig_set: str = ""  # sdkconfig lines the non-interactive menuconfig applies
    idf_version: str = ""  # what `idf.py --version` and the images say; "" = the stand-in's
    stamp_time: bool = False  # the build time in the images, as without reproducible builds
    app_size: int = 0  # pad the app image to at least this many bytes
