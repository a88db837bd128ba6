"""Every file this project reads or writes, as a pure function of the project directory.

No other module spells a path under build/ or certs/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["TEMPLATES", "Paths"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True, slots=True)
class Paths:
    root: Path  # the folder holding project.yaml

    @property
    def project_yaml(self) -> Path:
        return self.root / "project.yaml"

    @property
    def build(self) -> Path:
        return self.root / "build"

    @property
    def dep_file(self) -> Path:
        return self.root / ".doit.db"

    @property
    def generated(self) -> Path:
        return self.build / "generated"

    @property
    def partitions_csv(self) -> Path:
        return self.generated / "partitions.csv"

    @property
    def partition_table_bin(self) -> Path:
        return self.generated / "partition-table.bin"

    def sdkconfig_defaults(self, app: str) -> Path:
        return self.generated / f"{app}.sdkconfig.defaults"

    def app_build(self, app: str) -> Path:
        return self.build / app

    def staged(self, app: str) -> Path:
        """Apps outside the project are copied here (not into build/<app>, which idf.py may
        wipe) and built from the copy; ESP-IDF's own tree is never written to."""
        return self.build / "src" / app

    def app_summary(self, app: str) -> Path:
        return self.app_build(app) / "app.json"

    @property
    def manifest(self) -> Path:
        return self.build / "manifest.json"

    @property
    def boards(self) -> Path:
        """One JSON record per board flashed over serial, named by its MAC."""
        return self.build / "boards"

    @property
    def certs(self) -> Path:
        return self.root / "certs"
