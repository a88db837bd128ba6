"""`doit rehearse`: the OTA example's whole story on a virtual board, every join exercised for
real: render → certs → build → flash (esptool into the emulated ROM loader) → serve (the real
server, on loopback) → boot factory → OTA over TLS → reboot → boot the new slot.

It calls each step's action directly. Without ESP-IDF it builds with the idf.py stand-in and
keeps those synthetic images under build/virtual/; it never touches a real serial port.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..device import flash
from ..errors import ProjectError
from ..firmware import build, defaults, outputs, render, signing_key
from ..firmware.defaults import SdkconfigPlan
from ..idf import idftool, images, signing
from ..idf.partitions import PartitionTable
from ..serve import content as serve
from ..tls import certs
from . import board as virtual_board
from . import device as virtual_device
from . import idf_tree as virtual_idf
from . import standin

if TYPE_CHECKING:
    from ..config.model import Project

__all__ = ["FAILURES", "RehearsalError", "RehearsalPlan", "plan", "run"]

Failure = Literal[
    "none",
    "cut",
    "chip",
    "corrupt",
    "host",
    "same-version",
    "bad-signature",
    "wrong-key",
    "no-confirm",
    "downgrade",
]
FAILURES: dict[str, str] = {
    "none": "the update succeeds and the board boots it",
    "cut": "the download stops halfway",
    "chip": "the served image is for another chip",
    "corrupt": "one byte of the served image is flipped",
    "host": "the server's certificate is for another host",
    "same-version": "the served version is the one running (the advanced example refuses it)",
    "bad-signature": "one byte of the served image's signature is flipped (ota.sign)",
    "wrong-key": "the served image is signed with another key (ota.sign)",
    "no-confirm": "the new app resets before it confirms itself (ota.rollback)",
    "downgrade": "the served image has a lower secure_version (apps.<name>.secure_version)",
}
# What each failure needs in project.yaml.
_NEEDS = {
    "bad-signature": ("signing", "ota.sign: rsa3072"),
    "wrong-key": ("signing", "ota.sign: rsa3072"),
    "no-confirm": ("rollback", "ota.rollback: true"),
    "downgrade": ("anti_rollback", "apps.<name>.secure_version: 1 (and ota.rollback: true)"),
}
_WRONG_HOST = "wrong-host.invalid"


class RehearsalError(ProjectError):
    """The virtual board did not end where the story says it must."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RehearsalPlan:
    """Every step's own plan, as doit build/certs/flash/serve would get them."""

    target: str
    table: PartitionTable
    partitions_csv: Path
    partitions_bin: Path
    sdkconfigs: tuple[tuple[SdkconfigPlan, Path], ...]
    certs: certs.CertPlan
    builds: tuple[build.BuildPlan, ...]
    synthetic: bool  # no ESP-IDF here: build with the stand-in, under build/virtual/
    idf_root: Path  # the synthetic ESP-IDF tree, when synthetic
    flash: flash.FlashPlan
    serve: serve.ServePlan
    board_file: Path
    flash_size: int
    url_option: str  # the factory app's Kconfig option holding the URL
    signing: signing_key.SigningPlan | None = None
    rollback: bool = False
    anti_rollback: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "board_file": str(self.board_file),
            "synthetic": self.synthetic,
        }


