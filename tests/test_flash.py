"""`doit flash`, `doit status` and `doit boot` with the real esptool against an emulated ROM
loader (esp32-mock-bootloader) whose flash is a file: tasks/rehearsal/virtual_board.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from esp_ota_doit.device import record
from esp_ota_doit.firmware import outputs
from esp_ota_doit.idf import otadata
from esp_ota_doit.idf.partition import formats
from esp_ota_doit.rehearsal import virtual_board

from tests.doitrun import edit, run, run_with_output

pytest.importorskip(
    "esp32_mock_bootloader", reason="esp32-mock-bootloader not installed (pip install -e '.[test]')"
)
MiB = 1024 * 1024


@pytest.fixture
def project(built: Path) -> Path:
    """The example project, built with the idf.py stand-in, as the cwd."""
    return built


@pytest.fixture
def board(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[virtual_board.VirtualBoard]:
    with virtual_board.VirtualBoard(
        project / "build" / "virtual" / "esp32-flash.bin", target="esp32", flash_size=4 * MiB
    ) as device:
        monkeypatch.setenv("ESPPORT", device.port)
        yield device


def summary(project: Path, app: str = "factory") -> outputs.AppSummary:
    return outputs.read(project / f"build/{app}/app.json")


def images(project: Path) -> dict[str, tuple[int, bytes]]:
    return {
        image.role: (image.offset, image.file.read_bytes()) for image in summary(project).images
    }


def written_bytes(text: str) -> int:
    line = next(line for line in text.splitlines() if line.endswith(" bytes written"))
    return int(line.split()[0])


def test_flash__board_holds_every_image(project: Path, board: virtual_board.VirtualBoard) -> None:
    code, _, text = run_with_output(project, "flash")
    assert code == 0, text
    for role, (offset, data) in images(project).items():
        assert board.read(offset, len(data)) == data, role
    # A new board's flash is erased: otadata (all 0xFF) is already in place.
    expected = sum(len(data) for role, (_, data) in images(project).items() if role != "otadata")
    assert written_bytes(text) == expected
    board_record = record.read(next((project / "build" / "boards").glob("*.json")))
    assert board_record.chip == "esp32"
    assert board_record.app.version == "1.0.0"
    assert board_record.ota_url == "https://127.0.0.1:8070/hello_world.bin"
    assert board_record.ca_sha256 == summary(project).ca_sha256
    assert [role for role, _ in board_record.images] == [
        "bootloader",
        "partition-table",
        "otadata",
        "app",
    ]


def test_flash__second_flash_writes_nothing(
    project: Path, board: virtual_board.VirtualBoard
) -> None:
    run(project, "flash")
    code, _, text = run_with_output(project, "flash")
    assert code == 0
    assert written_bytes(text) == 0
    assert text.count("unchanged") == 4


def test_flash__a_changed_app_rewrites_only_the_app(
    project: Path, board: virtual_board.VirtualBoard
) -> None:
    run(project, "flash")
    edit(project, "version: 1.0.0", "version: 1.0.2")
    code, _, text = run_with_output(project, "flash")
    assert code == 0, text
    app_offset, app = images(project)["app"]
    assert written_bytes(text) == len(app)
    assert board.read(app_offset, len(app)) == app


def test_flash__otadata_is_always_reset(project: Path, board: virtual_board.VirtualBoard) -> None:
    run(project, "flash")
    table = formats.from_bin(images(project)["partition-table"][1])
    assert table.otadata is not None
    ota_0 = table.ota_slots[0]
    board.write(table.otadata.offset, otadata.OtadataEntry.for_seq(1).to_bytes())
    assert run(project, "flash")[0] == 0
    assert board.read(table.otadata.offset, 0x2000) == b"\xff" * 0x2000
    assert otadata.boot_slot(table, board.read(table.otadata.offset, 0x2000))[0] != ota_0


def test_flash__changed_layout_erases_the_chip(
    project: Path, board: virtual_board.VirtualBoard
) -> None:
    run(project, "flash")
    board.write(0x3F0000, b"stale data from the old layout")
    edit(project, "layout: two_ota ", "layout: two_ota_coredump ")
    assert run(project, "build")[0] == 0
    code, _, text = run_with_output(project, "flash")
    assert code == 0, text
    assert "erasing the whole chip: the board's partition table differs from the new one" in text
    assert board.read(0x3F0000, 30) == b"\xff" * 30


def test_flash__erase_option(project: Path, board: virtual_board.VirtualBoard) -> None:
    run(project, "flash")
    board.write(0x3F0000, b"leftover")
    code, _, text = run_with_output(project, "flash", "--erase")
    assert code == 0
    assert "erasing the whole chip: --erase was given" in text
    assert board.read(0x3F0000, 8) == b"\xff" * 8


def test_flash__wrong_chip(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with virtual_board.VirtualBoard(
        project / "c3.bin", target="esp32c3", flash_size=4 * MiB
    ) as other:
        monkeypatch.setenv("ESPPORT", other.port)
        code, _, text = run_with_output(project, "flash")
    assert code == 1
    assert "board is ESP32-C3, project.yaml says esp32 (ESP32)" in text


def test_flash__a_board_with_less_flash_than_the_layout(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The virtual board's flash id says its own size, as a real chip's JEDEC id does.
    flash_file = project / "small.bin"
    with virtual_board.VirtualBoard(flash_file, target="esp32", flash_size=2 * MiB) as small:
        monkeypatch.setenv("ESPPORT", small.port)
        code, _, text = run_with_output(project, "flash")
    assert code == 1
    assert (
        "the board's flash is 2MB, project.yaml says flash.size 4MB; set flash.size (and a "
        "layout that fits) or use a module with more flash"
    ) in text
    assert flash_file.read_bytes() == b"\xff" * (2 * MiB)  # nothing was written


def test_flash__no_port(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESPPORT", raising=False)
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    code, _, text = run_with_output(project, "flash")
    assert code == 1
    assert "no serial port found; plug the board in with a data cable" in text


def test_flash__missing_image_is_rebuilt_first(
    project: Path, board: virtual_board.VirtualBoard
) -> None:
    app_file = summary(project).app_file
    app_file.unlink()
    code, results, text = run_with_output(project, "flash")
    assert code == 0, text
    assert results["build:factory:idf"] == "success"  # idf.py makes it again, as it was
    assert app_file.exists()


def test_status__factory_then_ota_0(project: Path, board: virtual_board.VirtualBoard) -> None:
    run(project, "flash")
    code, _, text = run_with_output(project, "status")
    assert code == 0, text
    assert "boots: factory (no valid otadata entry: Defaulting to factory image)" in text
    bootloader = images(project)["bootloader"][1]
    assert (
        f"bootloader at 0x1000: {len(bootloader)} bytes, SHA-256 "
        f"{hashlib.sha256(bootloader).hexdigest()[:16]}, chip revision v0.0 - v3.99" in text
    )
    assert "factory          simple_ota 1.0.0 (ESP-IDF v5.3.2)" in text
    assert "ota_0            no app" in text
    table = formats.from_bin(images(project)["partition-table"][1])
    assert table.otadata is not None
    board.write(table.otadata.offset, otadata.OtadataEntry.for_seq(1).to_bytes())
    _, _, text = run_with_output(project, "status")
    assert "otadata[0]: seq 1, state undefined, CRC ok, valid" in text
    assert "boots: ota_0 (otadata[0] seq 1 (undefined) -> ota_0)" in text


def test_boot__refuses_an_empty_slot_then_selects_a_full_one(
    project: Path, board: virtual_board.VirtualBoard
) -> None:
    run(project, "flash")
    code, _, text = run_with_output(project, "boot", "--slot", "ota_0")
    assert code == 1
    assert "--slot ota_0: there is no valid app image at 0x110000" in text
    table = formats.from_bin(images(project)["partition-table"][1])
    board.write(table.ota_slots[0].offset, images(project)["app"][1])
    code, _, text = run_with_output(project, "boot", "--slot", "ota_0")
    assert code == 0, text
    assert (
        otadata.boot_slot(table, board.read(table.otadata.offset, 0x2000))[0] == table.ota_slots[0]
    )  # type: ignore[union-attr]
    code, _, _ = run_with_output(project, "boot", "--slot", "factory")
    assert code == 0
    assert board.read(table.otadata.offset, 0x2000) == b"\xff" * 0x2000  # type: ignore[union-attr]


def test_flash__espbaud_must_be_a_number(
    project: Path, board: virtual_board.VirtualBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPBAUD", "fast")
    code, _, text = run_with_output(project, "flash")
    assert code == 1
    assert "ESPBAUD='fast' is not a baud rate; use a number like 460800" in text


def test_flash__erasing_refused_on_secured_boards_and_without_the_stub() -> None:
    from esp_ota_doit.device.flash import _erase_first
    from esp_ota_doit.errors import DeviceError

    with pytest.raises(DeviceError) as caught:
        _erase_first(None, "--erase was given", "flash encryption", True)
    assert str(caught.value) == (
        "cannot erase the chip (--erase was given): flash encryption is enabled on this board "
        "and esptool refuses to erase it; flash it with idf.py encrypted-flash as ESP-IDF "
        "documents"
    )
    with pytest.raises(DeviceError) as caught:
        _erase_first(None, "the board's partition table differs", None, False)
    assert str(caught.value).startswith(
        "the chip needs erasing (the board's partition table differs), which needs the flasher "
        "stub, and this build sets CONFIG_ESPTOOLPY_NO_STUB"
    )
    _erase_first(None, None, "secure boot", False)  # nothing to erase: nothing refused


def test_flash__unreadable_app_summary(project: Path) -> None:
    from esp_ota_doit.errors import ToolError

    (project / "build" / "factory" / "app.json").write_text("{not json")
    with pytest.raises(
        ToolError, match=r"app\.json: cannot be read \(not JSON: .*\); run doit build"
    ):
        outputs.read(project / "build" / "factory" / "app.json")


def test_boot__needs_a_slot(project: Path) -> None:
    code, _, text = run_with_output(project, "boot")
    assert code == 1
    assert "doit boot needs --slot NAME (factory, ota_0, ...)" in text
