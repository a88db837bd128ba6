"""The `esp-ota-doit` console script: `init` adopts an existing ESP-IDF app (see adopt.py).

Everything else is a doit task (`doit list`); this script only starts a project.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import adopt, loader
from .errors import ConfigErrors, ProjectError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esp-ota-doit", description="ESP-IDF OTA from one project.yaml, on doit."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser(
        "init",
        help="write project.yaml and dodo.py for an existing ESP-IDF app",
        description="Read an ESP-IDF app as ESP-IDF would and write project.yaml and dodo.py "
        "next to it (never over existing ones).",
    )
    init.add_argument("app_dir", nargs="?", default=".", help="the app folder (default: .)")
    init.add_argument(
        "--url-option",
        metavar="NAME",
        help="the app's Kconfig option holding the firmware URL, when it has several",
    )
    init.add_argument(
        "--defaults",
        metavar="FILE",
        nargs="+",
        help="the app's defaults files in SDKCONFIG_DEFAULTS order, a later one winning "
        "(e.g. sdkconfig.defaults sdkconfig.ci.anti_rollback); default: sdkconfig.defaults",
    )
    init.add_argument(
        "--target",
        metavar="TARGET",
        help="IDF_TARGET (default: the app's sdkconfig or defaults, $IDF_TARGET, else esp32)",
    )
    init.add_argument(
        "--no-sdkconfig",
        action="store_true",
        help="do not carry the app's sdkconfig choices into project.yaml",
    )
    return parser


def _validation_host(host: str) -> str:
    """`auto` is resolved when doit runs; checking the file needs no network lookup."""
    return "127.0.0.1" if host == "auto" else host


def _check(adoption: adopt.Adoption) -> None:
    """The project.yaml about to be written must load, as doit will load it."""
    try:
        loader.load(
            adoption.project_yaml,
            file="project.yaml",
            env={**os.environ, "WIFI_PASSWORD": ""},
            resolve_host=_validation_host,
            project_dir=adoption.folder,
        )
    except ConfigErrors as errors:
        raise adopt.InitError(
            f"the project.yaml init made does not load ({errors.lines[0]}); nothing was written"
        ) from None


def _init(options: argparse.Namespace) -> None:
    folder = Path(options.app_dir).resolve()
    if not folder.is_dir():
        raise adopt.InitError(f"{options.app_dir}: no such folder")
    adoption = adopt.plan(
        folder,
        os.environ,
        url_option=options.url_option,
        carry_sdkconfig=not options.no_sdkconfig,
        defaults=options.defaults,
        target=options.target,
    )
    _check(adoption)
    written = adopt.write(adoption)
    for line in adoption.said:
        print(line)
    print(f"wrote {', '.join(path.name for path in written)} in {folder}")
    wifi = ["export WIFI_PASSWORD=..."] if "${WIFI_PASSWORD}" in adoption.project_yaml else []
    steps = [*wifi, *adoption.next_steps, "doit rehearse (no board needed), then doit flash"]
    print("next: " + "; ".join(steps))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; one line on stderr and exit 1 for anything a person can fix."""
    options = _parser().parse_args(argv)
    try:
        _init(options)
    except ProjectError as error:
        print(f"esp-ota-doit {options.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
