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


def main() -> int:
    if os.environ.get("FAKE_IDF_LOG"):
        _log(os.environ["FAKE_IDF_LOG"])
    sys.path.insert(0, str(REPO))
    from esp_ota_doit.rehearsal.standin.cli import main as standin_main

    return standin_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