def plan(
    project: Project,
    *,
    cert_plan: certs.CertPlan,
    env: Mapping[str, str],
    signing_plan: signing_key.SigningPlan | None = None,
) -> RehearsalPlan:
    """The rehearsal of project.yaml's OTA; synthetic (stand-in builds under build/virtual/)
    when this machine has no idf.py.

    Raises:
        ConfigError: the OTA URL cannot be served (see serve.plan).
    """
    from ..paths import Paths

    synthetic = not idftool.available(env)
    real = Paths(project.project_dir)
    paths = Paths(project.project_dir, variant="virtual") if synthetic else real
    idf_root = paths.outputs / "esp-idf" if synthetic else idftool.idf_path(env)
    return RehearsalPlan(
        target=project.target,
        table=project.table,
        partitions_csv=real.partitions_csv,
        partitions_bin=real.partition_table_bin,
        sdkconfigs=tuple(
            (
                defaults.plan(project, app, partitions_csv=real.partitions_csv),
                real.sdkconfig_defaults(app.name),
            )
            for app in project.apps
        ),
        certs=cert_plan,
        builds=tuple(
            build.plans(
                project,
                paths=paths,
                idf_root=idf_root,
                signing_key=signing_plan.key if signing_plan else None,
            )
        ),
        synthetic=synthetic,
        idf_root=idf_root or paths.outputs / "esp-idf",
        flash=flash.plan(project, paths),
        serve=serve.plan(project, paths, signing_key=signing_plan.key if signing_plan else None),
        board_file=real.build / "virtual" / f"{project.target}-flash.bin",
        flash_size=project.flash.size,
        url_option=defaults.url_option(project.app(project.flash_app)),
        signing=signing_plan,
        rollback=project.ota is not None and project.ota.rollback,
        anti_rollback=project.anti_rollback,
    )


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _log(line: str) -> None:
    print(f"   {line}", flush=True)


def _build(plan: RehearsalPlan) -> None:
    idf = None
    if plan.synthetic:
        print(
            "   *** SYNTHETIC BUILD: no ESP-IDF here, so the idf.py stand-in builds images that\n"
            "   *** verify like real ones but hold no program. They stay under build/virtual/\n"
            "   *** and are only ever written to the virtual board.",
            flush=True,
        )
        virtual_idf.write(plan.idf_root)
        idf = standin.tool()
    for build_plan in plan.builds:
        build.build_app(build_plan, idf)


@dataclass(frozen=True, slots=True)
class _Builds:
    """The app.json of the flashed and the served app, read once after the build step."""

    flashed: outputs.AppSummary
    served: outputs.AppSummary


