"""`doit serve`: a release over HTTPS for esp_https_ota (ESP-IDF v5.3 §7.4), checked first.

The plan is pure; `check` loads the release (release/site.py says which URL path serves which
of its files), verifies it and refuses what boards would reject; engines.run serves it with the
built-in server or nginx.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError, ProjectError, ToolError, warn
from ..idf import app_code
from ..idf.app_code import AppCode
from ..idf.chips import CHIPS
from ..paths import cert_files
from ..release import site
from ..release.site import MANIFEST_PATH
from ..tls import certs

# The checks run in the actions (serve, publish, the rehearsal): what only they read (records,
# app summaries, releases) is imported in them, not when doit creates the tasks (bench/noop.py).
if TYPE_CHECKING:
    from ..config.model import Project
    from ..device.record import BoardRecord, FlashedImage
    from ..firmware.outputs import AppSummary, ImageEntry
    from ..firmware.signing_key import SigningPlan
    from ..idf.esp_image import AppImage
    from ..paths import Paths
    from ..release.release_record import Release
    from .protocol import Resource

__all__ = [
    "ENGINES",
    "LOG_FORMATS",
    "MANIFEST_PATH",
    "ServeContent",
    "ServeError",
    "ServePlan",
    "banner",
    "board_warnings",
    "check",
    "plan",
]

Engine = Literal["python", "nginx"]
LogFormat = Literal["text", "json"]
ENGINES: tuple[Engine, ...] = ("python", "nginx")
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")


class ServeError(ProjectError):
    """The server would hand boards something they reject, or cannot start."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServePlan:
    """What `doit serve` and `doit publish` serve, where, and what they check it against."""

    project: str
    url: str  # as boards use it, host resolved
    url_path: str
    host: str
    port: int
    bind: str
    app: str  # ota.image
    target: str
    chip_family: str
    app_summary: Path  # build/<app>/app.json
    flash_app: str
    flash_summary: Path | None  # the flashed app's app.json when it embeds the CA
    certs_dir: Path
    boards_dir: Path
    publish_dir: Path
    release_dir: Path  # releases/<app>/<version>/: what is served (the current one by default)
    serve_nginx_dir: Path  # `doit serve --engine nginx`'s own site (never publish's targets)
    engine: Engine = "python"
    log_format: LogFormat = "text"
    signing: SigningPlan | None = None  # ota.sign: serve only images this key signed
    max_connections: int = 1024
    max_per_client: int = 32

    @property
    def signing_key(self) -> Path | None:
        return self.signing.key if self.signing is not None else None

    @property
    def sha256_path(self) -> str:
        return f"{self.url_path}.sha256"

    @property
    def file_name(self) -> str:
        return self.url_path.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, object]:
        """Plain data for doit's config_changed (paths as text)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["signing"] = self.signing.to_json() if self.signing is not None else None
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def plan(
    project: Project,
    paths: Paths,
    *,
    engine: str = "python",
    log_format: str = "text",
    signing: SigningPlan | None = None,
) -> ServePlan:
    """The serve plan for project.yaml's ota: section (pure)."""
    ota = project.ota
    if ota is None:
        raise ConfigError(("ota",), "project.yaml has no ota: section; there is nothing to serve")
    # schema.url already made the path literal (no escapes, no dot segments) and kept it off
    # /manifest.json, so nginx and this server serve exactly the URL boards use.
    flash = next((a for a in project.apps if a.name == project.flash_app), None)
    embeds_ca = flash is not None and flash.ota_client and flash.name != ota.image
    return ServePlan(
        project=project.name,
        url=ota.url_text,
        url_path=ota.url.path,
        host=ota.host,
        port=ota.url.port,
        bind=ota.bind,
        app=ota.image,
        target=project.target,
        chip_family=CHIPS[project.target].family,
        app_summary=paths.app_summary(ota.image),
        flash_app=project.flash_app,
        flash_summary=paths.app_summary(project.flash_app) if embeds_ca else None,
        certs_dir=paths.certs,
        boards_dir=paths.boards,
        publish_dir=paths.publish,
        release_dir=paths.release(ota.image, project.app(ota.image).version),
        serve_nginx_dir=paths.serve_nginx,
        engine=_choice(engine, ENGINES, "--engine"),
        log_format=_choice(log_format, LOG_FORMATS, "--log-format"),
        signing=signing,
        max_connections=ota.max_connections,
        max_per_client=ota.max_per_client,
    )


def _choice(value: str, choices: Sequence[Any], what: str) -> Any:
    if value not in choices:
        names = ", ".join(f"'{c}'" for c in choices)
        raise ConfigError((), f"{what}: expected one of {names}, got '{value}'")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeContent:
    """Everything served, in memory, after the checks passed."""

    image: AppImage
    image_file: Path  # the served file in the release folder
    md5: str
    cert_fingerprint: str
    resources: Mapping[str, Resource]  # URL path -> body; nothing else is ever served
    warnings: tuple[str, ...]
    served: tuple[site.Served, ...] = ()  # the same files, as the release's site lists them
    release: Release | None = None


