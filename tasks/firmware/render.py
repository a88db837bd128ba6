"""`doit render`'s files: the partition table (CSV and binary) and each app's sdkconfig.defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import warn
from ..files import render_template, write_if_changed
from ..idf import app_code, app_folder
from ..idf.partition import formats

if TYPE_CHECKING:
    from ..idf.partition.rules import PartitionTable
    from .defaults import SdkconfigPlan

__all__ = ["CodeCheck", "warn_code", "write_partition_table", "write_sdkconfig"]


def write_partition_table(table: PartitionTable, csv_path: Path, bin_path: Path) -> None:
    """The CSV idf.py reads (from the template) and the binary ESP-IDF's tool would make of it."""
    csv_text = render_template("partitions.csv.j2", rows=formats.csv_rows(table))
    write_if_changed(csv_path, csv_text)
    write_if_changed(bin_path, formats.to_bin(table))


def write_sdkconfig(plan: SdkconfigPlan, path: Path) -> None:
    """The app's generated sdkconfig.defaults; 0600 when it holds the Wi-Fi password."""
    text = render_template("sdkconfig.defaults.j2", app=plan.app, sections=plan.sections())
    write_if_changed(path, text, mode=0o600 if plan.holds_secret else 0o644)


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeCheck:
    """An app's code to read under the configuration kconfgen gave it with project.yaml's
    options (known before any build where ESP-IDF is here)."""

    app: str
    folder: Path
    config: Mapping[str, Any]
    overrides: app_code.Overrides
    ca_cert: str | None
    client: bool
    encrypt: bool = False  # ota.encrypt: the project makes pre-encrypted images
    delta: bool = False  # ota.delta: the project makes delta patches


def warn_code(check: CodeCheck) -> None:
    """What a board running the app would do that its owner may not expect, said at render."""
    try:
        files = app_folder.read_app(check.folder)
    except (OSError, UnicodeDecodeError, ValueError):
        return  # the loader has said what is wrong with the app's path
    code = app_code.scan(
        check.folder,
        check.config,
        examples_common=files.uses_examples_common,
        overrides=check.overrides,
        app=check.app,
        ca_cert=check.ca_cert,
    )
    for note in app_code.warnings(
        code, app=check.app, client=check.client, encrypt=check.encrypt, delta=check.delta
    ):
        warn(note)
