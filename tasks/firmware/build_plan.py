"""What one app's build reads (BuildPlan), planned from the model: sources, ESP-IDF, sdkconfig
defaults, the CA to embed and the slots the image must fit. Pure; build.py runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..idf import idftool
from ..idf.app_code import Overrides
from ..idf.idftool import IdfTool
from ..idf.kconfig import sdkconfig
from ..idf.partition.rules import Partition
from ..paths import cert_files
from . import defaults
from .signing_key import SigningPlan

if TYPE_CHECKING:
    from ..config.model import App, Project
    from ..paths import Paths
    from .defaults import SdkconfigPlan

__all__ = ["BuildPlan", "idf_identity", "plan", "plans"]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class BuildPlan:
    """Everything one app's build reads; the build task fingerprints exactly this."""

    app: str
    target: str
    idf_version: str  # project.yaml's major.minor
    # Which ESP-IDF builds it (release with patch, and IDF_PATH): another one rebuilds.
    idf: str
    version: str  # PROJECT_VER the image must carry
    source: Path  # the app project as the user named it
    project_root: Path  # the folder holding project.yaml
    project_dir: Path  # where idf.py builds it from: the staged copy
    build_dir: Path
    sdkconfig: Path
    defaults: tuple[Path, ...]  # SDKCONFIG_DEFAULTS, in order
    ca_source: Path | None  # certs/ca_cert.pem, for ota_client apps
    ca_dest: Path | None  # where the app embeds it
    options: tuple[tuple[str, str, str], ...]  # (CONFIG_NAME, sdkconfig value, where from)
    secret_options: tuple[str, ...]
    slots: tuple[Partition, ...]  # the app partitions the image must fit
    ota_url: str | None
    signing: SigningPlan | None = None  # ota.sign: espsecure signs the app after the build
    # ota.encrypt: the private key an OTA client embeds (esp_encrypted_img), and where.
    decrypt_key_source: Path | None = None
    decrypt_key_dest: Path | None = None
    delta: bool = False  # ota.delta: the project serves esp_delta_ota patches
    ca_cert: str | None = None  # where the app embeds the CA, relative to its folder
    # What project.yaml states about the app's code (apps.<name>.compares_version...).
    code_overrides: tuple[tuple[str, bool | str | None], ...] = ()
    idf_root: Path | None = None  # the ESP-IDF tree ($IDF_PATH); None: the stand-in's own
    # What each step writes (paths.Paths names them), in pipeline order.
    sdkconfig_inputs: Path
    built_images: Path
    checked: Path
    signed_app: Path
    merged: Path
    summary: Path

    @property
    def signing_key(self) -> Path | None:
        """The key file the build reads (a file_dep of the build)."""
        return self.signing.key if self.signing is not None else None

    @property
    def defaults_layers(self) -> list[Path]:
        """The defaults files in the order ESP-IDF applies them, F then F.<target> (docs/esp-idf.md
        §5.4); the app's own as they are in its folder (the staged copy is made later)."""
        files = [
            self.source / path.relative_to(self.project_dir)
            if path.is_relative_to(self.project_dir)
            else path
            for path in self.defaults
        ]
        return [
            layer
            for path in files
            for layer in (path, path.with_name(f"{path.name}.{self.target}"))
        ]

    @property
    def placed(self) -> list[Path]:
        """The files the build places into the staged copy (the CA, the decryption key)."""
        return [path for path in (self.ca_dest, self.decrypt_key_dest) if path is not None]

    def to_json(self) -> dict[str, object]:
        """The fingerprint doit stores and `doit info` prints: secrets only as a digest."""
        data: dict[str, object] = {
            name: [list(item) if isinstance(item, tuple) else str(item) for item in value]
            if isinstance(value, tuple)
            else (str(value) if isinstance(value, Path) else value)
            for name, value in (
                (field, getattr(self, field)) for field in self.__dataclass_fields__
            )
        }
        data["options"] = [
            [name, sdkconfig.redacted(name, value, self.secret_options), origin]
            for name, value, origin in self.options
        ]
        data["slots"] = [[slot.name, slot.offset, slot.size] for slot in self.slots]
        data["signing"] = self.signing.to_json() if self.signing is not None else None
        return data

    def idf_json(self) -> dict[str, object]:
        """What idf.py's step reads: the fingerprint without what only later steps use (the
        signing key, the version and slots checked, what project.yaml says of the code)."""
        later = ("signing", "version", "slots", "delta", "code_overrides", "ota_url")
        return {name: value for name, value in self.to_json().items() if name not in later}

    def __repr__(self) -> str:
        # `doit info` prints action arguments: never the option values (the Wi-Fi password).
        return f"BuildPlan(app={self.app!r}, target={self.target!r}, source='{self.source}')"

    def command(self, idf: IdfTool, action: str = "build") -> list[str]:
        """idf.py's command line: never set-target, which would wipe the build dir."""
        return [
            *idf.command,
            "-C",
            str(self.project_dir),
            "-B",
            str(self.build_dir),
            "-D",
            f"SDKCONFIG={self.sdkconfig}",
            "-D",
            "SDKCONFIG_DEFAULTS=" + ";".join(str(path) for path in self.defaults),
            "-D",
            f"IDF_TARGET={self.target}",
            action,
        ]


