"""`doit rehearse` end to end with no ESP-IDF and no board: the stand-in builds, esptool
flashes the emulated ROM loader, the real server serves, the virtual device updates over TLS.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from esp_ota_doit.device import flash
from esp_ota_doit.errors import DeviceError
from esp_ota_doit.firmware import outputs
from esp_ota_doit.idf import otadata, partition_files

from tests.doitrun import edit, run_with_output
from tests.test_serve import summary as app_summary

SUMMARY = app_summary("factory", Path("factory.bin"), b"image", ca_sha256=None)

pytest.importorskip(
    "esp32_mock_bootloader", reason="esp32-mock-bootloader not installed (pip install -e '.[test]')"
)


@pytest.fixture
def rehearsal(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example project on a machine with no ESP-IDF (idf.py nowhere on PATH)."""
    monkeypatch.delenv("IDF_PATH", raising=False)
    folders = os.environ["PATH"].split(os.pathsep)
    monkeypatch.setenv(
        "PATH", os.pathsep.join(f for f in folders if not (Path(f) / "idf.py").exists())
    )
    return project_dir


def test_rehearse__the_whole_story(rehearsal: Path) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    assert "SYNTHETIC BUILD" in text
    assert "boot: Loaded app from partition at offset 0x10000" in text
    assert text.rstrip().endswith("booted ota_0: hello_world 1.0.1")
    # The flash file holds a valid otadata entry selecting ota_0, and the served image there.
    flash_file = (rehearsal / "build/virtual/esp32-flash.bin").read_bytes()
    table = partition_files.from_bin(flash_file[0x8000 : 0x8000 + 0xC00])
    assert table.otadata is not None
    entries = otadata.decode(flash_file[table.otadata.offset : table.otadata.offset + 0x2000])
    active = max((e for e in entries if e.valid), key=lambda e: e.seq)
    assert active.crc == otadata.crc(active.seq)
    assert table.ota_slots[(active.seq - 1) % len(table.ota_slots)].name == "ota_0"
    served = outputs.read(rehearsal / "build/virtual/hello_world/app.json")
    image = served.app_file.read_bytes()
    ota_0 = table.ota_slots[0].offset
    assert flash_file[ota_0 : ota_0 + len(image)] == image
    # Synthetic images stay under build/virtual/.
    assert not (rehearsal / "build" / "factory").exists()
    assert served.synthetic is True


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        ("cut", "Complete data was not received."),
        ("chip", "Mismatch chip id, expected 0, found 5"),
        ("corrupt", "Image validation failed, image is corrupted"),
        ("host", "esp-tls: Failed to verify peer certificate (IP address mismatch"),
        ("same-version", "Current running version is the same as a new."),
    ],
)
def test_rehearse__failures_keep_the_factory_app(rehearsal: Path, failure: str, cause: str) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", failure)
    assert code == 0, text
    assert "booted factory: simple_ota 1.0.0" in text
    assert f"the board still boots factory; the update was refused: {cause}" in text


def test_rehearse__partial_download(rehearsal: Path) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse", "--partial")
    assert code == 0, text
    assert "ota: HEAD: Content-Length" in text
    assert "ota: Range bytes=0-" in text
    assert text.rstrip().endswith("booted ota_0: hello_world 1.0.1")


def test_rehearse__without_the_emulator_says_how_to_install_it(
    rehearsal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "esp32_mock_bootloader.server", None)
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 1
    assert "the virtual board needs the ROM loader emulator; pip install -e '.[rehearse]'" in text


def test_flash__synthetic_images_never_go_to_a_real_port(tmp_path: Path) -> None:
    summary = tmp_path / "app.json"
    outputs.write(summary, replace(SUMMARY, synthetic=True))
    plan = flash.FlashPlan(
        app="factory",
        target="esp32",
        flash_size="4MB",
        table_offset=0x8000,
        app_summary=summary,
        boards_dir=tmp_path,
        port=None,
        baud=460800,
    )
    with pytest.raises(DeviceError, match="refusing to write synthetic images"):
        flash.write(plan, port="/dev/ttyUSB0")


def test_rehearse__a_flash_app_that_is_no_ota_client(rehearsal: Path) -> None:
    edit(rehearsal, "version: 1.0.0, ota_client: true}", "version: 1.0.0}")
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 1
    assert (
        "flash_app 'factory' is not an OTA client, so there is no update to rehearse; "
        "set apps.factory.ota_client: true"
    ) in text
