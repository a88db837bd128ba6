"""build/manifest.json: what was built, from which commit, with which images (from each
build/<app>/app.json), for CI artifacts and for anyone who ships the images.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .. import process
from ..errors import ToolError
from ..files import write_if_changed
from . import outputs

__all__ = ["git_commit", "write"]


def write(project_name: str, root: Path, summaries: Sequence[Path], out: Path) -> None:
    """build/manifest.json: what was built, from which commit (the one checked out when the
    manifest was written, that is when an app's summary last changed), with which images."""
    apps: dict[str, object] = {}
    for path in summaries:
        summary = outputs.read(path)
        apps[summary.app] = {
            "version": summary.version,
            "idf_version": summary.app_image.idf_version,
            "target": summary.target,
            **({"ota_url": summary.ota_url} if summary.ota_url else {}),
            "ca_sha256": summary.ca_sha256,
            "images": [
                {
                    "role": image.role,
                    "offset": f"{image.offset:#x}",
                    "file": _relative(image.file, root),
                    "size": image.size,
                    "sha256": image.sha256,
                }
                for image in summary.images
            ],
        }
    manifest = {"project": project_name, "git_commit": git_commit(root), "apps": apps}
    write_if_changed(out, json.dumps(manifest, indent=2) + "\n")


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def git_commit(root: Path) -> str | None:
    """HEAD of the checkout, `-dirty` when tracked files changed; None outside git."""

    def git(*args: str) -> str | None:
        try:
            done = process.capture(["git", "-C", str(root), *args], timeout=30)
        except ToolError:  # no git here, or it hung
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if head is None:
        return None
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