def idf_identity(idf_root: Path | None) -> str:
    """The ESP-IDF a build uses, as its fingerprint and messages name it."""
    if idf_root is None:
        return "no ESP-IDF (the idf.py stand-in)"
    version = idftool.idf_version(idf_root) or "of unknown version"
    return f"ESP-IDF {version} at {idf_root.resolve()}"


def plan(
    project: Project,
    app: App,
    options: SdkconfigPlan,
    *,
    paths: Paths,
    idf_root: Path | None,
    signing: SigningPlan | None = None,
    decrypt_key: Path | None = None,
    exists: Callable[[Path], bool] = Path.exists,
) -> BuildPlan:
    """The build of `app`: where its sources are, what it is built with, what it must fit.

    `exists` tells whether a source file is there (a tree a task writes later says so itself).
    """
    if app.in_idf:
        source = (idf_root or Path("$IDF_PATH")) / app.idf_subpath
    else:
        source = (project.project_dir / app.path).resolve()
    # Every app is built from its staged copy: neither ESP-IDF's tree nor the app's own folder
    # (its sdkconfig, build/, embedded CA) is ever written to.
    project_dir = paths.staged(app.name)
    generated = paths.sdkconfig_defaults(app.name)
    # The app's own defaults files (ESP-IDF's CI variants layered on), then ours, which win.
    own = tuple(project_dir / name for name in app.defaults_files if exists(source / name))
    defaults = (*own, generated)
    client = app.ota_client and project.ota is not None
    secret = options.secret_options
    return BuildPlan(
        app=app.name,
        target=project.target,
        idf_version=project.idf.version,
        idf=idf_identity(idf_root),
        version=app.version,
        source=source,
        project_root=project.project_dir,
        project_dir=project_dir,
        build_dir=paths.app_build(app.name),
        sdkconfig=paths.app_build(app.name) / "sdkconfig",
        defaults=defaults,
        ca_source=cert_files(paths.certs).ca_cert if client else None,
        ca_dest=project_dir / app.ca_cert if client else None,
        options=tuple(
            (name, value, title) for title, items in options.groups for name, value in items
        ),
        secret_options=secret,
        slots=_slots(project, app),
        ota_url=project.ota.url_text if client and project.ota is not None else None,
        signing=signing,
        decrypt_key_source=decrypt_key if client and decrypt_key is not None else None,
        decrypt_key_dest=project_dir / app.decrypt_key if client and decrypt_key else None,
        delta=project.ota is not None and project.ota.delta,
        ca_cert=app.ca_cert,
        code_overrides=tuple(code_overrides(app).to_json().items()),
        idf_root=idf_root,
        sdkconfig_inputs=paths.sdkconfig_inputs(app.name),
        built_images=paths.built_images(app.name),
        checked=paths.checked(app.name),
        signed_app=paths.signed_app(app.name),
        merged=paths.merged(app.name),
        summary=paths.app_summary(app.name),
    )


def code_overrides(app: App) -> Overrides:
    """What project.yaml states about the app's code, where its reading would not do."""
    return Overrides(
        compares_version=app.compares_version,
        skips_host_check=app.skips_host_check,
        trusts="bundle" if app.trusts == "bundle" else "embedded_ca" if app.trusts else None,
        confirms_update=app.confirms_update,
    )


def plans(
    project: Project,
    *,
    paths: Paths,
    idf_root: Path | None,
    signing: SigningPlan | None = None,
    decrypt_key: Path | None = None,
    exists: Callable[[Path], bool] = Path.exists,
) -> list[BuildPlan]:
    """One BuildPlan per app in project.yaml, in order."""
    return [
        plan(
            project,
            app,
            defaults.plan(project, app, partitions_csv=paths.partitions_csv),
            paths=paths,
            idf_root=idf_root,
            signing=signing,
            decrypt_key=decrypt_key,
            exists=exists,
        )
        for app in project.apps
    ]


def _slots(project: Project, app: App) -> tuple[Partition, ...]:
    table = project.table
    chosen: list[Partition] = []
    if app.name == project.flash_app:
        # idf.py app-flash writes the "boot default": factory, else the first OTA slot.
        boot = table.factory or (table.ota_slots[0] if table.ota_slots else None)
        chosen += [boot] if boot else []
    if project.ota is not None and app.name == project.ota.image:
        chosen += table.ota_slots
    if not chosen:  # check_sizes.py checks every app partition
        chosen = [p for p in table.partitions if p.type == 0]
    return tuple({p.name: p for p in chosen}.values())
