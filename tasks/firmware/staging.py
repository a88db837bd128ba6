"""The staged copy of an app project that idf.py builds: build/src/<app>.

An app is never built where it lives: ESP-IDF's tree stays untouched, and an app folder that also
holds project.yaml (`path: .`) keeps its own sdkconfig, build/ and CA file. The copy holds only the
app's sources, keeps each file's mode, is private to its owner, and never follows a link out of
the app (or round in a circle).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import ToolError, warn
from ..files import write_if_changed
from ..idf import app_folder
from ..paths import DEP_FILE

__all__ = ["app_sources", "stage"]

# Folders anywhere in an app that are outputs or tool state, never sources.
_NOT_SOURCE_DIRS = {"managed_components", "__pycache__", "node_modules"}
_NOT_SOURCE_FILES = {"sdkconfig"}
# This tool's own files, when project.yaml sits in the app folder itself: at the top, and in
# certs/ and keys/ (which the app may also use for files of its own, which are staged).
_OWN_FILES = {"project.yaml", "dodo.py"}
_OWN_IN = {
    "certs": re.compile(
        r"(ca_cert|ca_key|server_cert|server_key)\.pem(\..+\.(old|unissued))?|\..*"
    ),
    "keys": re.compile(r"(signing|encryption)_key.*\.pem.*|\..*"),
}
# What the component manager writes into the project dir: kept in the staged copy, so builds
# with registry dependencies stay offline and pinned.
_COMPONENT_MANAGER = {"dependencies.lock"}


def _skipped_dir(folder: Path, name: str, *, top: bool, ours: bool) -> bool:
    if name in _NOT_SOURCE_DIRS or name.startswith("."):  # .git, .venv, .vscode, ...
        return True
    if (folder / name / "pyvenv.cfg").exists():  # a Python venv, whatever its name
        return True
    # build*/ at the top are build folders (idf.py -B build.x); deeper ones may be sources.
    return top and name.startswith("build")


def _skipped_file(root: Path, path: Path, *, ours: bool) -> bool:
    name, within = path.name, path.parent.relative_to(root).parts
    if name in _NOT_SOURCE_FILES or name.startswith("sdkconfig.old"):
        return True
    if not ours:
        return False
    if not within:
        return name in _OWN_FILES or name.startswith(DEP_FILE)
    own = _OWN_IN.get(within[0]) if len(within) == 1 else None
    return own is not None and own.fullmatch(name) is not None


def _walk(root: Path, *, ours: bool) -> Iterator[Path]:
    """Every source file under `root`; links are followed only while they stay inside it, and a
    folder already visited (a link cycle) is not entered twice."""
    real_root = root.resolve()
    visited: set[Path] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        real = folder.resolve()
        if real in visited or not real.is_relative_to(real_root):
            continue
        visited.add(real)
        top = folder == root
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir():
                if not _skipped_dir(folder, entry.name, top=top, ours=ours):
                    pending.append(path)
                continue
            inside = not entry.is_symlink() or path.resolve().is_relative_to(real_root)
            if entry.is_file() and inside and not _skipped_file(root, path, ours=ours):
                yield path


def app_sources(
    source: Path, *, exclude: Sequence[Path] = (), project_dir: Path | None = None
) -> list[Path]:
    """Every file of an app project, sorted, without build outputs or `exclude` (files we write).

    When `source` is `project_dir` itself, this tool's own files there are left out too.
    """
    skipped = {path.resolve() for path in exclude}
    ours = project_dir is not None and source.resolve() == project_dir.resolve()
    return sorted(path for path in _walk(source, ours=ours) if path.resolve() not in skipped)


def _outside_links(source: Path) -> Iterator[Path]:
    """Links in the app that point out of it (not staged: the copy never leaves the app)."""
    real_root = source.resolve()
    for folder, subfolders, files in os.walk(source):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in (*subfolders, *files):
            path = Path(folder) / name
            if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                yield path


def _private_dirs(destination: Path, relative: Path) -> None:
    """Create the folders down to `relative`'s parent as 0700."""
    folder = destination
    for part in relative.parent.parts:
        folder = folder / part
        if not folder.is_dir():
            folder.mkdir(mode=0o700)


def stage(
    source: Path,
    destination: Path,
    *,
    keep: Sequence[Path] = (),
    project_dir: Path | None = None,
) -> None:
    """Mirror an app project into `destination`, rewriting only changed files (ninja stays
    incremental); files gone from the source are removed unless listed in `keep`.

    Raises:
        ToolError: `source` is not an ESP-IDF app; nothing is copied then.
    """
    if not app_folder.is_idf_app(source):
        raise ToolError(
            f"{source} is not an ESP-IDF app (no CMakeLists.txt that calls project()); "
            "nothing was copied"
        )
    for link in _outside_links(source):
        warn(f"{link} points outside the app; it is not copied into the build")
    destination.mkdir(mode=0o700, parents=True, exist_ok=True)
    destination.chmod(0o700)
    kept = {path.resolve() for path in keep}
    wanted = {
        path.relative_to(source): path for path in app_sources(source, project_dir=project_dir)
    }
    for relative, path in wanted.items():
        target = destination / relative
        # A file we place (the CA) is not overwritten by the original, so its mtime holds.
        if target.resolve() not in kept:
            _private_dirs(destination, relative)
            mode = stat.S_IMODE(path.stat().st_mode)  # never wider than the source's
            write_if_changed(target, path.read_bytes(), mode=mode)
    for path in app_sources(destination):
        stale = path.relative_to(destination) not in wanted
        if stale and path.resolve() not in kept and path.name not in _COMPONENT_MANAGER:
            path.unlink()
