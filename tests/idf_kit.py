"""The real ESP-IDF v5.3.2 kit in ../shared/esp-idf-build, found the way CI finds it: its
setup.sh (idempotent) prints the env.sh that does what export.sh does. Tests that need it are
marked `idf_kit` and skip, naming what is missing, where it is absent."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

KIT_SETUP = REPO.parent / "shared" / "esp-idf-build" / "setup.sh"


@functools.cache
def _kit() -> dict[str, str] | str:
    """ESP-IDF's environment (IDF_PATH, IDF_PYTHON_ENV_PATH), or why it is not here."""
    if not KIT_SETUP.is_file():
        return f"the ESP-IDF v5.3.2 kit is not here ({KIT_SETUP} is missing)"
    done = subprocess.run(
        ["bash", str(KIT_SETUP)], capture_output=True, text=True, timeout=900, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the ESP-IDF v5.3.2 kit could not be set up: {last}"
    text = Path(lines[-1]).read_text(encoding="utf-8")
    found = dict(re.findall(r"^(ESP_IDF_KIT_DIR|IDF_PATH|IDF_PYTHON_ENV_PATH)=(\S+)$", text, re.M))
    kit = found.pop("ESP_IDF_KIT_DIR", "")
    return {name: value.replace("$ESP_IDF_KIT_DIR", kit) for name, value in found.items()}


def kit_env() -> dict[str, str]:
    """IDF_PATH and IDF_PYTHON_ENV_PATH of the kit; skips the test where it is absent."""
    found = _kit()
    if isinstance(found, str):
        pytest.skip(found)
    return dict(found)


def idf_path() -> Path:
    return Path(kit_env()["IDF_PATH"])
