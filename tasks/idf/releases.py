"""What differs between the ESP-IDF releases this project builds with (v5.3, v5.4, v5.5, v6.0),
as data in one place: the esp-idf-kconfig range each release's constraints file pins, the
container image, and the behaviours that changed. Read from each release's own files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RELEASES", "VERSIONS", "Release", "in_range", "numbers", "release"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """One ESP-IDF release's facts (major.minor)."""

    version: str  # major.minor, as idf.version spells it
    patch: str  # the newest patch release checked against
    kconfig_range: tuple[str, str]  # esp-idf-kconfig: (minimum, exclusive maximum)
    # esp_ota_set_boot_partition on the running slot: v6.0 rewrites the active otadata copy,
    # earlier releases write the other one (components/app_update/esp_ota_ops.c).
    otadata_rewrites_active: bool = False

    @property
    def container(self) -> str:
        """The espressif/idf image CI builds in."""
        return f"espressif/idf:v{self.patch}"


RELEASES: dict[str, Release] = {
    r.version: r
    for r in (
        Release(version="5.3", patch="5.3.2", kconfig_range=("2.0.2", "3.0.0")),
        Release(version="5.4", patch="5.4.4", kconfig_range=("2.0.2", "3.0.0")),
        Release(
            version="5.5",
            patch="5.5.5",
            kconfig_range=("2.0.2", "3.0.0"),
        ),
        Release(
            version="6.0",
            patch="6.0.2",
            kconfig_range=("3.2.0", "4.0.0"),
            otadata_rewrites_active=True,
        ),
    )
}
VERSIONS: tuple[str, ...] = tuple(RELEASES)


def numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def release(version: str) -> Release:
    """The release of a version such as "5.3", "5.3.2" or "v5.3.2-dirty".

    Raises:
        KeyError: not one of VERSIONS.
    """
    found = re.match(r"v?(\d+\.\d+)", version)
    if found is None or found.group(1) not in RELEASES:
        raise KeyError(version)
    return RELEASES[found.group(1)]


def in_range(found: str, wanted: tuple[str, str]) -> bool:
    """`found` is at least wanted[0] and below wanted[1]."""
    return numbers(wanted[0]) <= numbers(found) < numbers(wanted[1])
