"""Each app's Kconfig for loader.load, from ESP-IDF's own kconfgen over the ESP-IDF found here
(or the virtual tree the idf.py stand-in builds from): run the way tools/cmake/kconfig.cmake of
that release runs it, before any build, cached under build/kconfig/ on the Kconfig files.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ..config.model import App, KconfigSource, Project
from ..errors import ConfigError, ToolError
from ..idf import app as idfapp
from ..idf import idftool, kconfig, releases
from ..idf.kconfig_rules import AppKconfig, app_kconfig
from ..paths import Paths
from . import defaults

__all__ = ["source"]

_SECRET_PLACEHOLDER = '"(secret)"'  # the password never reaches a cache file


def _kconfgen_problem(command: tuple[str, ...], release: str) -> str | None:
    """Why this interpreter's kconfgen is not the one ESP-IDF `release` runs, if it is not."""
    if command[0] != sys.executable:
        return None  # ESP-IDF's own Python environment: installed by its install.sh
    try:
        found = importlib.metadata.version("esp-idf-kconfig")
    except importlib.metadata.PackageNotFoundError:
        return "esp-idf-kconfig is not installed"
    try:
        wanted = releases.release(release).kconfig_range
    except KeyError:
        return None  # a release this project does not know: kconfgen as it is
    if not releases.in_range(found, wanted):
        return f"ESP-IDF {release} runs esp-idf-kconfig {wanted[0]},{wanted[1]}, not {found}"
    return None


def _defaults_text(plan: defaults.SdkconfigPlan) -> str:
    lines = [
        line
        if not any(line.startswith(f"{name}=") for name in plan.secret_options)
        else f"{line.partition('=')[0]}={_SECRET_PLACEHOLDER}"
        for _, group in plan.sections()
        for line in group
    ]
    return "\n".join(lines) + "\n"


def _app_kconfig(
    idf_root: Path,
    release: str,
    command: tuple[str, ...],
    project: Project,
    app: App,
) -> AppKconfig | None:
    folder = idf_root / app.idf_subpath if app.in_idf else project.project_dir / app.path
    try:
        files = idfapp.read_app(folder)
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # loader.load has said what is wrong with the path
    tree = kconfig.tree(
        idf_root,
        project.target,
        folder,
        examples_common=files.uses_examples_common,
        minimal_build=files.minimal_build,
    )
    paths = Paths(project.project_dir)
    cache = paths.kconfig_cache
    own = [folder / name for name in app.defaults_files]  # SDKCONFIG_DEFAULTS, in order
    # First the Kconfig alone (symbols and types), then with project.yaml's options typed by it.
    alone = kconfig.evaluate(tree, defaults=own, command=command, cache=cache / f"{app.name}.json")
    facts = app_kconfig(
        release=release,
        target=project.target,
        menus=alone.menus,
        values=alone.values,
        renames=alone.renames,
    )
    typed = dataclasses.replace(project, kconfig=((app.name, facts),))
    plan = defaults.plan(typed, app, partitions_csv=paths.partitions_csv)
    with tempfile.TemporaryDirectory(prefix="esp-ota-defaults-") as folder_text:
        ours = Path(folder_text) / "sdkconfig.defaults"
        ours.write_text(_defaults_text(plan), encoding="utf-8")
        applied = kconfig.evaluate(
            tree, defaults=[*own, ours], command=command, cache=cache / f"{app.name}.applied.json"
        )
    return dataclasses.replace(facts, values=applied.values)


def source(env: Mapping[str, str], warn: Callable[[str], None]) -> KconfigSource | None:
    """How loader.load gets each app's Kconfig here; None without ESP-IDF (nothing to check)."""
    idf_root = idftool.idf_path(env)
    if idf_root is None or not (idf_root / "Kconfig").is_file():
        return None
    release = idftool.idf_version(idf_root) or "?"
    command = kconfig.kconfgen(env)
    problem = (
        "esp-idf-kconfig is not installed"
        if command is None
        else _kconfgen_problem(command, release)
    )
    if command is None or problem is not None:
        warn(
            f"ESP-IDF's kconfgen cannot run here ({problem}): CONFIG_ options are checked only "
            "after the build; run ESP-IDF's export.sh first"
        )
        return None
    found = command

    def app_source(project: Project, app: App) -> AppKconfig | None:
        try:
            return _app_kconfig(idf_root, release, found, project, app)
        except ToolError as error:
            raise ConfigError(
                ("apps", app.name, "path"),
                f"ESP-IDF {release}'s kconfgen failed for this app: {error}",
                "fix the Kconfig files it names",
            ) from None

    return app_source
