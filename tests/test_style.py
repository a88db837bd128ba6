"""The code checks CI holds us to: ruff over everything, mypy --strict over tasks/."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_style__ruff() -> None:
    if shutil.which("ruff") is None:
        pytest.skip(reason="ruff not installed (pip install -e '.[test]')")
    folders = [name for name in ("tasks", "tests", "bench") if (REPO / name).is_dir()]
    result = run("ruff", "check", *folders, "dodo.py")
    assert result.returncode == 0, result.stdout


def test_style__mypy_strict() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout


def test_style__no_tls_verification_is_ever_disabled() -> None:
    # Spelled in pieces so this file does not match itself.
    banned = ("verify" + "=False", "CERT_" + "NONE", "check_hostname" + " = False")
    offenders = [
        f"{path.relative_to(REPO)}: {word}"
        for folder in ("tasks", "tests", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        for word in banned
        if word in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_style__package_imports_itself_relatively() -> None:
    # Installed, tasks/ is esp_ota_doit: an absolute `tasks.` import works only in a checkout.
    offenders = [
        f"{path.name}:{number}"
        for path in sorted((REPO / "tasks").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if line.lstrip().startswith(("from tasks", "import tasks", "from esp_ota_doit"))
    ]
    assert offenders == []
