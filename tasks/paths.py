"""Every file this project reads or writes, as a pure function of the project directory.

No other module spells a path under build/ or certs/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# doit's state (dbm files: .doit.db, .doit.db.dat, ...), beside project.yaml (DOIT_CONFIG).
DEP_FILE = ".doit.db"

__all__ = ["TEMPLATES", "Paths"]


def _templates() -> Path:
    """Installed from a wheel, templates/ sits inside the package; in a checkout, beside tasks/."""
    here = Path(__file__).resolve().parent
    shipped = here / "templates"
    return shipped if shipped.is_dir() else here.parent / "templates"


TEMPLATES = _templates()


@dataclass(frozen=True, slots=True)
class Paths:
    root: Path  # the folder holding project.yaml
    # "virtual": the rehearsal's synthetic builds and board, kept apart under build/virtual/.
    variant: str = ""

    @property
    def project_yaml(self) -> Path:
        return self.root / "project.yaml"

    @property
    def build(self) -> Path:
        return self.root / "build"

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

    @property
    def server_host(self) -> Path:
        """The host task's hand-over file: the address `auto` stands for here."""
        return self.build / "facts" / "host.json"

    def kconfig_facts(self, app: str) -> Path:
        """The kconfig task's hand-over file: the app's Kconfig as kconfgen evaluated it."""
        return self.build / "kconfig" / f"{app}.facts.json"

    @property
    def outputs(self) -> Path:
        """Where builds and board records go: build/, or build/<variant>/."""
        return self.build / self.variant if self.variant else self.build

    def app_build(self, app: str) -> Path:
        return self.outputs / app

    def staged(self, app: str) -> Path:
        """Apps outside the project are copied here (not into build/<app>, which idf.py may
        wipe) and built from the copy; ESP-IDF's own tree is never written to."""
        return self.outputs / "src" / app

    def app_summary(self, app: str) -> Path:
        return self.app_build(app) / "app.json"

    @property
    def manifest(self) -> Path:
        return self.outputs / "manifest.json"

    @property
    def boards(self) -> Path:
        """One JSON record per board flashed over serial, named by its MAC."""
        return self.outputs / "boards"

    @property
    def releases(self) -> Path:
        """releases/<app>/<version>/: what was delivered, immutable, kept with the project (the
        rehearsal's synthetic releases stay under build/virtual/releases/)."""
        return self.outputs / "releases" if self.variant else self.root / "releases"

    def release(self, app: str, version: str) -> Path:
        return self.releases / app / version

    @property
    def serve_nginx(self) -> Path:
        """`doit serve --engine nginx`'s own site and config (never publish's targets)."""
        return self.build / "serve-nginx"

    @property
    def publish(self) -> Path:
        """The static site (image, .sha256, manifest.json) and its nginx config; never a key."""
        return self.build / "publish"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def keys(self) -> Path:
        """The app-signing key (0700/0600): beside project.yaml, never under build/ or served."""
        return self.root / "keys"
