"""idf.py under ESP-IDF's own Python, and what a failing `idf.py --version` tells the user."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from esp_ota_doit.errors import ToolError
from esp_ota_doit.idf import idftool

# What ESP-IDF v5.3.2's idf.py prints (stderr) when pip replaced its esptool 4.8.1 by 5.6.0.
ESPTOOL_REPLACED = """\
Constraint file: /kit/idf-tools/espidf.constraints.v5.3.txt
Requirement files:
 - /kit/esp-idf/tools/requirements/requirements.core.txt
Python being checked: /kit/python-env/bin/python
The following Python requirements are not satisfied:
Requirement 'esptool==4.8.1' was not met. Installed version: 5.6.0
To install the missing packages, please run "install.sh"
Diagnostic information:
    IDF_PYTHON_ENV_PATH: /kit/python-env
    Python interpreter used: /kit/python-env/bin/python

fatal: not a git repository: '/kit/esp-idf/.git'
WARNING: Git version unavailable, reading from source
ESP-IDF v5.3.2
"""
# ... and when it runs under a Python without ESP-IDF's packages (export.sh not run).
NOT_EXPORTED = """\
Cannot import module "click". This usually means that "idf.py" was not spawned within an \
ESP-IDF shell environment or the python virtual
environment used by "idf.py" is corrupted.
Please use idf.py only in an ESP-IDF shell environment. If problem persists, please try to \
install ESP-IDF tools again as described in the Get Started guide.
"""


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (ESPTOOL_REPLACED, "Requirement 'esptool==4.8.1' was not met. Installed version: 5.6.0"),
        (
            NOT_EXPORTED,
            'Cannot import module "click". This usually means that "idf.py" was not '
            "spawned within an ESP-IDF shell environment or the python virtual",
        ),
        (
            "Traceback (most recent call last):\nModuleNotFoundError: No module named "
            "'python_version_checker'\n",
            "ModuleNotFoundError: No module named 'python_version_checker'",
        ),
        ("ESP-IDF v5.3.2\n", "ESP-IDF v5.3.2"),
        ("", "no output"),
    ],
)
def test_cause__is_idf_pys_own_line(output: str, line: str) -> None:
    assert idftool.cause(output) == line


def _failing_idf(folder: Path, stderr: str) -> Path:
    """An idf.py on PATH that prints `stderr` and exits 1, as ESP-IDF's does when it cannot run."""
    script = folder / "bin" / "idf.py"
    script.parent.mkdir(parents=True)
    (folder / "stderr.txt").write_text(stderr)
    source = folder / "stderr.txt"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write(open({str(source)!r}).read())\n"
        "sys.exit(1)\n"
    )
    script.chmod(0o755)
    idftool._version_of.cache_clear()
    return script.parent


def test_find_idf__esptool_replaced_names_both_versions(tmp_path: Path) -> None:
    bin_dir = _failing_idf(tmp_path, ESPTOOL_REPLACED)
    with pytest.raises(ToolError) as caught:
        idftool.find_idf({"PATH": str(bin_dir)}, "5.3")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "`idf.py --version` failed (exit 1): Requirement 'esptool==4.8.1' was not met. "
        "Installed version: 5.6.0; ESP-IDF's Python environment needs esptool 4.8.1, "
        "esp-ota-doit needs esptool 5.6.0: restore it ($IDF_PYTHON_ENV_PATH/bin/pip install "
        "esptool==4.8.1) and install esp-ota-doit in a venv of its own"
    )


def test_find_idf__not_exported_names_export_sh(tmp_path: Path) -> None:
    bin_dir = _failing_idf(tmp_path, NOT_EXPORTED)
    with pytest.raises(ToolError) as caught:
        idftool.find_idf({"PATH": str(bin_dir)}, "5.3")
    assert str(caught.value).endswith(
        "; run ESP-IDF's export.sh first (. $IDF_PATH/export.sh), "
        "or rehearse with the idf.py stand-in: doit rehearse --standin"
    )


def test_find_idf__runs_under_esp_idfs_python_whatever_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv activated after export.sh puts its `python` first; idf.py still gets ESP-IDF's."""
    from tests.conftest import install_fake_idf

    install_fake_idf(tmp_path, monkeypatch.setenv)
    python_env = tmp_path / "python-env"
    (python_env / "bin").mkdir(parents=True)
    for folder in (python_env / "bin", tmp_path / "tool-venv" / "bin"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        (folder / "python").chmod(0o755)
    other = tmp_path / "tool-venv" / "bin"
    path = os.pathsep.join([str(other), os.environ["PATH"], str(python_env / "bin")])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("IDF_PYTHON_ENV_PATH", str(python_env))
    tool = idftool.find_idf(os.environ, "5.3")
    assert tool.command == (str(python_env / "bin" / "python"), str(tmp_path / "bin" / "idf.py"))
    assert tool.python_env == str(python_env)
    entries = tool.environment(os.environ)["PATH"].split(os.pathsep)
    assert entries[0] == str(python_env / "bin")
    assert entries[1] == str(other)
    assert entries.count(str(python_env / "bin")) == 1
    # Without ESP-IDF's Python environment, idf.py on PATH runs as itself (its shebang).
    monkeypatch.delenv("IDF_PYTHON_ENV_PATH")
    idftool._version_of.cache_clear()
    assert idftool.find_idf(os.environ, "5.3").command == (str(tmp_path / "bin" / "idf.py"),)


def test_idf_tree_and_version__one_reading_of_idf_path(tmp_path: Path) -> None:
    """$IDF_PATH names a tree only with a root Kconfig beside tools/idf.py; its release is
    version.cmake's, as ESP-IDF's build system reads it; idf.py is found in it too."""
    root = tmp_path / "esp-idf"
    env = {"IDF_PATH": str(root), "PATH": ""}
    assert idftool.idf_tree(env) is None and not idftool.available(env)
    (root / "tools" / "cmake").mkdir(parents=True)
    (root / "Kconfig").write_text('mainmenu "x"\n')
    (root / "tools" / "idf.py").write_text("")
    assert idftool.idf_tree(env) == root == idftool.idf_path(env)
    assert idftool.available(env)
    assert idftool.idf_version(root) is None
    (root / "tools" / "cmake" / "version.cmake").write_text(
        "set(IDF_VERSION_MAJOR 5)\nset(IDF_VERSION_MINOR 4)\nset(IDF_VERSION_PATCH 1)\n"
    )
    assert idftool.idf_version(root) == "5.4.1"
    assert idftool.idf_tree({}) is None
