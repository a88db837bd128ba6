"""`doit reproduce`: build each app twice, at two different paths, and compare every output.

With CONFIG_APP_REPRODUCIBLE_BUILD=y ESP-IDF maps build paths away and drops the build time
(docs/esp-idf.md §6.1), so both builds must match byte for byte; a difference is named down to
the segment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .. import process
from ..errors import ToolError
from ..files import write_if_changed
from ..idf import esp_image, idftool
from . import build

__all__ = ["first_difference", "reproduce"]

_FORCE = "CONFIG_APP_REPRODUCIBLE_BUILD=y\n"
# The component manager's files in an app's project dir (ESP-IDF v6.0's examples pull
# espressif/ethernet_init from the registry): carried from `doit build`'s staged copy.
_LOCK = "dependencies.lock"
_MANAGED = "managed_components"


def _carry_components(built: Path, source: Path) -> None:
    """Give a reproduce build the registry components `doit build` resolved: the same
    dependencies.lock and managed_components/, so both builds are offline and pinned alike.
    They stay between reproduce runs, replaced only when the lock changed."""
    lock = built / _LOCK
    if not lock.is_file():
        return
    if (source / _LOCK).is_file() and (source / _LOCK).read_bytes() == lock.read_bytes():
        return
    source.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.rmtree(source / _MANAGED, ignore_errors=True)
    if (built / _MANAGED).is_dir():
        shutil.copytree(built / _MANAGED, source / _MANAGED, symlinks=True)
    write_if_changed(source / _LOCK, lock.read_bytes())


def _variant(plan: build.BuildPlan, root: Path) -> build.BuildPlan:
    """The same build, with sources and build dir under `root`, reproducible forced on."""
    source = root / "src"
    force = root / "reproducible.defaults"
    write_if_changed(force, _FORCE)
    # The app's own layered defaults, at the same place in the copy; then ours.
    own = [
        source / p.relative_to(plan.project_dir)
        for p in plan.defaults
        if p.is_relative_to(plan.project_dir)
    ]
    generated = [path for path in plan.defaults if not path.is_relative_to(plan.project_dir)]
    ca_dest = source / plan.ca_dest.relative_to(plan.project_dir) if plan.ca_dest else None
    return dataclasses.replace(
        plan,
        project_dir=source,
        build_dir=root / "build",
        sdkconfig=root / "build" / "sdkconfig",
        defaults=(*own, *generated, force),
        ca_dest=ca_dest,
        # The check that requested options took effect belongs to `doit build`.
        options=(),
    )


def _outputs(plan: build.BuildPlan) -> dict[str, Path]:
    """Every flash image by role, and the ELF."""
    flasher = build.read_flasher_args(plan.build_dir)
    found: dict[str, Path] = {}
    for role in ("bootloader", "partition-table", "otadata", "app"):
        entry = flasher.get(role)
        if isinstance(entry, dict):
            found[role] = plan.build_dir / str(entry["file"])
    description = json.loads((plan.build_dir / "project_description.json").read_text())
    found["elf"] = Path(str(description["app_elf"]))
    if not found["elf"].is_absolute():
        found["elf"] = plan.build_dir / found["elf"]
    return found


def first_difference(first: bytes, second: bytes, target: str) -> str:
    """Where two images first differ: the segment (for ESP images), else the byte offset."""
    if first[:1] == second[:1] == b"\xe9":
        segment = _segment_difference(first, second, target)
        if segment is not None:
            return segment
    offset = next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )
    return f"byte 0x{offset:x}" + (" (sizes differ)" if len(first) != len(second) else "")


def _segment_difference(first: bytes, second: bytes, target: str) -> str | None:
    """The first segment (esptool's parse) where two ESP images differ; None if unparsable."""
    try:
        one, two = esp_image.parse(first, target), esp_image.parse(second, target)
    except esp_image.ImageError:  # not a whole ESP image: the byte offset says where
        return None
    for index, (a, b) in enumerate(zip(one.segments, two.segments, strict=False)):
        if a.data != b.data or a.addr != b.addr:
            kind = ", ".join(a.get_memory_type(one)) or "?"
            return f"segment {index} ({kind} at 0x{a.addr:08x})"
    return None


def reproduce(plans: Sequence[build.BuildPlan], root: Path) -> None:
    """Build each app at two paths and compare; raise naming every image that differs."""
    idf = idftool.find_idf(os.environ, plans[0].idf_version)
    rows: list[tuple[str, str, str, str]] = []
    differences: list[str] = []
    for plan in plans:
        builds = [_variant(plan, root / plan.app / name) for name in ("a", "second-path")]
        outputs = []
        for variant in builds:
            # A fresh build dir every time; the staged sources (and their components) stay.
            shutil.rmtree(variant.build_dir, ignore_errors=True)
            _carry_components(plan.project_dir, variant.project_dir)
            build.prepare(variant)  # stages the sources and places the CA, as `doit build` does
            process.run(
                variant.command(idf),
                log=variant.build_dir / "build.log",
                what=f"reproduce {plan.app}",
                env=idf.environment(os.environ),
            )
            outputs.append(_outputs(variant))
        for role, path in outputs[0].items():
            a, b = path.read_bytes(), outputs[1][role].read_bytes()
            digest = hashlib.sha256(a).hexdigest()[:16]
            same = a == b
            rows.append((plan.app, role, digest, "same" if same else "DIFFERENT"))
            if not same:
                where = first_difference(a, b, plan.target)
                differences.append(f"{plan.app} {role} ({path.name}) differs at {where}")
    _print_table(rows)
    if differences:
        raise ToolError("builds are not reproducible: " + "; ".join(differences))
    print("every image and ELF is byte-identical across both builds")


def _print_table(rows: Sequence[tuple[str, str, str, str]]) -> None:
    header = ("app", "image", "sha256", "result")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
