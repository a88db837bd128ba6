"""`doit serve`: the OTA image over HTTPS for esp_https_ota (ESP-IDF v5.3 §7.4), checked first.

The plan is pure; `check` loads and verifies what will be served and refuses what boards would
reject (check); engines.run serves it with the built-in server or nginx.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..device import record
from ..errors import ConfigError, ProjectError, ToolError, warn
from ..firmware import outputs
from ..idf import app_code
from ..idf.app_code import AppCode
from ..idf.chips import CHIPS
from ..tls import certs

if TYPE_CHECKING:
    from ..config.model import Project
    from ..device.record import BoardRecord, FlashedImage
    from ..firmware.outputs import AppSummary, ImageEntry
    from ..idf.images import AppImage
    from ..paths import Paths
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
MANIFEST_PATH = "/manifest.json"


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
    engine: Engine = "python"
    log_format: LogFormat = "text"
    signing_key: Path | None = None  # ota.sign: serve only images this key signed
    max_connections: int = 1024
    max_per_client: int = 32

    @property
    def sha256_path(self) -> str:
        return f"{self.url_path}.sha256"

    @property
    def file_name(self) -> str:
        return self.url_path.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, object]:
        """Plain data for doit's config_changed (paths as text)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def plan(
    project: Project,
    paths: Paths,
    *,
    engine: str = "python",
    log_format: str = "text",
    signing_key: Path | None = None,
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
        engine=_choice(engine, ENGINES, "--engine"),
        log_format=_choice(log_format, LOG_FORMATS, "--log-format"),
        signing_key=signing_key,
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
    image_file: Path
    md5: str
    cert_fingerprint: str
    resources: Mapping[str, Resource]  # URL path -> body; nothing else is ever served
    warnings: tuple[str, ...]


def check(plan: ServePlan, *, emit: Callable[[str], None] = warn) -> ServeContent:
    """Load and verify the image, cert and CA; refuse what boards would reject, warn the rest.

    Raises:
        ServeError: one line naming what is wrong and the command that fixes it.
    """
    from ..idf import images

    summary = _summary(plan.app_summary, plan.app)
    image_file = summary.app_file
    data = _read(image_file, f"run `doit build:{plan.app}`")
    try:
        image = images.read_app(data, plan.target, name=image_file.name)
    except images.ImageError as err:
        raise ServeError(f"cannot serve {err}") from None
    _check_signature(plan, data, image_file.name)
    recorded = summary.app_image.sha256
    if recorded != image.sha256:
        raise ServeError(
            f"cannot serve {image_file.name}: its SHA-256 {image.sha256[:16]}… is not the one "
            f"`doit build:{plan.app}` recorded ({recorded[:16]}…); run `doit build:{plan.app}`"
        )
    where = certs.paths(plan.certs_dir)
    cert_pem, ca_pem = _read(where.server_cert, "run `doit certs`"), _read(where.ca_cert, "")
    try:
        certs.check_leaf(cert_pem, _read(where.server_key, "run `doit certs`"), ca_pem, plan.host)
    except certs.CertError as err:
        raise ServeError(f"cannot serve {plan.url}: {err}") from None
    _check_embedded(plan, summary, ca_pem)
    boards = _boards(plan.boards_dir, emit)
    _check_downgrade(plan, image, boards)
    notes = board_warnings(plan, summary, image, certs.ca_digests(ca_pem), boards)
    if summary.code is not None:  # what the served app will do on the boards that take it
        notes += app_code.warnings(summary.code, app=plan.app, client=summary.ota_url is not None)
    if summary.holds_secret:
        notes.append(
            f"{image_file.name} embeds the Wi-Fi password (apps.{plan.app} is an OTA client and "
            "wifi.password is set): anyone who reaches this server can read it; provision "
            "Wi-Fi another way (e.g. CONFIG_EXAMPLE_WIFI_SSID_PWD_FROM_STDIN) for served images"
        )
    for note in notes:
        emit(note)
    return ServeContent(
        image=image,
        image_file=image_file,
        md5=hashlib.md5(data).hexdigest(),
        cert_fingerprint=certs.fingerprint(cert_pem),
        resources=_resources(plan, image, data),
        warnings=tuple(notes),
    )


def _check_signature(plan: ServePlan, data: bytes, name: str) -> None:
    """ota.sign: boards take only images signed by the key of the app they run."""
    from ..idf import signing

    if plan.signing_key is None:
        return
    key = _read(plan.signing_key, "run `doit signing-key`")
    try:
        signing.verify(data, key, name)
    except signing.SignatureError as err:
        raise ServeError(
            f"cannot serve {err}; boards would refuse it: run `doit build:{plan.app}`"
        ) from None


def _check_downgrade(plan: ServePlan, image: AppImage, boards: Sequence[BoardRecord]) -> None:
    """Anti-rollback: a board's bootloader never boots a secure_version below its eFuse value,
    which is at least the secure_version of the app it runs."""
    for board in boards:
        running = board.app.secure_version
        if image.secure_version < running:
            raise ServeError(
                f"cannot serve {image.name}: its secure_version {image.secure_version} is lower "
                f"than {running}, which board {board.mac} already runs; its anti-rollback eFuse "
                f"refuses it: set apps.{plan.app}.secure_version to {running} or more"
            )


def _resources(plan: ServePlan, image: AppImage, data: bytes) -> dict[str, Resource]:
    from .protocol import resource

    manifest = {
        "name": plan.project,
        "version": image.version,
        "builds": [
            {
                "chipFamily": plan.chip_family,
                "ota": {
                    # Relative to /manifest.json, as ESPHome's update component resolves it.
                    "path": plan.url_path.lstrip("/"),
                    "sha256": image.sha256,
                    "md5": hashlib.md5(data).hexdigest(),
                    "size": image.size,
                    "secure_version": image.secure_version,
                },
            }
        ],
    }
    return {
        plan.url_path: resource(data, "application/octet-stream"),
        plan.sha256_path: resource(
            f"{image.sha256}  {plan.file_name}\n".encode(), "text/plain; charset=utf-8"
        ),
        MANIFEST_PATH: resource(
            (json.dumps(manifest, indent=2) + "\n").encode(), "application/json"
        ),
    }


def _read(path: Path, fix: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        hint = fix or "run `doit certs`"
        raise ServeError(f"{path}: missing; {hint}") from None
    except OSError as err:
        raise ServeError(f"{path}: cannot be read ({err.strerror})") from None


def _summary(path: Path, app: str) -> AppSummary:
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
    return [
        f"serving {plan.url} on {plan.bind}:{port} (also {plan.sha256_path}, {MANIFEST_PATH})",
        f"image {content.image_file} version '{image.version}' {image.size} bytes",
        f"sha256 {image.sha256}",
        f"server cert SHA-256 {content.cert_fingerprint}",
        *extra,
        "Ctrl-C stops the server",
    ]
