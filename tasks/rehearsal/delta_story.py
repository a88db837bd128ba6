"""`doit rehearse --delta`: the board runs the previous release, fetches `<url path>.patch` and
updates as esp_delta_ota's https_delta_ota example does; `--fail delta-base` puts a board on
another base, which the patch header's SHA-256 refuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from ..device import flash
from ..release import releasing
from ..release.release_record import Release
from . import delivery, virtual_board, virtual_device
from .failures import RehearsalError

__all__ = ["run"]


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _log(line: str) -> None:
    print(f"   {line}", flush=True)


class _Plan(Protocol):
    """What this story reads of rehearse.RehearsalPlan."""

    @property
    def release(self) -> releasing.ReleasePlan | None: ...
    @property
    def flash(self) -> flash.FlashPlan: ...
    @property
    def board_file(self) -> Path: ...
    @property
    def target(self) -> str: ...
    @property
    def flash_size(self) -> int: ...
    @property
    def table_offset(self) -> int: ...


def _base(plan_release: releasing.ReleasePlan) -> tuple[Release, Release, bytes]:
    """The current release, the one its first patch starts from, and that one's image."""
    app, version = plan_release.app, plan_release.version
    releases = releasing.releases_of(plan_release.releases_dir, app)
    current = next((r for r in releases if r.version == version), None)
    if current is None or not current.patches:
        where = plan_release.releases_dir
        raise RehearsalError(
            f"--delta needs a patch in {where / app / version}/, so an earlier release of {app} "
            f"(with ota.delta: true): release one version, bump apps.{app}.version, release again"
        )
    patch = current.patches[0]
    base = next(r for r in releases if r.version == patch.from_version)
    assert base.image is not None  # a patch is only made from a release with its plain image
    data = (plan_release.releases_dir / app / base.version / base.image.file).read_bytes()
    return current, base, data


def run(
    plan: _Plan,
    failure: str,
    *,
    config: virtual_device.BootConfig,
    serving: AbstractContextManager[int],
    client_for: Callable[[int], virtual_device.OtaClient],
) -> None:
    """The delta story on the virtual board; raises RehearsalError unless it ends as it must."""
    assert plan.release is not None
    current, base, base_image = _base(plan.release)
    efuse = virtual_device.VirtualEfuse()
    _step(f"flash: {plan.flash.app} to the virtual board ({plan.board_file})")
    with virtual_board.VirtualBoard(
        plan.board_file, target=plan.target, flash_size=plan.flash_size
    ) as board:
        flash.write(plan.flash, port=board.link)

        def boot(title: str = "reboot") -> virtual_device.Booted:
            _step(title)
            booted = virtual_device.boot(board, plan.target, plan.table_offset, _log, config, efuse)
            if booted.pending:
                virtual_device.confirm(board, booted, config, efuse, _log)
            return booted

        booted = boot("boot")
        placeholder = virtual_device.OtaClient(
            url="",
            ca_file=Path(),
            target=plan.target,
            partial=False,
            request_size=0,
            check_version=False,
        )
        if failure != "delta-base":
            _step(f"the board runs the previous release: {base.app} {base.version}")
            virtual_device.install(board, booted, base_image, placeholder, _log, config, efuse)
            booted = boot()
        else:
            _log(
                f"the board runs {booted.app.project_name} {booted.app.version}, not release "
                f"{base.app} {base.version} that the patch starts from"
            )
        _step(f"serve ({current.app} {current.version}, patch from {base.version})")
        with serving as port:
            client = client_for(port)
            client = dataclasses.replace(client, url=delivery.patch_url(client.url))
            _step("delta OTA (esp_delta_ota)")
            try:
                _, sent = delivery.delta_update(board, booted, client, _log, config, efuse)
                cause = None
            except virtual_device.OtaError as error:
                sent, cause = 0, str(error)
                _log(f"ota: Firmware upgrade failed: {cause}")
        final = boot()
    _verdict(current, failure, booted, final, cause, sent)


def _verdict(
    current: Release,
    failure: str,
    before: virtual_device.Booted,
    after: virtual_device.Booted,
    cause: str | None,
    sent: int,
) -> None:
    where = f"booted {after.partition.name}: {after.app.project_name} {after.app.version}"
    if failure == "delta-base":
        print(f"\n{where}", flush=True)
        if cause is None or after.partition != before.partition:
            raise RehearsalError(f"a board on another base should have refused it ({where})")
        print(f"the board still boots {after.partition.name}; the update was refused: {cause}")
        return
    if cause is None:
        ratio = 100 * sent / current.size
        print(
            f"\nbytes on the air: {sent} (the patch) instead of {current.size} (the whole "
            f"image): {ratio:.1f} %",
            flush=True,
        )
    print(f"\n{where}", flush=True)
    updated = after.partition != before.partition and after.app.version == current.version
    if cause is not None or not updated:
        raise RehearsalError(f"the delta update did not happen ({cause or where})")
