"""The whole task graph on one screen: every doit task creator, in pipeline order, plus DOIT_CONFIG.

Creators only wire plans to actions: files connect tasks (file_dep/targets), and the plan an
action receives is the payload its config_changed fingerprints.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doit.exceptions import InvalidDodoFile
from doit.tools import config_changed

import tasks
from tasks import hosts, model, render, sdkconfig
from tasks.errors import ConfigErrors, warn
from tasks.model import Project
from tasks.paths import TEMPLATES, Paths

__all__ = ["DOIT_CONFIG", "load_project", "task_render"]

# sqlite3 is the backend that survives two doit processes at once. Its file sits next to
# project.yaml because doit opens it before any task runs, when build/ may not exist yet.
DOIT_CONFIG: dict[str, Any] = {
    "backend": "sqlite3",
    "dep_file": ".doit.db",
    "default_tasks": ["render"],
    "minversion": "0.37.0",
    "action_string_formatting": "new",
}


def _resolve_host(env: dict[str, str], host: str) -> str:
    resolved, warning = hosts.resolve_host(host, env)
    if warning:
        warn(warning)
    return resolved


@functools.lru_cache(maxsize=4)
def _load(root: str, text: str, env_items: tuple[tuple[str, str], ...]) -> Project:
    env = dict(env_items)
    return model.load(
        text,
        file="project.yaml",
        env=env,
        resolve_host=functools.partial(_resolve_host, env),
        project_dir=Path(root),
    )


def load_project() -> Project:
    """Read ./project.yaml once per process; a bad file becomes doit's one-line ERROR, exit 3."""
    root = Path.cwd()
    try:
        text = Paths(root).project_yaml.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidDodoFile(
            f"project.yaml: not found in {root}; run doit from the folder that holds it"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidDodoFile(f"project.yaml: cannot be read ({error})") from None
    try:
        return _load(str(root), text, tuple(sorted(os.environ.items())))
    except ConfigErrors as errors:
        raise InvalidDodoFile(str(errors)) from None


def _fingerprint(payload: dict[str, object]) -> config_changed:
    # The package version is part of every payload: an upgrade re-renders.
    return config_changed({"version": tasks.__version__, **payload})


def task_render() -> Iterator[dict[str, Any]]:
    """Render the partition table and each app's sdkconfig.defaults from project.yaml."""
    project = load_project()
    paths = Paths(project.project_dir)
    yield {
        "name": "partitions",
        "doc": "build/generated/partitions.csv and partition-table.bin",
        "actions": [
            (
                render.write_partition_table,
                [project.table, paths.partitions_csv, paths.partition_table_bin],
            )
        ],
        "file_dep": [TEMPLATES / "partitions.csv.j2"],
        "targets": [paths.partitions_csv, paths.partition_table_bin],
        "uptodate": [_fingerprint(project.table.to_json())],
        "clean": True,
    }
    for app in project.apps:
        plan = sdkconfig.plan(project, app, partitions_csv=paths.partitions_csv)
        target = paths.sdkconfig_defaults(app.name)
        yield {
            "name": f"sdkconfig-{app.name}",
            "doc": f"build/generated/{app.name}.sdkconfig.defaults",
            "actions": [(render.write_sdkconfig, [plan, target])],
            "file_dep": [TEMPLATES / "sdkconfig.defaults.j2"],
            "targets": [target],
            "uptodate": [_fingerprint(plan.to_json())],
            "clean": True,
        }
