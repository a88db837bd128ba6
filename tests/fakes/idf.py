#!/usr/bin/env python3
"""idf.py for tests: log the call as one JSON line to $FAKE_IDF_LOG, then run the stand-in.

Each line is {"argv": [arguments after the program name], "cwd": ..., "env": {...}}, where env
holds IDF_TARGET, SDKCONFIG_DEFAULTS, IDF_PATH and every STANDIN_* variable that is set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]
_LOGGED_ENV = ("IDF_TARGET", "SDKCONFIG_DEFAULTS", "IDF_PATH")


def _log(path: str) -> None:
    env = {k: v for k, v in os.environ.items() if k in _LOGGED_ENV or k.startswith("STANDIN_")}
    record = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": env}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """What a test asks of the stand-in beyond idf.py's own contract (the shipped stand-in knows
    none of it): each field is applied by wrapping the stand-in's own step, in this process."""

    fail: Literal["", "cmake", "compile"] = ""  # a configure or compile failure, as ESP-IDF's
    menuconfig_set: str = ""  # sdkconfig lines the non-interactive menuconfig applies
    idf_version: str = ""  # what `idf.py --version` and the images say; "" = the stand-in's
    stamp_time: bool = False  # the build time in the images, as without reproducible builds
    app_size: int = 0  # pad the app image to at least this many bytes


def behaviour() -> Behaviour:
    """What a test asks of the stand-in, from STANDIN_* variables (test switches live here)."""
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


def apply(asked: Behaviour, patch: Callable[[object, str, object], None] = setattr) -> None:
    """Make the stand-in, in this process, do what `asked` says (`patch` sets an attribute:
    a test passes monkeypatch.setattr, so the stand-in is whole again after it)."""
    from esp_ota_doit.rehearsal.standin import cli, standin_images

    if asked.idf_version:
        patch(cli, "_IDF_VER", asked.idf_version)
    if asked.menuconfig_set:
        patch(cli, "_menuconfig_choices", lambda: asked.menuconfig_set)
    if asked.fail == "cmake":

        def configure(ctx: Any, **_: Any) -> Any:
            text = "configure failure requested (a test's stand-in)"
            raise cli._cmake_error(text, "CMakeLists.txt")

        patch(cli, "_configure", configure)
    if asked.fail == "compile":
        component_args = standin_images._component_args

        def failing(project: Path, config: Any, build: Path) -> Any:
            source = next(iter(component_args(project, config, build).get("SRCS", [])), "main.c")
            error = "error: 'standin_undeclared' undeclared (first use in this function)"
            lines = [f"main/{source}: In function 'app_main':", f"main/{source}:12:5: {error}"]
            failed = f"esp-idf/main/CMakeFiles/__idf_main.dir/{source}.obj"
            raise standin_images.IdfPyError(lines, tool="ninja", failed=failed)

        patch(standin_images, "_component_args", failing)
    if asked.stamp_time:
        stamp = standin_images._stamp
        always = lambda old, inputs, values, option: stamp(  # noqa: E731
            old, inputs, {**values, option: True}, option
        )
        patch(standin_images, "_stamp", always)
    if asked.app_size:
        app = standin_images._app

        def padded(config: Any, idf_ver: str, build: Path, made_of: Any, extra: int) -> Any:
            elf, image, link_map = app(config, idf_ver, build, made_of, extra)
            if len(image) >= asked.app_size:
                return elf, image, link_map
            more = (asked.app_size - len(image) + 15) // 16 * 16
            return app(config, idf_ver, build, made_of, extra + more)

        patch(standin_images, "_app", padded)


def main() -> int:
    if os.environ.get("FAKE_IDF_LOG"):
        _log(os.environ["FAKE_IDF_LOG"])
    from esp_ota_doit.rehearsal.standin.cli import main as standin_main

    apply(behaviour())
    return standin_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
