"""Command-line values and serial ports: one true line each, never a traceback or a false exit 0."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from esp_ota_doit.device import esplink
from esp_ota_doit.errors import DeviceError

from tests.conftest import DATA, REPO
from tests.test_invalid import run_doit


@pytest.fixture
def project(tmp_path: Path) -> Path:
    text = (DATA / "invalid" / "09-baud-not-a-number.yaml").read_text()
    (tmp_path / "project.yaml").write_text(text.replace("baud: fast", "baud: 460800"))
    shutil.copy(REPO / "dodo.py", tmp_path / "dodo.py")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["flash", "--baud", "-5"], "--baud: '-5' is not a baud rate; use 9600 to 5000000"),
        (["flash", "--baud=9" + "9" * 4999], "--baud: '99999999999999999999999999999999"),
        (["flash", "--port="], "--port: '' is empty; name a serial port like /dev/ttyUSB0"),
        (["boot", "--slot="], "--slot: '' is empty; name an app slot (factory, ota_0, ...)"),
    ],
)
def test_cli__bad_values_are_one_line_before_any_task(
    project: Path, args: list[str], line: str
) -> None:
    result = run_doit(project, *args)
    assert result.returncode == 3
    assert result.stderr.startswith(f"ERROR: {line}") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert not (project / "build").exists()


def test_monitor__missing_port_fails_and_lists_ports(project: Path) -> None:
    result = run_doit(project, "monitor", "--port=/dev/ttyUSB-not-here")
    assert result.returncode == 1
    assert "no such port /dev/ttyUSB-not-here (ports present: " in result.stdout + result.stderr
    assert "busy" not in result.stdout + result.stderr


def test_connect_hint__says_what_is_true(tmp_path: Path) -> None:
    present = tmp_path / "ttyFAKE"
    present.write_text("")
    missing = str(tmp_path / "gone")
    opened = OSError(2, "could not open port, the port is busy or doesn't exist")
    assert esplink.connect_hint(missing, opened).startswith(f"no such port {missing}")
    denied = OSError("[Errno 13] could not open port: Permission denied")
    assert "dialout" in esplink.connect_hint(str(present), denied)
    busy = OSError("[Errno 16] Device or resource busy")
    assert "is busy" in esplink.connect_hint(str(present), busy)
    with pytest.raises(DeviceError, match="no such port"):
        esplink.probe_port(missing)
    esplink.probe_port("socket://127.0.0.1:9")  # URLs are checked by connecting, not here