def check(plan: ServePlan, *, emit: Callable[[str], None] = warn) -> ServeContent:
    """Load and verify the release, cert and CA; refuse what boards would reject, warn the rest.

    Raises:
        ServeError: one line naming what is wrong and the command that fixes it.
    """
    from ..release import release_record
    from . import refusals

    summary = _summary(plan.app_summary, plan.app)
    release = _release(plan)
    try:
        served = site.files(
            release,
            plan.release_dir,
            url_path=plan.url_path,
            project=plan.project,
            chip_family=plan.chip_family,
        )
    except release_record.ReleaseError as err:
        raise ServeError(f"cannot serve {plan.url}: {err}") from None
    image = _image(plan, release)
    where = cert_files(plan.certs_dir)
    cert_pem, ca_pem = _read(where.server_cert, "run `doit certs`"), _read(where.ca_cert, "")
    try:
        certs.check_leaf(cert_pem, _read(where.server_key, "run `doit certs`"), ca_pem, plan.host)
    except certs.CertError as err:
        raise ServeError(f"cannot serve {plan.url}: {err}") from None
    _check_embedded(plan, summary, ca_pem)
    boards = _boards(plan.boards_dir, emit)
    notes = board_warnings(plan, summary, image, certs.ca_digests(ca_pem), boards)
    notes += refusals.of(
        plan.app, image.name, _signed_with(plan, release), image.secure_version, boards
    )
    if summary.code is not None:  # what the served app will do on the boards that take it
        notes += app_code.warnings(
            summary.code,
            app=plan.app,
            client=summary.ota_url is not None,
            encrypt=release.encrypted is not None,
            delta=bool(release.patches),
        )
    if summary.holds_secret and release.encrypted is None:
        notes.append(
            f"{image.name} embeds the Wi-Fi password (apps.{plan.app} is an OTA client and "
            "wifi.password is set): anyone who reaches this server can read it; provision "
            "Wi-Fi another way (e.g. CONFIG_EXAMPLE_WIFI_SSID_PWD_FROM_STDIN) for served images"
        )
    for note in notes:
        emit(note)
    return ServeContent(
        image=image,
        image_file=plan.release_dir / release.served.file,
        md5=hashlib.md5(served[0].body).hexdigest(),
        cert_fingerprint=certs.fingerprint(cert_pem),
        resources=_resources(served),
        warnings=tuple(notes),
        served=tuple(served),
        release=release,
    )


def _release(plan: ServePlan) -> Release:
    from ..release import release_record

    try:
        return release_record.read(plan.release_dir)
    except release_record.ReleaseError as err:
        version = plan.release_dir.name
        raise ServeError(
            f"no release {plan.app} {version} to serve ({err}); run `doit release`"
        ) from None


def _image(plan: ServePlan, release: Release) -> AppImage:
    """The released image's facts: read and checked from <app>.bin, or (an image that embeds
    the decryption key, released encrypted only) as release.json records them."""
    from ..idf import esp_image

    if release.image is None:
        return esp_image.AppImage(
            name=f"{plan.app}.bin",
            size=release.size,
            sha256=release.sha256,
            chip_id=esp_image.chip_id(plan.target),
            project_name=release.project_name,
            version=release.version,
            idf_version=release.idf_version,
            secure_version=release.secure_version,
        )
    data = _read(plan.release_dir / release.image.file, "run `doit release`")
    try:
        image = esp_image.read_app(data, plan.target, name=release.image.file)
    except esp_image.ImageError as err:
        raise ServeError(f"cannot serve {err}") from None
    _check_signature(plan, data, release.image.file)
    return image


def _signed_with(plan: ServePlan, release: Release) -> str | None:
    """The digest of the key whose signature the served image carries (what a board checks),
    read from the image where the release keeps it plain, else as release.json records it."""
    from ..idf import signing

    if release.image is None:
        return release.signing_key_digest
    data = _read(plan.release_dir / release.image.file, "run `doit release`")
    public = signing.signed_public_key(data)
    return signing.public_key_digest(public) if public is not None else None


def _check_signature(plan: ServePlan, data: bytes, name: str) -> None:
    """ota.sign: boards take only images signed by the key of the app they run."""
    import os

    from ..firmware import signing_key
    from ..idf import signing

    if plan.signing is None:
        return
    try:
        key = signing_key.load(plan.signing, os.environ).public_pem
    except signing_key.SigningKeyError as err:
        raise ServeError(f"cannot check the signature of {name}: {err}") from None
    try:
        signing.verify(data, key, name)
    except signing.SignatureError as err:
        raise ServeError(
            f"cannot serve {err}; boards would refuse it: run `doit build:{plan.app}`"
        ) from None


