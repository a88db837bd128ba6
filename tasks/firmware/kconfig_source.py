"""Each app's Kconfig, from ESP-IDF's own kconfgen over the ESP-IDF found here: run the way
tools/cmake/kconfig.cmake of that release runs it, before any build, by the kconfig task (never
while loading), cached under build/kconfig/ on the Kconfig files. The task hands each app's
result over in build/kconfig/<app>.facts.json (`KconfigFacts`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import loader
from ..config.model import App, Project
from ..errors import ConfigError, ToolError, warn
from ..files import ShapeError, field, mapping, read_json, schema_checked, write_if_changed
from ..idf import app_folder, idftool, releases
from ..idf.kconfig import kconfgen
from ..idf.kconfig.symbols import AppKconfig, Symbol, app_kconfig
from ..paths import Paths
from . import defaults

__all__ = ["KconfigFacts", "evaluate_apps", "inputs_digest", "read", "write"]

SCHEMA = 1
_FIX = "run `doit kconfig`"


@dataclass(frozen=True, slots=True, kw_only=True)
class KconfigFacts:
    """build/kconfig/<app>.facts.json: the app's Kconfig as kconfgen evaluated it with
    project.yaml's options applied; `kconfig` is None where kconfgen cannot run here."""

    app: str
    kconfig: AppKconfig | None
    schema: int = SCHEMA

    def to_json(self) -> dict[str, object]:
        found = self.kconfig
        return {
            "schema": self.schema,
            "app": self.app,
            "kconfig": None
            if found is None
            else {
                "release": found.release,
                "target": found.target,
                "symbols": [dataclasses.asdict(s) for _, s in sorted(found.symbols.items())],
                "renames": dict(sorted(found.renames.items())),
                "values": dict(sorted(found.values.items())),
            },
        }

    @classmethod
    def from_json(cls, data: object, *, source: Path) -> KconfigFacts:
        """The facts in `data` (parsed JSON from `source`).

        Raises:
            ToolError: one line naming `source`, when it is of another schema or shape.
        """
        data = schema_checked(data, SCHEMA, what="an app's Kconfig facts", source=source, fix=_FIX)
        try:
            found = field(data, "kconfig", dict, type(None))
            return cls(app=field(data, "app", str), kconfig=_app_kconfig_of(found))
        except (ShapeError, TypeError, ValueError) as error:
            raise ToolError(f"{source}: not an app's Kconfig facts ({error}); {_FIX}") from None


def _app_kconfig_of(found: Mapping[str, Any] | None) -> AppKconfig | None:
    if found is None:
        return None
    symbols = [_symbol(entry) for entry in field(found, "symbols", list)]
    return AppKconfig(
        release=field(found, "release", str),
        target=field(found, "target", str),
        symbols={symbol.name: symbol for symbol in symbols},
        renames=dict(mapping(found, "renames")),
        values=dict(mapping(found, "values")),
    )


def _symbol(entry: object) -> Symbol:
    if not isinstance(entry, dict):
        raise ShapeError("a symbol is not an object")
    limits = entry.get("range")
    return Symbol(**{**entry, "range": tuple(limits) if limits is not None else None})


def read(path: Path) -> KconfigFacts:
    """The kconfig task's hand-over file for one app."""
    return KconfigFacts.from_json(read_json(path, fix=_FIX), source=path)


def write(facts: KconfigFacts, path: Path) -> None:
    """Written only when it changed: the tasks reading it stay up to date otherwise."""
    write_if_changed(path, json.dumps(facts.to_json(), indent=1, sort_keys=True) + "\n")


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
    found = _app_tree(idf_root, project, app)
    if found is None:
        return None  # loader.load has said what is wrong with the path
    folder, tree = found
    paths = Paths(project.project_dir)
    cache = paths.kconfig_cache
    own = [folder / name for name in app.defaults_files]  # SDKCONFIG_DEFAULTS, in order
    # First the Kconfig alone (symbols and types), then with project.yaml's options typed by it.
    alone = kconfgen.evaluate(tree, defaults=own, command=command, cache=cache / f"{app.name}.json")
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
        applied = kconfgen.evaluate(
            tree, defaults=[*own, ours], command=command, cache=cache / f"{app.name}.applied.json"
        )
    return dataclasses.replace(facts, values=applied.values)


