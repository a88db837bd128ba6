"""The real ESP-IDF v5.3.2 kit, found as CI finds it: `bash ../shared/esp-idf-build/setup.sh`
(idempotent) prints the env.sh that does what ESP-IDF's export.sh does; tests skip, saying what
is missing, where the kit is absent."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SHARED

KIT = SHARED / "esp-idf-build"


@functools.cache
def _env_sh() -> Path | str:
    """env.sh's path, or why there is none."""
    if not (KIT / "setup.sh").is_file():
        return f"the ESP-IDF v5.3.2 build kit ({KIT}) is not here"
    done = subprocess.run(
        ["bash", str(KIT / "setup.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"the ESP-IDF kit's setup.sh failed (exit {done.returncode}): {tail[0]}"
    return Path(lines[-1])


def env_sh() -> Path:
    """env.sh of the kit; skips the test where the kit is absent or cannot be set up."""
    found = _env_sh()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@functools.cache
def exported() -> dict[str, str]:
    """The environment after `. env.sh` (ESP-IDF exported), over this process's."""
    script = f'. "{env_sh()}" >/dev/null && env -0'
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, env=dict(os.environ), timeout=60, check=True
    )
    pairs = (item.partition("=") for item in done.stdout.decode().split("\0") if "=" in item)
    return {key: value for key, _, value in pairs}


def idf_path() -> Path:
    """The kit's ESP-IDF tree, every example included."""
    return Path(exported()["IDF_PATH"])
