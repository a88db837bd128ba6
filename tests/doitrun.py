"""Running the task graph in-process, as doit's own tests do, and reading what ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from esp_ota_doit import graph


def run_with_output(project_dir: Path, *args: str) -> tuple[int, dict[str, str], str]:
    """doit's exit code, each task's result, and everything the tasks printed or failed with.

    The JSON reporter is used because doit's console reporter ignores redirected stdout.
    """
    report = project_dir / "report.json"
    try:
        code = DoitMain(ModuleTaskLoader(graph)).run(
            ["run", "--reporter", "json", "--output-file", str(report), *args]
        )
    finally:
        graph.release_lock()  # as a doit process exiting does: the next run reads project.yaml
    tasks = json.loads(report.read_text())["tasks"]
    text = "".join(t.get(key) or "" for t in tasks for key in ("out", "err", "error"))
    names = [t["name"] for t in tasks]
    # A group task (`render`) has no action of its own; its sub-tasks do the work. Only a
    # basename is a group: build:<app> is the last step of build:<app>:idf and the others.
    results = {
        t["name"]: t["result"]
        for t in tasks
        if ":" in t["name"] or not any(other.startswith(f"{t['name']}:") for other in names)
    }
    return code, results, text


def run(project_dir: Path, *args: str) -> tuple[int, dict[str, str]]:
    code, results, _ = run_with_output(project_dir, *args)
    return code, results


def executed(results: dict[str, str]) -> set[str]:
    return {name for name, result in results.items() if result == "success"}


def edit(project_dir: Path, old: str, new: str) -> None:
    """Replace text in the project's project.yaml (it must be there)."""
    path = project_dir / "project.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def doit_process(
    folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m doit <args>` in `folder`, as a user runs it, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=folder,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
