"""`doit rehearse`: the OTA example's whole story on a virtual board. The graph's own tasks
render, issue the certificates and build (with the idf.py stand-in into build/virtual/ when this
machine has no ESP-IDF); this action reads what they wrote (app.json, the certificates), flashes
the emulated ROM loader with the real `doit flash` code, serves with the real server on loopback,
boots the factory app, updates it over TLS, reboots and boots the new slot.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..device import flash
from ..errors import DeviceError
from ..firmware import build, defaults, encryption_key, outputs, signing_key
from ..idf import chips, idftool
from ..idf.app_code import AppCode, payload_refusal
from ..paths import cert_files
from ..release import release_record, releasing
from ..serve import serving
from ..tls import certs

# The virtual board, its client and the stories are imported in the functions that run them:
# every doit command creates the rehearse tasks, only `doit rehearse` runs them (bench/noop.py).
from . import standin, virtual_idf
from .failures import (
    FAILURES,
    NEEDS,
    RehearsalError,
    newer_revision,
    served_bytes,
    server_certs,
)

if TYPE_CHECKING:
    from ..config.model import Project
    from ..paths import Paths
    from . import virtual_board, virtual_device

__all__ = [
    "FAILURES",
    "RehearsalError",
    "RehearsalPlan",
    "builds",
    "idf_tree_files",
    "inputs",
    "plan",
    "run",
    "write_idf_tree",
]

# esp_https_ota's max_http_request_size when the app leaves it 0 (DEFAULT_REQUEST_SIZE,
# docs/esp-idf.md §7.2).
DEFAULT_REQUEST_SIZE = 64 * 1024
SYNTHETIC_NOTE = (
    "synthetic images: {why}, so the idf.py stand-in built them (log: build.log in each "
    "app's folder); they verify like real ones but hold no program, stay under build/virtual/ "
    "and only go to the virtual board"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RehearsalPlan:
    """What the rehearsal's last step reads: the flash and serve plans of the builds it uses."""

    target: str
    table_offset: int
    certs: certs.CertPlan
    synthetic: bool  # no ESP-IDF here: the builds are the stand-in's, under build/virtual/
    standin: bool = False  # the stand-in was asked for (doit rehearse --standin)
    flash: flash.FlashPlan
    serve: serving.ServePlan
    board_file: Path
    flash_size: int
    url_option: str  # the factory app's Kconfig option holding the URL
    signing: signing_key.SigningPlan | None = None
    rollback: bool = False
    anti_rollback: bool = False
    release: releasing.ReleasePlan | None = None  # what is served: recorded first if synthetic
    encryption: encryption_key.EncryptionPlan | None = None
    decrypt_key: Path | None = None  # ota.encrypt: the key the flashed OTA client embeds
    delta: bool = False  # ota.delta


def _paths(project: Project, synthetic: bool) -> Paths:
    from ..paths import Paths

    return Paths(project.project_dir, variant="virtual" if synthetic else "")


def plan(
    project: Project,
    *,
    cert_plan: certs.CertPlan,
    env: Mapping[str, str],
    signing_plan: signing_key.SigningPlan | None = None,
    encryption_plan: encryption_key.EncryptionPlan | None = None,
    standin: bool = False,
) -> RehearsalPlan:
    """The rehearsal of project.yaml's OTA; synthetic (stand-in builds under build/virtual/)
    when this machine has no idf.py or `standin` asks for it.

    Raises:
        ConfigError: the OTA URL cannot be served (see serve.plan).
    """
    synthetic = standin or not idftool.available(env)
    paths = _paths(project, synthetic)
    return RehearsalPlan(
        target=project.target,
        table_offset=project.table.offset,
        certs=cert_plan,
        synthetic=synthetic,
        standin=standin,
        flash=flash.plan(project, paths, signing=signing_plan),
        serve=serving.plan(project, paths, signing=signing_plan),
        board_file=paths.virtual_flash(project.target),
        flash_size=project.flash.size,
        url_option=defaults.url_option(project.app(project.flash_app)),
        signing=signing_plan,
        rollback=project.ota is not None and project.ota.rollback,
        anti_rollback=project.anti_rollback,
        release=releasing.plan(project, paths, signing=signing_plan, encryption=encryption_plan),
        encryption=encryption_plan,
        decrypt_key=_decrypt_key(project, paths) if encryption_plan else None,
        delta=project.ota is not None and project.ota.delta,
    )


