"""Reliability under hostile or unlucky conditions: an oversized project.yaml, empty option
values, a run that waited for the project lock while project.yaml was edited.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from esp_ota_doit import wiring

from tests.doitrun import doit_process, edit


def test_project_yaml__over_1_mib_is_refused_at_once(project_dir: Path) -> None:
    with (project_dir / "project.yaml").open("a") as handle:
        line = "# " + "x" * 98 + "\n"
        handle.write(line * 50_000)  # 5 MB of comments
    started = time.monotonic()
    result = doit_process(project_dir, "list")
    assert time.monotonic() - started < 10
    assert result.returncode == 3
    assert result.stderr == (
        "ERROR: project.yaml: 4.8 MiB is over the 1 MiB a project.yaml may be; it holds "
        "settings only (keep logs and data elsewhere)\n"
    )


def test_project_yaml__a_fifo_is_refused_not_waited_on(project_dir: Path) -> None:
    (project_dir / "project.yaml").unlink()
    os.mkfifo(project_dir / "project.yaml")
    result = doit_process(project_dir, "list", timeout=30)
    assert result.returncode == 3
    assert result.stderr == (
        "ERROR: project.yaml: is not a regular file; it must be the YAML file\n"
    )


def test_load_project__one_text_per_run(project_dir: Path) -> None:
    """Every task creator of one run plans from the project.yaml read when the run started
    working: an edit while it loads or runs does not mix two versions in one plan."""
    first = wiring.load_project()
    edit(project_dir, "version: 1.0.1}", "version: 1.0.2}")
    assert wiring.load_project() is first
    wiring.release_lock()  # the run ends; the next one reads the edited file
    assert wiring.load_project().app("hello_world").version == "1.0.2"


def test_lock__a_run_that_waited_plans_from_the_edited_file(project_dir: Path) -> None:
    """A run that waited for the project lock reads project.yaml once it has the lock."""
    holder = os.open(project_dir, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "doit", "info", "render:sdkconfig-hello_world"],
            cwd=project_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)  # it starts, reads nothing yet, and waits for the lock
        assert waiting.poll() is None
        edit(project_dir, "version: 1.0.1}", "version: 9.9.9}")
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode in (0, 1), err  # doit info: 1 when the task is not up to date
    assert "Traceback" not in err
    assert "waiting for another doit run" in err
    assert "9.9.9" in out and "1.0.1" not in out
