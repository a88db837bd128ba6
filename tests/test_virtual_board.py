"""The virtual board is a chip as sold today: esptool reads each target's current revision from
it, so real images with ESP-IDF's default minimum revision flash; `--fail chip-rev` shows
esptool refusing a build for a newer one."""

from __future__ import annotations

from pathlib import Path

import pytest
from esp_ota_doit.firmware import outputs
from esp_ota_doit.idf import chips

from tests.doitrun import run_with_output

pytest.importorskip(
    "esp32_mock_bootloader", reason="esp32-mock-bootloader not installed (pip install -e '.[test]')"
)


@pytest.mark.parametrize("target", chips.TARGETS)
def test_revision_registers__esptool_reads_the_revision_back(target: str) -> None:
    """esptool's own ROM class, reading the registers, gets the revision we meant."""
    from esp_ota_doit.rehearsal.virtual_board import revision_registers
    from esptool.targets import CHIP_DEFS

    for revision in {chips.CHIPS[target].revision, 0, 1, 100, 101, 301}:
        registers = revision_registers(target, revision)
        rom = object.__new__(CHIP_DEFS[target])
        rom.read_reg = lambda address, registers=registers: registers.get(address, 0)
        assert rom.get_chip_revision() == revision, (target, revision)


def test_virtual_board__reports_current_silicon(tmp_path: Path) -> None:
    from esp_ota_doit.device import esplink
    from esp_ota_doit.rehearsal.virtual_board import VirtualBoard

    board = VirtualBoard(tmp_path / "flash.bin", target="esp32c3", flash_size=4 << 20)
    with board, esplink.connect(board.link, 115200, "esp32c3", stub=False) as esp:
        assert esp.get_chip_revision() == chips.CHIPS["esp32c3"].revision == 4
        assert esp.get_chip_description().endswith("(QFN32) (revision v0.4)")


def test_rehearse__chip_rev_shows_esptools_refusal(rehearsal: Path) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "chip-rev")
    assert code == 0, text
    assert (
        "build: factory made for chip revision v3.2 and later (CONFIG_ESP_REV_MIN_FULL=302); "
        "the board is v3.1" in text
    )
    assert text.rstrip().endswith(
        "the board was not written: esptool: Input requires chip revision in range v3.2 - v3.99 "
        "(this chip is revision v3.1). Use --force to flash anyway."
    )
    # Nothing reached the board: its flash file is as erased as before the story.
    flash_file = rehearsal / "build/virtual/esp32-flash.bin"
    assert not flash_file.exists() or set(flash_file.read_bytes()) == {0xFF}
    # The build itself is untouched; the refused images sit apart.
    summary = outputs.read(rehearsal / "build/virtual/factory/app.json")
    assert "chip-rev" not in str(summary.app_file)
    assert (rehearsal / "build/virtual/chip-rev/app.json").is_file()
