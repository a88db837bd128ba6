"""The real ESP-IDF v5.3.2 build kit (../shared/esp-idf-build) for the tests marked `idf_kit`:
set up by its own setup.sh, exported by its env.sh, with this tool's venv first on PATH (as a
user who activates it after export.sh). Those tests run only when asked (`pytest -m idf_kit`,
CI's real-ESP-IDF stage in .ci/run) and skip, saying so, where the kit is absent.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1].parent / "shared" / "esp-idf-build" / "setup.sh"
MISSING = (
    "the real ESP-IDF v5.3.2 build kit is not here: ../shared/esp-idf-build/setup.sh is missing "
    'beside this checkout (README, "Real builds")'
)
NOT_ASKED = "real ESP-IDF build: runs with `pytest -m idf_kit` (CI's real-ESP-IDF stage)"
# .ci/run sets it: there a missing kit fails the stage instead of skipping it.
REQUIRED = "ESP_OTA_DOIT_REQUIRE_IDF_KIT"
# Seconds per doit run of the kit tests, printed at the end of the session.
KIT_TIMES: dict[str, float] = {}

# What the user's own shell may hold that the kit's env.sh decides instead.
_OURS = re.compile(r"^(IDF_|ESP_IDF_|ESPPORT$|ESPBAUD$|OTA_|WIFI_PASSWORD$|VIRTUAL_ENV$)")


def asked(config: pytest.Config) -> bool:
    """The kit tests run when -m selects them or a test file is named on the command line."""
    expression = str(config.getoption("markexpr") or "")
    if re.search(r"(?<!not )\bidf_kit\b", expression):
        return True
    named = [arg.split("::")[0] for arg in config.invocation_params.args]
    return any(arg.endswith(".py") for arg in named)


@functools.cache
def _exported() -> dict[str, str] | str:
    """The kit set up (setup.sh, idempotent) and exported (env.sh), or why it is not here."""
    if not SETUP.is_file():
        return MISSING
    base = {name: value for name, value in os.environ.items() if not _OURS.match(name)}
    done = subprocess.run(
        ["bash", str(SETUP)], env=base, capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        return f"{SETUP} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    env_sh = done.stdout.strip().splitlines()[-1]
    dumped = subprocess.run(
        ["bash", "-c", '. "$1" >/dev/null && env -0', "env.sh", env_sh],
        env=base,
        capture_output=True,
        timeout=60,
        check=True,
    )
    env = dict(entry.split("=", 1) for entry in dumped.stdout.decode().split("\0") if "=" in entry)
    env["ESP_OTA_DOIT_KIT_ENV_SH"] = env_sh
    return env


def _found() -> dict[str, str]:
    found = _exported()
    if isinstance(found, str):
        if found != MISSING or os.environ.get(REQUIRED):
            pytest.fail(found)
        pytest.skip(reason=found)  # MISSING: ../shared/esp-idf-build is absent
    return found


def exported() -> dict[str, str]:
    """The environment after `. env.sh` (ESP-IDF exported), over this process's own."""
    return dict(_found())


def environment() -> dict[str, str]:
    """exported(), with this tool's venv first on PATH (a user who activates it after
    export.sh), a loopback OTA host and plain output."""
    env = exported()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env.update(OTA_HOST="127.0.0.1", NO_COLOR="1", COLUMNS="120")
    return env


def env_sh() -> Path:
    """The kit's env.sh (skips, saying why, where the kit is absent)."""
    return Path(_found()["ESP_OTA_DOIT_KIT_ENV_SH"])


def kit_env() -> dict[str, str]:
    """IDF_PATH and IDF_PYTHON_ENV_PATH of the kit: ESP-IDF installed, export.sh not run."""
    found = _found()
    return {name: found[name] for name in ("IDF_PATH", "IDF_PYTHON_ENV_PATH")}


def idf_path() -> Path:
    """The kit's ESP-IDF v5.3.2 tree, every example included."""
    return Path(_found()["IDF_PATH"])


def summary(write: Callable[[str], None]) -> None:
    """Each kit test's doit run and how long it took, and their total."""
    if not KIT_TIMES:
        return
    write("real ESP-IDF stage: seconds per doit run")
    for what, seconds in KIT_TIMES.items():
        write(f"  {seconds:7.1f}  {what}")
    write(f"  {sum(KIT_TIMES.values()):7.1f}  in all")
