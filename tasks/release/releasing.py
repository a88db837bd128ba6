"""`doit release`: the served app's build recorded as releases/<app>/<version>/, once. A version
released again with other bytes is refused; patches from earlier releases (ota.delta) and the
encrypted image (ota.encrypt) are made when the release is, and never change afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ToolError
from . import ReleaseError

# Recording a release is the action's work: what it reads and writes records, images and keys
# with is imported in it, not when doit creates the tasks (bench/noop.py).
if TYPE_CHECKING:
    from ..config.model import Project
    from ..firmware import outputs
    from ..firmware.encryption_key import EncryptionPlan
    from ..firmware.signing_key import SigningKey, SigningPlan
    from ..idf import esp_image
    from ..paths import Paths
    from .release_record import FileEntry, Patch, Release

__all__ = [
    "ReleaseError",
    "ReleasePlan",
    "plan",
    "record_release",
    "releases_of",
]

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasePlan:
    """What `doit release` records, from which build, into which folder."""

    app: str  # ota.image
    version: str  # apps.<app>.version: the release folder's name
    target: str
    app_summary: Path
    releases_dir: Path  # releases/ (or build/virtual/releases/ for the rehearsal's builds)
    project_root: Path
    signing: SigningPlan | None = None  # ota.sign: the release must verify with this key
    encryption: EncryptionPlan | None = None
    delta: bool = False
    delta_bases: int = 3

    @property
    def signing_key(self) -> Path | None:
        """The key file the release reads (a file_dep of `doit release`)."""
        return self.signing.key if self.signing is not None else None

    @property
    def folder(self) -> Path:
        return self.releases_dir / self.app / self.version

    def to_json(self) -> dict[str, object]:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["encryption"] = None if self.encryption is None else self.encryption.to_json()
        values["signing"] = None if self.signing is None else self.signing.to_json()
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def plan(
    project: Project,
    paths: Paths,
    *,
    signing: SigningPlan | None = None,
    encryption: EncryptionPlan | None = None,
) -> ReleasePlan | None:
    """The release of ota.image at its project.yaml version; None without an ota: section."""
    ota = project.ota
    if ota is None:
        return None
    return ReleasePlan(
        app=ota.image,
        version=project.app(ota.image).version,
        target=project.target,
        app_summary=paths.app_summary(ota.image),
        releases_dir=paths.releases,
        project_root=project.project_dir,
        signing=signing,
        encryption=encryption,
        delta=ota.delta,
        delta_bases=ota.delta_bases,
    )


def _signing_key(plan: SigningPlan) -> SigningKey:
    """The project key through the one key loader (its line on a bad key, never a traceback)."""
    from ..firmware import signing_key

    try:
        return signing_key.load(plan, os.environ)
    except signing_key.SigningKeyError as error:
        raise ReleaseError(str(error)) from None


def releases_of(releases_dir: Path, app: str) -> list[Release]:
    """Every release of `app`, latest first (by the time each was recorded)."""
    from . import release_record

    found = []
    for folder in sorted((releases_dir / app).glob("*/")) if (releases_dir / app).is_dir() else []:
        # .<version>.* is a release being written (or left by a killed run): not a release.
        if not folder.name.startswith(".") and (folder / release_record.RECORD).is_file():
            found.append(release_record.read(folder))
    return sorted(found, key=lambda r: (r.time, r.version), reverse=True)


def _check_version(plan: ReleasePlan) -> None:
    if not set(plan.version) <= _SAFE or plan.version.startswith("."):
        raise ReleaseError(
            f"apps.{plan.app}.version '{plan.version}' cannot name a release folder or a URL; "
            "use letters, digits, '.', '_' and '-'"
        )


def _verified(plan: ReleasePlan) -> tuple[bytes, esp_image.AppImage, outputs.AppSummary]:
    """The build's image, checked as a board and `doit serve` check it."""
    from ..firmware import outputs
    from ..idf import esp_image, signing

    summary = outputs.read(plan.app_summary, fix=f"run `doit build:{plan.app}` first")
    data = summary.app_file.read_bytes() if summary.app_file.is_file() else b""
    if not data:
        raise ReleaseError(f"{summary.app_file}: missing; run `doit build:{plan.app}`")
    try:
        image = esp_image.read_app(data, plan.target, name=summary.app_file.name)
    except esp_image.ImageError as error:
        raise ReleaseError(f"cannot release {error}") from None
    if image.sha256 != summary.app_image.sha256:
        raise ReleaseError(
            f"cannot release {image.name}: it changed since `doit build:{plan.app}` recorded it; "
            f"run `doit build:{plan.app}`"
        )
    if image.version != plan.version:
        raise ReleaseError(
            f"cannot release {image.name}: it carries version '{image.version}', project.yaml "
            f"says '{plan.version}'; run `doit build:{plan.app}`"
        )
    if plan.signing is not None:
        try:
            signing.verify(data, _signing_key(plan.signing).public_pem, image.name)
        except signing.SignatureError as error:
            raise ReleaseError(f"cannot release {error}; run `doit build:{plan.app}`") from None
    return data, image, summary


