"""The newer image an update needs. Where one app is both flashed and served (what
`esp-ota-doit init` writes), the rehearsal builds the same app at the next version as
apps.<name>_next and serves that, so the story runs to `booted` without editing project.yaml.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.model import Project

__all__ = ["next_version", "rehearsed"]

_NEXT = "_next"
_LAST_NUMBER = r"(\d+)(?!.*\d)"  # compiled by re on first use


def next_version(version: str) -> str:
    """The version after `version`: its last number plus one (1.0.0 -> 1.0.1, 7 -> 8,
    2.1-rc1 -> 2.1-rc2), else `version` with .1 appended; at most 31 bytes (esp_app_desc_t)."""
    found = re.search(_LAST_NUMBER, version)
    if found is None:
        return f"{version[:29]}.1"
    bumped = str(int(found.group(1)) + 1)
    return (version[: found.start()] + bumped + version[found.end() :])[-31:]


def rehearsed(project: Project) -> Project:
    """The project the rehearsal plays. Where one app is both flashed and served (what
    `esp-ota-doit init` writes), an update needs a newer image: the rehearsal serves a build of
    the same app at the next version, apps.<name>_next (built and rendered like any app, into
    build/<name>_next and build/generated/<name>_next.sdkconfig.defaults)."""
    ota = project.ota
    if ota is None or ota.image != project.flash_app:
        return project
    app = project.app(project.flash_app)
    name = app.name[: 31 - len(_NEXT)] + _NEXT
    if any(other.name == name for other in project.apps):
        return project  # the user named an app so: theirs, not ours
    newer = dataclasses.replace(app, name=name, version=next_version(app.version))
    found = project.kconfig_of(app.name)
    return dataclasses.replace(
        project,
        apps=(*project.apps, newer),
        ota=dataclasses.replace(ota, image=name),
        kconfig=(*project.kconfig, (name, found)) if found is not None else project.kconfig,
    )