def _app_tree(
    idf_root: Path, project: Project, app: App
) -> tuple[Path, kconfgen.KconfigTree] | None:
    """The app's folder and the Kconfig tree ESP-IDF configures it from, if it is here to read."""
    folder = app.folder(project.project_dir, idf_root)
    if folder is None:
        return None
    try:
        files = app_folder.read_app(folder)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    tree = kconfgen.tree(
        idf_root,
        project.target,
        folder,
        examples_common=files.uses_examples_common,
        minimal_build=files.minimal_build,
    )
    return folder, tree


def inputs_digest(project: Project, env: Mapping[str, str]) -> str:
    """What the apps' evaluations read beyond project.yaml: the Kconfig files (path, size, mtime),
    the apps' own defaults files, and which kconfgen runs. The kconfig task is current while it
    is unchanged (project.yaml's part is its config_changed payload)."""
    digest = hashlib.sha256()
    idf_root = idftool.idf_path(env)
    command = kconfgen.kconfgen(env)
    digest.update(json.dumps([str(idf_root), command]).encode())
    if idf_root is None or command is None:
        return digest.hexdigest()
    for app in project.apps:
        found = _app_tree(idf_root, project, app)
        if found is None:
            digest.update(f"{app.name}:-\n".encode())
            continue
        folder, tree = found
        own: list[str | None] = []
        for name in app.defaults_files:
            try:
                own.append((folder / name).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                own.append(None)
        digest.update(
            f"{app.name}:{kconfgen.fingerprint(tree, command, json.dumps(own))}\n".encode()
        )
    return digest.hexdigest()


def _runnable(
    env: Mapping[str, str], warn: Callable[[str], None]
) -> tuple[Path, str, tuple[str, ...]] | None:
    """The ESP-IDF here, its release and the kconfgen it runs; None (said once) where there is
    no ESP-IDF or its kconfgen cannot run: the options are then checked after the build."""
    idf_root = idftool.idf_path(env)
    if idf_root is None or not (idf_root / "Kconfig").is_file():
        return None
    release = idftool.idf_version(idf_root) or "?"
    command = kconfgen.kconfgen(env)
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
    return idf_root, release, command


def evaluate_apps(
    project: Project,
    text: str,
    facts: Mapping[str, Path],
    env: Mapping[str, str],
    *,
    warn: Callable[[str], None] = warn,
) -> dict[str, str]:
    """The kconfig task's action: each app's Kconfig through kconfgen, project.yaml's CONFIG_
    options checked under it (warnings printed, errors raised as located lines), and each app's
    facts written to `facts[app]`. Returns what doit records for the next up-to-date check.

    Raises:
        ConfigErrors: project.yaml:L:C: lines, one per problem; no facts file is written.
    """
    digest = inputs_digest(project, env)
    runnable = _runnable(env, warn)
    found: dict[str, AppKconfig] = {}
    failed: list[ConfigError] = []
    if runnable is not None:
        idf_root, release, command = runnable
        for app in project.apps:
            try:
                evaluated = _app_kconfig(idf_root, release, command, project, app)
            except ToolError as error:
                failed.append(
                    ConfigError(
                        ("apps", app.name, "path"),
                        f"ESP-IDF {release}'s kconfgen failed for this app: {error}",
                        "fix the Kconfig files it names",
                    )
                )
                continue
            if evaluated is not None:
                found[app.name] = evaluated
    errors, warnings = loader.kconfig_problems(
        text, file="project.yaml", env=env, project=project, found=found, failed=failed
    )
    for line in warnings:
        warn(line)
    if errors is not None:
        raise errors
    for app in project.apps:
        write(KconfigFacts(app=app.name, kconfig=found.get(app.name)), facts[app.name])
    return {"kconfig_inputs": digest}
