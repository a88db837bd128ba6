"""`doit render`'s files: the partition table (CSV and binary) and each app's sdkconfig.defaults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..files import render_template, write_if_changed
from ..idf import partition_files

if TYPE_CHECKING:
    from ..idf.partitions import PartitionTable
    from .defaults import SdkconfigPlan

__all__ = ["write_partition_table", "write_sdkconfig"]


def write_partition_table(table: PartitionTable, csv_path: Path, bin_path: Path) -> None:
    """The CSV idf.py reads (from the template) and the binary ESP-IDF's tool would make of it."""
    csv_text = render_template("partitions.csv.j2", rows=partition_files.csv_rows(table))
    write_if_changed(csv_path, csv_text)
    write_if_changed(bin_path, partition_files.to_bin(table))


def write_sdkconfig(plan: SdkconfigPlan, path: Path) -> None:
    """The app's generated sdkconfig.defaults; 0600 when it holds the Wi-Fi password."""
    text = render_template("sdkconfig.defaults.j2", app=plan.app, sections=plan.sections())
    write_if_changed(path, text, mode=0o600 if plan.holds_secret else 0o644)
