"""Every file this project reads or writes, as a pure function of the project directory.

No other module spells a path under build/, certs/, keys/ or releases/: a plan that carries only a
folder (a certificate plan's certs_dir, a signing plan's keys folder) names the files in it with
`cert_files` and `key_files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# doit's state (dbm files: .doit.db, .doit.db.dat, ...), beside project.yaml (DOIT_CONFIG).
DEP_FILE = ".doit.db"

__all__ = ["DEP_FILE", "TEMPLATES", "CertFiles", "KeyFiles", "Paths", "cert_files", "key_files"]


def _templates() -> Path:
    """Installed from a wheel, templates/ sits inside the package; in a checkout, beside tasks/."""
    here = Path(__file__).resolve().parent
    shipped = here / "templates"
    return shipped if shipped.is_dir() else here.parent / "templates"


TEMPLATES = _templates()


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFiles:
    """The files in the certs dir; only the two `*_key.pem` files hold secrets."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def cert_files(certs_dir: Path) -> CertFiles:
    """The file names inside a certs folder (certs/, or the CI's or a test's own)."""
    return CertFiles(
        ca_cert=certs_dir / "ca_cert.pem",
        ca_key=certs_dir / "ca_key.pem",
        server_cert=certs_dir / "server_cert.pem",
        server_key=certs_dir / "server_key.pem",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyFiles:
    """The files in the keys folder (0700; each key 0600)."""

    signing_key: Path  # ota.sign's private key
    signing_pubkey: Path  # its public key alone, where ota.sign_command signs elsewhere
    encryption_key: Path  # ota.encrypt's RSA key


def key_files(keys_dir: Path) -> KeyFiles:
    """The file names inside a keys folder."""
    return KeyFiles(
        signing_key=keys_dir / "signing_key.pem",
        signing_pubkey=keys_dir / "signing_pubkey.pem",
        encryption_key=keys_dir / "encryption_key.pem",
    )


@dataclass(frozen=True, slots=True)
class Paths:
    """The files of the project in `root` (the rehearsal's own under build/virtual/)."""

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
    def kconfig_cache(self) -> Path:
        """kconfgen's evaluations of each app's Kconfig, cached on their inputs."""
        return self.build / "kconfig"

    @property
    def reproduce(self) -> Path:
        """`doit reproduce`'s clean second builds."""
        return self.build / "reproduce"

    def virtual_flash(self, target: str) -> Path:
        """The rehearsal's virtual board's flash, one file per chip."""
        return self.build / "virtual" / f"{target}-flash.bin"

    @property
    def server_host(self) -> Path:
        """The host task's hand-over file: the address `auto` stands for here."""
        return self.build / "facts" / "host.json"

    def kconfig_facts(self, app: str) -> Path:
        """The kconfig task's hand-over file: the app's Kconfig as kconfgen evaluated it."""
        return self.kconfig_cache / f"{app}.facts.json"

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

    def sdkconfig_inputs(self, app: str) -> Path:
        """What build/<app>/sdkconfig is made from: the target, ESP-IDF and each defaults file."""
        return self.app_build(app) / "sdkconfig.inputs.json"

    def built_images(self, app: str) -> Path:
        """What idf.py built, as flasher_args.json names it, with each image's SHA-256."""
        return self.app_build(app) / "images.json"

    def checked(self, app: str) -> Path:
        """The build's checks passed: what the app's code does under its built configuration."""
        return self.app_build(app) / "checked.json"

    def signed_app(self, app: str) -> Path:
        """The app signed with ota.sign's key (idf.py's own .bin stays as ninja made it)."""
        return self.app_build(app) / f"{app}-signed.bin"

    def merged(self, app: str) -> Path:
        """Every image in one file for factory programming (esptool merge-bin)."""
        return self.app_build(app) / "merged.bin"

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
