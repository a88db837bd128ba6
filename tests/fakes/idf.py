#!/usr/bin/env python3
"""idf.py for tests: log the call as one JSON line to $FAKE_IDF_LOG, then run the stand-in.

Each line is {"argv": [arguments after the program name], "cwd": ..., "env": {...}}, where env
holds IDF_TARGET, SDKCONFIG_DEFAULTS, IDF_PATH and every STANDIN_* variable that is set.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_LOGGED_ENV = ("IDF_TARGET", "SDKCONFIG_DEFAULTS", "IDF_PATH")


def _log(path: str) -> None:
    env = {k: v for k, v in os.environ.items() if k in _LOGGED_ENV or k.startswith("STANDIN_")}
    record = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": env}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def behaviour() -> object:
    """What a test asks of the stand-in, from STANDIN_* variables (test switches live here)."""
    from esp_ota_doit.rehearsal.standin.behaviour import Behaviour

    env = os.environ
    fail = env.get("STANDIN_FAIL", "")
    assert fail in ("", "cmake", "compile"), fail
    return Behaviour(
        fail=fail,  # type: ignore[arg-type]
        menuconfig_set=env.get("STANDIN_MENUCONFIG_SET", ""),
        idf_version=env.get("STANDIN_IDF_VERSION", ""),
        stamp_time=env.get("STANDIN_STAMP_TIME") == "1",
        app_size=int(env.get("STANDIN_APP_SIZE", "0") or 0),
    )


def main() -> int:
    if os.environ.get("FAKE_IDF_LOG"):
        _log(os.environ["FAKE_IDF_LOG"])
    from esp_ota_doit.rehearsal.standin.cli import main as standin_main

    return standin_main(sys.argv[1:], behaviour())  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
