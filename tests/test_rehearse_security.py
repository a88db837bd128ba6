"""The rehearsal of signed images, rollback and anti-rollback on the virtual board: after each
story the flash file's otadata holds exactly what ESP-IDF v5.3.2's bootloader and esp_ota_ops
leave (bootloader_utility.c, esp_ota_ops.c), decoded and asserted entry by entry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from esp_ota_doit.idf import otadata
from esp_ota_doit.idf.partition import formats

from tests.doitrun import edit, run_with_output

pytest.importorskip(
    "esp32_mock_bootloader", reason="esp32-mock-bootloader not installed (pip install -e '.[test]')"
)

_EMPTY = (0xFFFFFFFF, otadata.UNDEFINED)
# No factory: ESP-IDF's anti-rollback refuses a table with one.
_NO_FACTORY = """partitions:
  table_offset: 0x8000
  layout:
    - {name: nvs, type: data, subtype: nvs, size: 0x4000}
    - {name: otadata, type: data, subtype: ota, size: 0x2000}
    - {name: phy_init, type: data, subtype: phy, size: 0x1000}
    - {name: ota_0, type: app, subtype: ota_0, size: 1M}
    - {name: ota_1, type: app, subtype: ota_1, size: 1M}
"""


def _ota(project: Path, extra: str) -> None:
    lines = "".join(f"\n  {item.strip()}" for item in extra.split(","))
    edit(project, "  image: hello_world\n", f"  image: hello_world{lines}\n")


def _otadata(project: Path) -> list[tuple[int, int]]:
    """(seq, state) of both copies in build/virtual/esp32-flash.bin; each CRC must be right."""
    flash_file = (project / "build/virtual/esp32-flash.bin").read_bytes()
    table = formats.from_bin(flash_file[0x8000 : 0x8000 + 0xC00])
    assert table.otadata is not None
    raw = flash_file[table.otadata.offset : table.otadata.offset + 0x2000]
    entries = otadata.decode(raw)
    for index, entry in enumerate(entries):
        if entry.seq != 0xFFFFFFFF:
            assert entry.crc == otadata.crc(entry.seq)
            assert entry.label == b"\xff" * 20
        # The rest of each sector stays erased (write_otadata erases the sector first).
        assert raw[index * 0x1000 + 32 : (index + 1) * 0x1000] == b"\xff" * (0x1000 - 32)
    return [(entry.seq, entry.state) for entry in entries]


def test_rehearse__signed_update_verifies(rehearsal: Path) -> None:
    _ota(rehearsal, "sign: rsa3072")
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    assert "secure_boot_v2: Take trusted digest key(s) from running app; verified" in text
    assert "\nbooted ota_0: hello_world 1.0.1\n" in text
    key = rehearsal / "keys" / "signing_key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (rehearsal / "keys").stat().st_mode & 0o777 == 0o700
    # Without rollback esp_ota_set_boot_partition writes ESP_OTA_IMG_UNDEFINED.
    assert _otadata(rehearsal) == [(1, otadata.UNDEFINED), _EMPTY]


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        ("bad-signature", "Secure boot signature verification failed (image valid, signature bad)"),
        (
            "wrong-key",
            "Secure boot signature verification failed (signed with a key the running app "
            "does not trust)",
        ),
    ],
)
def test_rehearse__bad_signatures_are_refused(rehearsal: Path, failure: str, cause: str) -> None:
    _ota(rehearsal, "sign: rsa3072")
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", failure)
    assert code == 0, text
    assert "booted factory: simple_ota 1.0.0" in text
    assert "the board still boots factory; the update was refused: Image validation failed" in text
    assert cause in text
    assert _otadata(rehearsal) == [_EMPTY, _EMPTY]  # never pointed at ota_0


def test_rehearse__signature_failures_need_ota_sign(rehearsal: Path) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "wrong-key")
    assert code == 1
    assert "--fail wrong-key rehearses a feature this project has off; set ota.sign" in text


def test_rehearse__rollback_an_app_that_never_confirms_rolls_back(rehearsal: Path) -> None:
    # hello_world never calls esp_ota_mark_app_valid_cancel_rollback() and restarts itself.
    _ota(rehearsal, "rollback: true")
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 1, text
    assert "warning: app 'hello_world' never calls esp_ota_mark_app_valid_cancel_rollback()" in text
    assert "app: ota_0 runs pending verify; its code never calls" in text
    assert "boot: otadata[0] 1: pending verify -> aborted (rollback)" in text
    assert "\nbooted factory: simple_ota 1.0.0\n" in text
    assert (
        "the update did not hold: ota_0 did not confirm itself before the reset, so the "
        "bootloader marked it aborted and booted the previous app (factory); app 'hello_world' "
        "never calls esp_ota_mark_app_valid_cancel_rollback(): call it once the app is known "
        "good (or set apps.hello_world.confirms_update: true where it does so out of sight)"
    ) in text
    assert _otadata(rehearsal) == [(1, otadata.ABORTED), _EMPTY]


def test_rehearse__rollback_confirms_the_new_app(rehearsal: Path) -> None:
    _ota(rehearsal, "rollback: true")
    edit(rehearsal, "version: 1.0.1}", "version: 1.0.1, confirms_update: true}")
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    assert "boot: otadata[0]: new -> pending verify" in text
    assert "app: esp_ota_mark_app_valid_cancel_rollback(): ota_0 is valid" in text
    assert "\nbooted ota_0: hello_world 1.0.1\n" in text
    assert _otadata(rehearsal) == [(1, otadata.VALID), _EMPTY]


def test_rehearse__no_confirm_rolls_back(rehearsal: Path) -> None:
    _ota(rehearsal, "rollback: true")
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "no-confirm")
    assert code == 0, text
    assert "boot: otadata[0] 1: pending verify -> aborted (rollback)" in text
    assert "boot: Defaulting to factory image" in text
    assert "booted factory: simple_ota 1.0.0" in text
    assert "the board rolled back to factory: ota_0 did not confirm itself" in text
    assert _otadata(rehearsal) == [(1, otadata.ABORTED), _EMPTY]


def _anti_rollback(project: Path) -> None:
    old = "partitions:\n  table_offset: 0x8000\n  layout: two_ota "
    text = (project / "project.yaml").read_text()
    start = text.index(old)
    end = text.index("\n", start + len(old)) + 1
    (project / "project.yaml").write_text(text[:start] + _NO_FACTORY + text[end:])
    edit(project, "ota_client: true}", "ota_client: true, secure_version: 1}")
    edit(project, "version: 1.0.1}", "version: 1.0.1, secure_version: 2, confirms_update: true}")
    _ota(project, "rollback: true, sign: rsa3072")


def test_rehearse__anti_rollback_update(rehearsal: Path) -> None:
    _anti_rollback(rehearsal)
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    assert "this rehearsal burns nothing" in text
    assert "boot: Set actual ota_seq=1 in otadata[0]" in text
    assert "eFuse field is updated(1) (virtual)" in text
    assert "eFuse field is updated(2) (virtual)" in text
    assert "\nbooted ota_1: hello_world 1.0.1\n" in text
    # otadata[0]: the bootloader's set_actual_ota_seq; otadata[1]: the update, confirmed.
    assert _otadata(rehearsal) == [(1, otadata.VALID), (2, otadata.VALID)]


def test_rehearse__downgrade_is_refused(rehearsal: Path) -> None:
    _anti_rollback(rehearsal)
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "downgrade")
    assert code == 0, text
    assert "ESP_ERR_OTA_SMALL_SEC_VER" in text
    assert "secure version is lower than stored in efuse. Partition will be erased." in text
    assert "the board still boots ota_0; the update was refused" in text
    assert _otadata(rehearsal) == [(1, otadata.VALID), _EMPTY]
    flash_file = (rehearsal / "build/virtual/esp32-flash.bin").read_bytes()
    ota_1 = 0x120000
    assert flash_file[ota_1 : ota_1 + 0x1000] == b"\xff" * 0x1000  # the slot was erased


# --- the failure rehearsals on the RISC-V targets with both schemes (esp32c6, esp32h2) -------

_TARGETS = {
    "esp32c6": "flash: {size: 4MB, mode: dio, freq: 40m, port: null, baud: 460800}",
    "esp32h2": "flash: {size: 4MB, mode: dio, freq: 64m, port: null, baud: 460800}",
}


def _retarget(project: Path, target: str) -> None:
    edit(project, "target: esp32\n", f"target: {target}\n")
    edit(
        project,
        "flash: {size: 4MB, mode: dio, freq: 40m, port: null, baud: 460800}",
        _TARGETS[target],
    )
    if target == "esp32h2":  # no Wi-Fi: the OTA examples use Ethernet there
        text = (project / "project.yaml").read_text()
        start = text.index("wifi: {")
        (project / "project.yaml").write_text(text[:start] + text[text.index("\n", start) + 1 :])


def _flash_file(project: Path, target: str) -> bytes:
    return (project / f"build/virtual/{target}-flash.bin").read_bytes()


@pytest.mark.parametrize(("target", "scheme"), [("esp32c6", "ecdsa256"), ("esp32h2", "rsa3072")])
def test_rehearse__wrong_key_on_riscv_targets(rehearsal: Path, target: str, scheme: str) -> None:
    _retarget(rehearsal, target)
    _ota(rehearsal, f"sign: {scheme}")
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "wrong-key")
    assert code == 0, text
    assert "Traceback" not in text
    assert "signed with a key the running app does not trust" in text
    assert "the board still boots factory; the update was refused" in text


@pytest.mark.parametrize("target", ["esp32c6", "esp32h2"])
def test_rehearse__downgrade_on_riscv_targets(rehearsal: Path, target: str) -> None:
    _retarget(rehearsal, target)
    _anti_rollback(rehearsal)
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "downgrade")
    assert code == 0, text
    assert "ESP_ERR_OTA_SMALL_SEC_VER" in text
    assert "the board still boots ota_0; the update was refused" in text
    assert _flash_file(rehearsal, target)[0x120000:0x121000] == b"\xff" * 0x1000


def test_rehearse__board_record_keeps_the_efuse_and_the_trusted_key(rehearsal: Path) -> None:
    """After the confirmed update the virtual board's record holds the eFuse secure_version it
    reached (2, from the new app) and the key the new app trusts."""
    from esp_ota_doit.device import record
    from esp_ota_doit.idf import signing

    _anti_rollback(rehearsal)
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    (path,) = (rehearsal / "build/virtual/boards").glob("*.json")
    board = record.read(path)
    assert board.efuse_secure_version == 2
    key = (rehearsal / "keys" / "signing_key.pem").read_bytes()
    assert board.trusted_key_sha256 == signing.public_key_digest(key)
