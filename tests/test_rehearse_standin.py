"""`doit rehearse --standin`, and an ESP-IDF whose idf.py cannot run (IDF_PATH set, export.sh
not run): one line naming export.sh and --standin."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from esp_ota_doit.rehearsal import virtual_idf
from esp_ota_doit.wiring import standin_requested

from tests import idfkit
from tests.doitrun import doit_process

pytest.importorskip(
    "esp32_mock_bootloader", reason="esp32-mock-bootloader not installed (pip install -e '.[test]')"
)

# What ESP-IDF v5.3.2's idf.py prints under a Python without its requirements.
_IDF_PY = """\
import sys
if "--version" in sys.argv:
    print("Traceback (most recent call last):", file=sys.stderr)
    print("ModuleNotFoundError: No module named 'python_version_checker'", file=sys.stderr)
    sys.exit(1)
sys.exit(2)
"""


@pytest.mark.parametrize(
    ("argv", "asked"),
    [
        (["rehearse", "--standin"], True),
        (["rehearse", "--fail", "host", "--standin"], True),
        (["-v", "2", "rehearse", "--standin"], True),
        (["rehearse"], False),
        (["build", "--standin"], False),
        (["--standin", "rehearse"], False),
        ([], False),
    ],
)
def test_standin_requested__only_as_an_option_of_rehearse(argv: list[str], asked: bool) -> None:
    assert standin_requested(argv) is asked


@pytest.fixture
def unexported(rehearsal: Path, tmp_path: Path) -> dict[str, str]:
    """An ESP-IDF tree whose idf.py cannot run, named by IDF_PATH (export.sh not run)."""
    idf = tmp_path / "esp-idf"
    virtual_idf.write(idf)  # the examples project.yaml names, and a Kconfig set
    (idf / "tools").mkdir(parents=True, exist_ok=True)
    (idf / "tools" / "idf.py").write_text(_IDF_PY)
    return {**os.environ, "IDF_PATH": str(idf), "OTA_HOST": "127.0.0.1"}


@pytest.mark.e2e
def test_rehearse__idf_py_that_cannot_run_is_one_line_naming_export_and_standin(
    rehearsal: Path, unexported: dict[str, str]
) -> None:
    done = doit_process(rehearsal, "rehearse", env=unexported, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout
    failed = [line for line in done.stdout.splitlines() if "idf.py --version" in line]
    assert failed == [
        "`idf.py --version` failed (exit 1): ModuleNotFoundError: No module named "
        "'python_version_checker'; run ESP-IDF's export.sh first (. $IDF_PATH/export.sh), "
        "or rehearse with the idf.py stand-in: doit rehearse --standin"
    ], done.stdout + done.stderr


@pytest.mark.e2e
def test_rehearse__standin_rehearses_where_esp_idf_cannot_run(
    rehearsal: Path, unexported: dict[str, str]
) -> None:
    done = doit_process(rehearsal, "rehearse", "--standin", env=unexported, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert ".  rehearse-build:factory" in done.stdout
    assert "synthetic images: --standin asked for them" in done.stdout
    assert done.stdout.rstrip().endswith("booted ota_0: hello_world 1.0.1")
    assert not (rehearsal / "build" / "factory").exists()  # nothing built with that ESP-IDF


@pytest.mark.e2e
@pytest.mark.idf_kit
def test_rehearse__standin_takes_the_real_trees_examples_and_kconfig(rehearsal: Path) -> None:
    """ESP-IDF installed, export.sh not run: --standin builds ESP-IDF's own examples from the
    tree $IDF_PATH names, configured with that tree's Kconfig, and writes nothing into it."""
    tree = idfkit.idf_path()
    before = sorted(p.name for p in (tree / "examples" / "system" / "ota").iterdir())
    env = {**os.environ, "IDF_PATH": str(tree), "OTA_HOST": "127.0.0.1"}
    done = doit_process(rehearsal, "rehearse", "--standin", env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("booted ota_0: hello_world 1.0.1")
    config_env = json.loads((rehearsal / "build/virtual/factory/config.env").read_text())
    assert config_env["COMPONENT_KCONFIGS"].startswith(str(tree / "components"))
    assert not (rehearsal / "build/virtual/esp-idf").exists()
    assert sorted(p.name for p in (tree / "examples" / "system" / "ota").iterdir()) == before