def _resources(served: Sequence[site.Served]) -> dict[str, Resource]:
    from .protocol import resource

    return {item.url_path: resource(item.body, item.mime) for item in served}


def _read(path: Path, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        hint = fix or "run `doit certs`"
        raise ServeError(f"{path}: missing; {hint}") from None
    except OSError as err:
        raise ServeError(f"{path}: cannot be read ({err.strerror})") from None


def _summary(path: Path, app: str) -> AppSummary:
    from ..firmware import outputs

    try:
        return outputs.read(path, fix=f"run `doit build:{app}` first")
    except ToolError as err:
        raise ServeError(str(err)) from None


def _check_embedded(plan: ServePlan, summary: AppSummary, ca_pem: bytes) -> None:
    """The CA compiled into the flashed app (and the served one) must be the current CA."""
    apps = [summary]
    if plan.flash_summary is not None:
        if plan.flash_summary.is_file():
            apps.append(_summary(plan.flash_summary, plan.flash_app))
        else:
            warn(
                f"{plan.flash_summary}: missing, so the CA embedded in app '{plan.flash_app}' "
                f"is not checked; run `doit build:{plan.flash_app}`"
            )
    for app in apps:
        try:
            certs.check_embedded_ca(app.ca_sha256, ca_pem, app.app)
        except certs.CertError as err:
            raise ServeError(str(err)) from None


def _boards(folder: Path, emit: Callable[[str], None]) -> list[BoardRecord]:
    """build/boards/<mac>.json as the flash task left them; unreadable ones are skipped."""
    from ..device import record

    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(record.read(path))
        except ToolError as err:
            emit(f"{err} (this board is not checked)")
    return records


def board_warnings(
    plan: ServePlan,
    summary: AppSummary,
    image: AppImage,
    ca: frozenset[str],
    boards: Sequence[BoardRecord],
) -> list[str]:
    """What each board flashed over serial will not get, or will refuse, from this server (pure)."""
    settings = summary.flash_settings
    notes: list[str] = []
    for board in boards:
        pairs = (
            *(
                (what, _sha256(board.image(role)), _sha256(summary.image(role)))
                for what, role in (
                    ("bootloader", "bootloader"),
                    ("partition table", "partition-table"),
                )
            ),
            ("flash size", board.flash_size, settings.flash_size),
            ("flash mode", board.flash_mode, settings.flash_mode),
            ("embedded CA", board.ca_sha256, summary.ca_sha256),
        )
        for what, before, now in pairs:
            if before and now and before != now:
                notes.append(
                    f"board {board.mac}: the {what} of app '{plan.app}' differs from the one "
                    f"flashed over serial ({_shown(before)} -> {_shown(now)}); OTA cannot deliver "
                    "it: run `doit flash`"
                )
        notes += _trust_warnings(plan, image, board, ca, summary.code)
    return notes


def _sha256(image: FlashedImage | ImageEntry | None) -> str | None:
    return None if image is None else image.sha256


def _trust_warnings(
    plan: ServePlan,
    image: AppImage,
    board: BoardRecord,
    ca: frozenset[str],
    code: AppCode | None,
) -> list[str]:
    notes = []
    mac, trusted, url = board.mac, board.ca_sha256, board.ota_url
    if trusted is not None and trusted not in ca:
        notes.append(
            f"board {mac}: its embedded CA (SHA-256 {trusted[:16]}…) did not sign this server's "
            "cert; it will refuse the download: run `doit flash`"
        )
    if url and url != plan.url:
        notes.append(
            f"board {mac}: fetches '{url}' but this server is '{plan.url}' (an `auto` host may "
            "have changed); it will not find this server: set $OTA_HOST or run `doit flash`"
        )
    # The board runs the served app's code when it runs the same project.
    same_app = board.app.project_name == image.project_name
    if board.app.version == image.version and same_app and code and code.compares_version:
        notes.append(
            f"board {mac}: already runs version '{image.version}', and app '{plan.app}' "
            "compares versions before writing, so it refuses this image: bump "
            f"apps.{plan.app}.version"
        )
    return notes


def _shown(value: object) -> str:
    text = str(value)
    return f"{text[:16]}…" if len(text) == 64 else text


def banner(
    plan: ServePlan, content: ServeContent, port: int, *, extra: Sequence[str] = ()
) -> list[str]:
    """What `doit serve` prints before the first request; `extra` is the server's own."""
    image = content.image
    also = [path for path in content.resources if path != plan.url_path]
    kind = " (encrypted)" if content.release is not None and content.release.encrypted else ""
    return [
        f"serving {plan.url} on {plan.bind}:{port} (also {', '.join(also)})",
        f"release {content.image_file}{kind} version '{image.version}' {image.size} bytes",
        f"sha256 {image.sha256}",
        f"server cert SHA-256 {content.cert_fingerprint}",
        *extra,
        "Ctrl-C stops the server",
    ]