def _decrypt_key(project: Project, paths: Paths) -> Path | None:
    """Where the build placed the key into the flashed OTA client (its staged copy)."""
    app = project.app(project.flash_app)
    return paths.staged(app.name) / app.decrypt_key if app.ota_client else None


def idf_root(project: Project, env: Mapping[str, str] | None = None) -> Path:
    """The stand-in's IDF_PATH: an ESP-IDF tree $IDF_PATH names (its examples and Kconfig, even
    where its idf.py cannot run), else where the synthetic ESP-IDF tree goes."""
    real = idftool.idf_tree(env or {})
    return real or _paths(project, True).outputs / "esp-idf"


def idf_tree_files(root: Path) -> list[Path]:
    """Every file of the synthetic ESP-IDF tree under `root`, known before it is written."""
    return [
        root / folder / name for folder, files in virtual_idf.EXAMPLES.items() for name in files
    ]


def write_idf_tree(root: Path) -> None:
    virtual_idf.write(root)


def builds(
    project: Project,
    signing: signing_key.SigningPlan | None,
    decrypt_key: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[build.BuildPlan]:
    """The stand-in's builds under build/virtual/, from the ESP-IDF tree $IDF_PATH names or else
    the synthetic one. That one is written by a task, after planning: its files count as present
    from the start, so the first build already takes an example's own sdkconfig.defaults."""
    root = idf_root(project, env)
    planned = set() if idftool.idf_tree(env or {}) else set(idf_tree_files(root))
    plans = build.plans(
        project,
        paths=_paths(project, True),
        idf_root=root,
        signing=signing,
        decrypt_key=decrypt_key,
        exists=lambda path: path in planned or path.is_file(),
    )
    # Named without reading the tree, which may not be written yet: the fingerprint must not
    # change when it appears.
    made_by = f"the idf.py stand-in (ESP-IDF {standin.tool().version}) at {root.resolve()}"
    return [dataclasses.replace(plan, idf=made_by) for plan in plans]


def inputs(plan: RehearsalPlan) -> list[Path]:
    """The files the rehearsal reads: doit makes each first (build, certs, signing-key)."""
    where = cert_files(plan.certs.certs_dir)
    summaries = {plan.flash.app_summary, plan.serve.app_summary}
    key = [plan.signing.key] if plan.signing is not None and not plan.signing.from_env else []
    if plan.encryption is not None and not plan.encryption.from_env:
        key.append(plan.encryption.key)
    if plan.release is not None and not plan.synthetic:  # doit releases the real build first
        key.append(plan.release.folder / "release.json")
    return [*sorted(summaries), where.ca_cert, where.server_cert, where.server_key, *key]


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _log(line: str) -> None:
    print(f"   {line}", flush=True)


@dataclass(frozen=True, slots=True)
class _Builds:
    """The app.json of the flashed and the served app, as their builds wrote them."""

    flashed: outputs.AppSummary
    served: outputs.AppSummary

    @property
    def client(self) -> AppCode:
        """What the flashed app's code does when it fetches the update."""
        return self.flashed.code or _UNREAD

    @property
    def newcomer(self) -> AppCode:
        """What the served app's code does once it boots."""
        return self.served.code or _UNREAD


# An app.json written before the code was read: esp_https_ota's plain behaviour.
_UNREAD = AppCode(
    ota_client=False,
    compares_version=False,
    skips_host_check=False,
    trusts=("embedded_ca",),
    payload="plain",
    partial=False,
    request_size=DEFAULT_REQUEST_SIZE,
    confirms_update=True,
    network=(),
)


def _resources(plan: RehearsalPlan, failure: str, builds: _Builds) -> dict[str, Any]:
    from ..serve.protocol import resource
    from . import delivery

    if failure == "none":
        return dict(serving.check(plan.serve).resources)
    if failure == "corrupt" and plan.encryption is not None:
        served = dict(serving.check(plan.serve, emit=lambda _: None).resources)
        data = delivery.tampered_ciphertext(served[plan.serve.url_path].body)
        return {plan.serve.url_path: resource(data, "application/octet-stream")}
    source = builds.flashed if failure == "same-version" else builds.served
    data = served_bytes(
        source.app_file.read_bytes(),
        failure,
        target=plan.target,
        scratch=plan.board_file.parent,
        signer=signing_key.load(plan.signing, os.environ) if plan.signing else None,
        running_secure_version=builds.flashed.app_image.secure_version,
    )
    if plan.encryption is not None:
        # A server under ota.encrypt holds encrypted images only: the failure's image too.
        from ..idf import encrypted_img

        data = encrypted_img.encrypt(data, encryption_key.read_public(plan.encryption))
    return {plan.serve.url_path: resource(data, "application/octet-stream")}


@contextmanager
def _server(plan: RehearsalPlan, failure: str, builds: _Builds) -> Iterator[int]:
    """The real server on 127.0.0.1 (any free port) in a thread; yields its port."""
    from ..serve.server import Server

    cert, key = server_certs(plan.certs, failure, plan.board_file.parent)
    server = Server(
        resources=_resources(plan, failure, builds),
        cert=cert,
        key=key,
        bind="127.0.0.1",
        port=0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    _log(f"serving {plan.serve.url} from 127.0.0.1:{server.port}")
    try:
        yield server.port
    finally:
        stop.set()
        thread.join(timeout=5)


def _sdkconfig(plan: RehearsalPlan) -> dict[str, Any]:
    """The flashed app's built options (config/sdkconfig.json of its build)."""
    path = plan.flash.app_summary.parent / "config" / "sdkconfig.json"
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return config


def _client(
    plan: RehearsalPlan, builds: _Builds, failure: str, partial: bool, port: int
) -> virtual_device.OtaClient:
    """The factory app's OTA settings: its built configuration and what its code does."""
    from . import delivery, virtual_device

    config = _sdkconfig(plan)
    size = builds.served.app_image.size
    decrypt = delivery.decryptor(plan.decrypt_key, _log) if plan.decrypt_key else None
    code = builds.client
    return virtual_device.OtaClient(
        decrypt=decrypt,
        url=str(config[plan.url_option.removeprefix("CONFIG_")]),
        ca_file=Path(str(builds.flashed.ca_file)),
        target=plan.target,
        partial=partial or code.partial,
        request_size=code.request_size,
        check_version=code.compares_version,
        check_host=not code.skips_host_check,
        trusts_ca=code.trusts_project_ca,
        address=("127.0.0.1", port),
        stop_after=size // 2 if failure == "cut" else None,
    )


def _check_failure(plan: RehearsalPlan, builds: _Builds, failure: str) -> None:
    if not builds.flashed.ota_url:
        code = builds.flashed.code
        if code is not None and not code.ota_client:
            raise RehearsalError(
                f"flash_app '{plan.flash.app}': its code calls no esp_https_ota, "
                "esp_https_ota_begin or esp_ota_begin, so a board running it never fetches an "
                "update; flash an app that does (e.g. ESP-IDF's simple_ota_example) and serve "
                "this one"
            )
        raise RehearsalError(
            f"flash_app '{plan.flash.app}' is not an OTA client, so there is no update to "
            f"rehearse; set apps.{plan.flash.app}.ota_client: true"
        )
    refusal = payload_refusal(builds.client, encrypt=plan.encryption is not None, delta=plan.delta)
    if refusal is not None:
        raise RehearsalError(f"app '{plan.flash.app}': {refusal}")
    need = NEEDS.get(failure)
    if need is not None and not getattr(plan, need[0]):
        raise RehearsalError(
            f"--fail {failure} rehearses a feature this project has off; set {need[1]}"
        )


def _boot_config(plan: RehearsalPlan) -> virtual_device.BootConfig:
    """The flashed app's bootloader rollback rules and its OTA's rules."""
    from . import virtual_device

    config = _sdkconfig(plan)
    return virtual_device.BootConfig(
        rollback=config.get("BOOTLOADER_APP_ROLLBACK_ENABLE") is True,
        anti_rollback=config.get("BOOTLOADER_APP_ANTI_ROLLBACK") is True,
        signed_update=config.get("SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT") is True,
    )


@dataclass(slots=True)
class _Story:
    """The board's state through the story, and how it boots."""

    board: virtual_board.VirtualBoard
    plan: RehearsalPlan
    config: virtual_device.BootConfig
    efuse: virtual_device.VirtualEfuse

    def boot(self, title: str = "reboot") -> virtual_device.Booted:
        from . import virtual_device

        _step(title)
        return virtual_device.boot(
            self.board, self.plan.target, self.plan.table_offset, _log, self.config, self.efuse
        )


def _record_own_release(plan: releasing.ReleasePlan) -> None:
    """The rehearsal's own release of its stand-in build, in build/virtual/releases/ (never
    delivered). Unlike a real release, a rebuilt image replaces the one recorded for its version:
    the stand-in's images change with the tool, not with the app's version."""
    if (plan.folder / release_record.RECORD).is_file():
        existing = release_record.read(plan.folder).sha256
        if existing != outputs.read(plan.app_summary).app_image.sha256:
            shutil.rmtree(plan.folder)
    releasing.record_release(plan)


def run(
    plan: RehearsalPlan, *, failure: str = "none", partial: bool = False, delta: bool = False
) -> None:
    """The rehearsal; raises RehearsalError unless the board ends where it must."""
    from . import delta_story, virtual_board, virtual_device

    builds = _Builds(
        flashed=outputs.read(plan.flash.app_summary),
        served=outputs.read(plan.serve.app_summary),
    )
    _check_failure(plan, builds, failure)
    if plan.synthetic:
        why = "--standin asked for them" if plan.standin else "no ESP-IDF here"
        print(SYNTHETIC_NOTE.format(why=why), flush=True)
    if not builds.client.ota_client:
        print(
            f"app '{plan.flash.app}': its own code calls no esp_https_ota, esp_https_ota_begin "
            "or esp_ota_begin (a library may), so esp_https_ota's defaults are assumed: it "
            "trusts its embedded CA and compares no versions; state otherwise with "
            f"apps.{plan.flash.app}.trusts and .compares_version",
            flush=True,
        )
    if plan.synthetic and plan.release is not None:
        _step("release (the rehearsal's own, under build/virtual/releases/)")
        _record_own_release(plan.release)
    if delta or failure == "delta-base":
        delta_story.run(
            plan,
            failure,
            config=_boot_config(plan),
            serving=_server(plan, "none", builds),
            client_for=functools.partial(_client, plan, builds, "none", False),
        )
        return
    config, efuse = _boot_config(plan), virtual_device.VirtualEfuse()
    if config.anti_rollback:
        _log("efuse: the virtual board's eFuse lives in memory: this rehearsal burns nothing")
    _step(f"flash: {plan.flash.app} to the virtual board ({plan.board_file})")
    with virtual_board.VirtualBoard(
        plan.board_file, target=plan.target, flash_size=plan.flash_size
    ) as board:
        if failure == "chip-rev":
            _refused_flash(plan, board)
            return
        flash.write(plan.flash, port=board.link)
        story = _Story(board, plan, config, efuse)
        _step(f"serve ({FAILURES[failure]})" if failure != "none" else "serve")
        with _server(plan, failure, builds) as port:
            booted = story.boot("boot")
            _step("OTA" + (" (partial download)" if partial else ""))
            client = _client(plan, builds, failure, partial, port)
            try:
                virtual_device.update(board, booted, client, _log, config, efuse)
                cause = None
            except virtual_device.OtaError as error:
                cause = str(error)
                _log(f"ota: Firmware upgrade failed: {cause}")
        final = story.boot()
        if final.pending:
            final, cause = _first_boot(story, final, failure, cause, builds.newcomer)
    _record_ota(plan, builds, updated=final.partition != booted.partition, efuse=efuse)
    _verdict(builds, failure, booted, final, cause)


def _record_ota(
    plan: RehearsalPlan, builds: _Builds, *, updated: bool, efuse: virtual_device.VirtualEfuse
) -> None:
    """The virtual board's record after the story: the eFuse secure_version it reached and,
    after an update it kept, the key its new app trusts (what `doit serve` warns against)."""
    from ..device import record
    from ..idf import signing

    written = sorted(plan.flash.boards_dir.glob("*.json"), key=lambda path: path.stat().st_mtime)
    if not written:
        return
    known = record.read(written[-1])
    trusted = known.trusted_key_sha256
    if updated:
        public = signing.signed_public_key(builds.served.app_file.read_bytes())
        trusted = signing.public_key_digest(public) if public is not None else None
    record.updated_after_ota(
        plan.flash.boards_dir,
        known.mac,
        trusted_key_sha256=trusted,
        secure_version=efuse.secure_version,
    )


def _revision(revision: int) -> str:
    return f"v{revision // 100}.{revision % 100}"


def _refused_flash(plan: RehearsalPlan, board: virtual_board.VirtualBoard) -> None:
    """--fail chip-rev: the flash app's build as made for the next chip revision, which esptool
    must refuse to write to this board."""
    summary = outputs.read(plan.flash.app_summary)
    current = chips.CHIPS[plan.target].revision
    folder = plan.board_file.parent / "chip-rev"
    folder.mkdir(parents=True, exist_ok=True)
    signer = signing_key.load(plan.signing, os.environ) if plan.signing else None
    images = []
    for image in summary.images:
        if image.role in ("bootloader", "app"):
            key = signer if image.role == "app" else None
            data = newer_revision(image.file.read_bytes(), plan.target, current + 1, key)
            image = dataclasses.replace(
                image,
                file=folder / image.file.name,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
            image.file.write_bytes(data)
        images.append(image)
    outputs.write(folder / "app.json", dataclasses.replace(summary, images=tuple(images)))
    _log(
        f"build: {plan.flash.app} made for chip revision {_revision(current + 1)} and later "
        f"(CONFIG_ESP_REV_MIN_FULL={current + 1}); the board is {_revision(current)}"
    )
    try:
        flash.write(
            dataclasses.replace(plan.flash, app_summary=folder / "app.json"), port=board.link
        )
    except DeviceError as error:
        print(f"\nthe board was not written: {error}", flush=True)
        return
    raise RehearsalError(
        f"esptool wrote an image for chip revision {_revision(current + 1)} to a "
        f"{_revision(current)} board"
    )


def _first_boot(
    story: _Story, booted: virtual_device.Booted, failure: str, cause: str | None, code: AppCode
) -> tuple[virtual_device.Booted, str | None]:
    """The new app in pending verify: it confirms itself, or (no-confirm, or an app whose code
    never calls esp_ota_mark_app_valid_cancel_rollback) resets first."""
    from . import virtual_device

    if failure != "no-confirm" and code.confirms_update:
        virtual_device.confirm(story.board, booted, story.config, story.efuse, _log)
        return booted, cause
    if failure == "no-confirm":
        _log(f"app: {booted.partition.name} resets before esp_ota_mark_app_valid_cancel_rollback()")
    else:
        _log(
            f"app: {booted.partition.name} runs pending verify; its code never calls "
            "esp_ota_mark_app_valid_cancel_rollback(), and it resets"
        )
    final = story.boot()
    return final, (
        f"{booted.partition.name} did not confirm itself before the reset, so the bootloader "
        f"marked it aborted and booted the previous app ({final.partition.name})"
    )


def _verdict(
    builds: _Builds,
    failure: str,
    before: virtual_device.Booted,
    after: virtual_device.Booted,
    cause: str | None,
) -> None:
    where = f"booted {after.partition.name}: {after.app.project_name} {after.app.version}"
    print(f"\n{where}", flush=True)
    client, app = builds.client, builds.flashed.app

    def installed(version: str) -> bool:
        return (
            cause is None and after.partition != before.partition and after.app.version == version
        )

    if failure == "none":
        if not installed(builds.served.version):
            raise RehearsalError(f"the update did not hold: {cause or where}{_why(builds)}")
        return
    if failure == "same-version" and not client.compares_version:
        if not installed(before.app.version):
            raise RehearsalError(f"the same version should have been installed again ({where})")
        print(
            f"app '{app}' does not compare versions before writing (its code reads no "
            f"esp_app_desc_t.version, or its option to skip that is on), so it installed "
            f"{after.app.version} again"
        )
        return
    if failure == "host" and client.skips_host_check:
        if not installed(builds.served.version):
            raise RehearsalError(f"the update should have been accepted ({cause or where})")
        print(
            f"app '{app}' skips the server name check (skip_cert_common_name_check), so it "
            "took a certificate made for another host: a real board would too"
        )
        return
    if cause is None or after.partition != before.partition:
        raise RehearsalError(f"'{failure}' should have been refused, but the board {where}")
    if failure == "no-confirm":
        print(f"the board rolled back to {after.partition.name}: {cause}")
    else:
        print(f"the board still boots {after.partition.name}; the update was refused: {cause}")


def _why(builds: _Builds) -> str:
    """What in the apps' code made the update fail, and the ways out."""
    if not builds.client.trusts_project_ca:
        return (
            f"; app '{builds.flashed.app}' trusts only ESP-IDF's certificate bundle, which does "
            "not hold this project's CA: embed the CA (cert_pem), or serve with a certificate a "
            "public CA signed"
        )
    if builds.newcomer.under_rollback and not builds.newcomer.confirms_update:
        return (
            f"; app '{builds.served.app}' never calls esp_ota_mark_app_valid_cancel_rollback(): "
            f"call it once the app is known good (or set apps.{builds.served.app}."
            "confirms_update: true where it does so out of sight)"
        )
    return ""