def _served_bytes(plan: RehearsalPlan, failure: str, builds: _Builds) -> bytes:
    """The image the server hands out, tampered with as the failure asks."""
    source = builds.flashed if failure == "same-version" else builds.served
    data = bytearray(source.app_file.read_bytes())
    if failure == "chip":
        other = next(t for t in ("esp32c3", "esp32") if t != plan.target)
        data[12:14] = images.chip_id(other).to_bytes(2, "little")
    elif failure == "corrupt":
        data[len(data) // 2] ^= 0xFF
    elif failure == "bad-signature":
        # A byte of the signature value itself (RSA: after the 776-byte key; ECDSA: after the
        # curve id and 64-byte point); the image stays intact.
        where = (
            len(data) - signing.SECTOR + (36 + 776 + 8 if data[-signing.SECTOR + 1] == 2 else 109)
        )
        data[where] ^= 0xFF
    elif failure == "wrong-key":
        data = bytearray(signing.sign(_wrong_key(plan), _unsigned(plan, bytes(data))))
    elif failure == "downgrade":
        data = bytearray(_downgraded(plan, bytes(data), builds.flashed.app_image.secure_version))
    return bytes(data)


def _unsigned(plan: RehearsalPlan, data: bytes) -> bytes:
    """The image as the build made it: checksum and hash recomputed by esptool, no signature."""
    from esptool.bin_image import LoadFirmwareImage

    return bytes(LoadFirmwareImage(plan.target, data).save(None))


def _wrong_key(plan: RehearsalPlan) -> Path:
    """A signing key of the same scheme that is not the project's: made fresh each time."""
    assert plan.signing is not None
    key = plan.board_file.parent / "wrong-key" / "signing_key.pem"
    key.unlink(missing_ok=True)
    signing.new_key(plan.signing.scheme, key)
    return key


def _downgraded(plan: RehearsalPlan, data: bytes, running: int) -> bytes:
    """The served image rebuilt with secure_version one below the flashed app's (an old,
    properly signed release), through esptool's image classes."""
    from esptool.bin_image import LoadFirmwareImage

    if running < 1:
        raise RehearsalError(
            "--fail downgrade needs a flashed app with secure_version 1 or more, so that a "
            "lower one exists; raise apps.<flash_app>.secure_version"
        )
    image = LoadFirmwareImage(plan.target, data)
    desc = bytearray(image.segments[0].data)
    desc[4:8] = (running - 1).to_bytes(4, "little")  # esp_app_desc_t.secure_version
    image.segments[0].data = bytes(desc)
    unsigned = bytes(image.save(None))
    return signing.sign(plan.signing.key, unsigned) if plan.signing else unsigned


@contextmanager
def _server(plan: RehearsalPlan, failure: str, builds: _Builds) -> Iterator[int]:
    """The real server on 127.0.0.1 (any free port) in a thread; yields its port."""
    from ..serve.protocol import resource
    from ..serve.server import Server

    local = dataclasses.replace(plan.serve, bind="127.0.0.1", port=0)
    if failure == "none":
        content = serve.check(local)
        resources = content.resources
        where = certs.paths(local.certs_dir)
        cert, key = where.server_cert, where.server_key
    else:
        resources = {
            local.url_path: resource(
                _served_bytes(plan, failure, builds), "application/octet-stream"
            )
        }
        cert, key = _certs_for(plan, failure)
    server = Server(resources=resources, cert=cert, key=key, bind="127.0.0.1", port=0)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    _log(f"serving {plan.serve.url} from 127.0.0.1:{server.port}")
    try:
        yield server.port
    finally:
        stop.set()
        thread.join(timeout=5)


def _certs_for(plan: RehearsalPlan, failure: str) -> tuple[Path, Path]:
    where = certs.paths(plan.certs.certs_dir)
    if failure != "host":
        return where.server_cert, where.server_key
    # Signed by the same CA, for a host the URL does not name.
    other = certs.plan(
        project=plan.certs.project,
        host=_WRONG_HOST,
        key=plan.certs.key,
        days=plan.certs.days,
        certs_dir=plan.board_file.parent / "wrong-host-certs",
        env={"OTA_CA_CERT": str(where.ca_cert), "OTA_CA_KEY": str(where.ca_key)},
    )
    certs.issue(other)
    wrong = certs.paths(other.certs_dir)
    return wrong.server_cert, wrong.server_key


def _client(
    plan: RehearsalPlan, builds: _Builds, failure: str, partial: bool, port: int
) -> virtual_device.OtaClient:
    """The factory app's OTA settings, from its built configuration."""
    summary = builds.flashed
    config = json.loads((plan.flash.app_summary.parent / "config" / "sdkconfig.json").read_text())
    url = str(config[plan.url_option.removeprefix("CONFIG_")])
    advanced = summary.project_name == "advanced_https_ota"
    size = builds.served.app_image.size
    return virtual_device.OtaClient(
        url=url,
        ca_file=Path(str(summary.ca_file)),
        target=plan.target,
        partial=partial or bool(config.get("EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD")),
        request_size=int(config.get("EXAMPLE_HTTP_REQUEST_SIZE", 16384)),
        check_version=advanced or failure == "same-version",
        address=("127.0.0.1", port),
        stop_after=int(size) // 2 if failure == "cut" else None,
    )


def _check_failure(plan: RehearsalPlan, failure: str) -> None:
    if plan.flash.app not in {b.app for b in plan.builds if b.ota_url}:
        raise RehearsalError(
            f"flash_app '{plan.flash.app}' is not an OTA client, so there is no update to "
            f"rehearse; set apps.{plan.flash.app}.ota_client: true"
        )
    need = _NEEDS.get(failure)
    if need is not None and not getattr(plan, need[0]):
        raise RehearsalError(
            f"--fail {failure} rehearses a feature this project has off; set {need[1]}"
        )


def _boot_config(plan: RehearsalPlan) -> virtual_device.BootConfig:
    """The flashed app's built options: its bootloader's rollback rules and its OTA's rules."""
    config = json.loads((plan.flash.app_summary.parent / "config" / "sdkconfig.json").read_text())
    return virtual_device.BootConfig(
        rollback=config.get("BOOTLOADER_APP_ROLLBACK_ENABLE") is True,
        anti_rollback=config.get("BOOTLOADER_APP_ANTI_ROLLBACK") is True,
        signed_update=config.get("SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT") is True,
        idf_version=plan.table.release,
    )


def run(plan: RehearsalPlan, *, failure: str = "none", partial: bool = False) -> None:
    """The rehearsal; raises RehearsalError unless the board ends where it must."""
    _check_failure(plan, failure)
    _step("render: partition table and sdkconfig defaults")
    render.write_partition_table(plan.table, plan.partitions_csv, plan.partitions_bin)
    for options, path in plan.sdkconfigs:
        render.write_sdkconfig(options, path)
    _step(f"certs: server cert for '{plan.certs.host}'")
    print(certs.issue(plan.certs), flush=True)
    if plan.signing is not None:
        _step("signing key")
        print(signing_key.create_key(plan.signing), flush=True)
    _step("build")
    _build(plan)
    builds = _Builds(
        flashed=outputs.read(plan.flash.app_summary),
        served=outputs.read(plan.serve.app_summary),
    )
    config, efuse = _boot_config(plan), virtual_device.VirtualEfuse()
    if config.anti_rollback:
        _log("efuse: the virtual board's eFuse lives in memory: this rehearsal burns nothing")
    _step(f"flash: {plan.flash.app} to the virtual board ({plan.board_file})")
    with virtual_board.VirtualBoard(
        plan.board_file, target=plan.target, flash_size=plan.flash_size
    ) as board:
        flash.write(plan.flash, port=board.port)
        _step(f"serve ({FAILURES[failure]})" if failure != "none" else "serve")
        with _server(plan, failure, builds) as port:
            _step("boot")
            booted = virtual_device.boot(board, plan.target, plan.table.offset, _log, config, efuse)
            _step("OTA" + (" (partial download)" if partial else ""))
            client = _client(plan, builds, failure, partial, port)
            try:
                virtual_device.update(board, booted, client, _log, config, efuse)
                cause = None
            except virtual_device.OtaError as error:
                cause = str(error)
                _log(f"ota: Firmware upgrade failed: {cause}")
        _step("reboot")
        final = virtual_device.boot(board, plan.target, plan.table.offset, _log, config, efuse)
        if final.pending:
            final, cause = _first_boot(board, plan, final, failure, config, efuse, cause)
    _verdict(builds, failure, booted, final, cause)


def _first_boot(
    board: virtual_board.VirtualBoard,
    plan: RehearsalPlan,
    booted: virtual_device.Booted,
    failure: str,
    config: virtual_device.BootConfig,
    efuse: virtual_device.VirtualEfuse,
    cause: str | None,
) -> tuple[virtual_device.Booted, str | None]:
    """The new app in pending verify: it confirms itself, or (no-confirm) resets first."""
    if failure != "no-confirm":
        virtual_device.confirm(board, booted, config, efuse, _log)
        return booted, cause
    _log(f"app: {booted.partition.name} resets before esp_ota_mark_app_valid_cancel_rollback()")
    _step("reboot")
    final = virtual_device.boot(board, plan.target, plan.table.offset, _log, config, efuse)
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
    if failure == "none":
        if cause is not None or after.app.version != builds.served.version:
            raise RehearsalError(f"the update did not happen ({cause or where})")
        return
    if cause is None or after.partition != before.partition:
        raise RehearsalError(f"'{failure}' should have been refused, but the board {where}")
    if failure == "no-confirm":
        print(f"the board rolled back to {after.partition.name}: {cause}")
    else:
        print(f"the board still boots {after.partition.name}; the update was refused: {cause}")
