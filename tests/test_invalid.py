"""Every malformed project.yaml gives one clear line, exit 3, no traceback, no output files.

Each tests/data/invalid/NN-what.yaml starts with `# expect: <the exact line>`; doit prefixes it
with `ERROR: `. The files run through the real CLI (`python -m doit list`), as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DATA, REPO
from tests.doitrun import doit_process

CASES = sorted((DATA / "invalid").glob("*.yaml"))


def expected_line(case: Path) -> str:
    first = case.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{case.name} must start with '# expect: <line>'"
    return first.removeprefix("# expect: ")


def run_doit(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return doit_process(folder, *args, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)


def test_invalid__table_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_invalid__one_clear_line(case: Path, tmp_path: Path) -> None:
    shutil.copy(case, tmp_path / "project.yaml")
    shutil.copy(REPO / "dodo.py", tmp_path / "dodo.py")
    result = run_doit(tmp_path, "list")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert result.stderr == f"ERROR: {expected_line(case)}\n"
    # Only doit's own state may exist; nothing was rendered.
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}
    assert written <= {"project.yaml", "dodo.py", ".doit.db"} | {
        name for name in written if name.startswith("__pycache__")
    }