def _entry(folder: Path, name: str, data: bytes) -> FileEntry:
    _write_synced(folder / name, data)
    from .release_record import FileEntry

    return FileEntry(file=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _write_synced(path: Path, data: bytes) -> None:
    """A release file, world-readable (nothing secret is ever released), on disk before the
    folder is renamed into place."""
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o644)


def _sync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _patches(plan: ReleasePlan, data: bytes, folder: Path) -> tuple[list[Patch], list[str]]:
    """esp_delta_ota patches from the latest earlier releases, and a line for each."""
    from ..idf import delta_ota
    from .release_record import Patch

    patches, lines = [], []
    earlier = [r for r in releases_of(plan.releases_dir, plan.app) if r.version != plan.version]
    for base in earlier[: plan.delta_bases]:
        if base.image is None or base.target != plan.target:
            why = "its plain image is not kept" if base.image is None else f"it is {base.target}"
            lines.append(f"  no patch from {base.version}: {why}")
            continue
        base_bytes = (plan.releases_dir / plan.app / base.version / base.image.file).read_bytes()
        try:
            body = delta_ota.create(base_bytes, data, plan.target, base_name=base.image.file)
        except delta_ota.DeltaError as error:
            raise ReleaseError(
                f"cannot make a patch from {plan.app} {base.version}: {error}"
            ) from None
        entry = _entry(folder, f"{plan.app}-from-{base.version}.patch", body)
        patches.append(Patch(from_version=base.version, from_sha256=base.sha256, entry=entry))
        ratio = 100 * entry.size / len(data)
        lines.append(
            f"  patch from {base.version}: {entry.file} {entry.size} bytes, "
            f"{ratio:.1f} % of the full image ({len(data)} bytes)"
        )
    return patches, lines


def _check_unchanged(existing: Release, image: esp_image.AppImage, plan: ReleasePlan) -> None:
    if existing.sha256 == image.sha256:
        return
    raise ReleaseError(
        f"{plan.app} {plan.version} is already released with other bytes (SHA-256 "
        f"{existing.sha256[:16]}…, this build {image.sha256[:16]}…); a release never changes: "
        f"bump apps.{plan.app}.version"
    )


def record_release(plan: ReleasePlan) -> Release:
    """Record the build as releases/<app>/<version>/ (nothing when it already is).

    Raises:
        ReleaseError: the version is released with other bytes, or the build cannot be released.
    """
    from . import release_record

    _check_version(plan)
    data, image, summary = _verified(plan)
    if (plan.folder / release_record.RECORD).is_file():
        existing = release_record.read(plan.folder)
        _check_unchanged(existing, image, plan)
        print(f"release {plan.app} {plan.version}: already recorded, unchanged ({plan.folder})")
        return existing
    plan.releases_dir.mkdir(parents=True, exist_ok=True)
    (plan.releases_dir / plan.app).mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{plan.version}.", dir=plan.releases_dir / plan.app))
    try:
        release, lines = _write(plan, data, image, summary, scratch)
        os.chmod(scratch, 0o755)
        _write_synced(scratch / release_record.RECORD, release_record.to_text(release).encode())
        os.rename(scratch, plan.folder)  # the release appears whole, or not at all
        _sync_folder(plan.folder.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"released {plan.app} {plan.version}: {image.size} bytes, SHA-256 {image.sha256}")
    print(f"  {plan.folder}")
    for line in lines:
        print(line)
    return release


def _write(
    plan: ReleasePlan,
    data: bytes,
    image: esp_image.AppImage,
    summary: outputs.AppSummary,
    folder: Path,
) -> tuple[Release, list[str]]:
    from ..firmware import encryption_key
    from ..idf import encrypted_img
    from .release_record import Release

    lines: list[str] = []
    encrypted = plain = None
    keeps_plain = True
    if plan.encryption is not None:
        private = plan.encryption.key.read_bytes() if plan.encryption.key.is_file() else b""
        public = encryption_key.read_public(plan.encryption)
        # An app that embeds the decryption key (pre_encrypted_ota updating itself) must not
        # lie in releases/ in the clear: only its encrypted image is kept.
        keeps_plain = not (private and private.strip() in data)
        encrypted = _entry(folder, f"{plan.app}-encrypted.bin", encrypted_img.encrypt(data, public))
        lines.append(f"  encrypted: {encrypted.file} {encrypted.size} bytes (esp_encrypted_img)")
        if not keeps_plain:
            lines.append(
                f"  {plan.app}.bin embeds the decryption key, so only its encrypted image is kept"
            )
    if keeps_plain:
        plain = _entry(folder, f"{plan.app}.bin", data)
    patches: list[Patch] = []
    if plan.delta:
        patches, patch_lines = _patches(plan, data, folder)
        lines += patch_lines or ["  no earlier release: the first one has no patch"]
    release = Release(
        app=plan.app,
        version=plan.version,
        secure_version=image.secure_version,
        project_name=image.project_name,
        sha256=image.sha256,
        size=image.size,
        idf_version=image.idf_version,
        target=plan.target,
        signing_key_digest=_signing_key(plan.signing).digest if plan.signing else None,
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        git_commit=_commit(plan.project_root),
        image=plain,
        encrypted=encrypted,
        patches=tuple(patches),
    )
    return release, lines


def _commit(root: Path) -> str | None:
    from ..firmware import manifest

    try:
        return manifest.git_commit(root)
    except ToolError:
        return None
