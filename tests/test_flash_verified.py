"""Nothing unverified reaches a board: `doit flash` re-hashes every image against the build's
app.json (SHA-256, never the size) and verifies the app's signature with the project's key before
a byte is written; the board record keeps the key the board trusts and its eFuse secure_version,
and `doit serve`/`doit publish` name each board that would refuse what they serve.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from esp_ota_doit.device import flash, record
from esp_ota_doit.errors import DeviceError
from esp_ota_doit.firmware import outputs, signing_key
from esp_ota_doit.idf import signing
from esp_ota_doit.paths import Paths
from esp_ota_doit.rehearsal import virtual_board
from esp_ota_doit.wiring import load_project, release_lock

from tests.doitrun import doit_process, edit, run_with_output

pytest.importorskip(
    "esp32_mock_bootloader", reason="esp32-mock-bootloader not installed (pip install -e '.[test]')"
)
MiB = 1024 * 1024


@pytest.fixture
def signed(project_dir: Path, idf: Path) -> Path:
    """The example with ota.sign: rsa3072, built (keys/signing_key.pem made by the graph)."""
    edit(project_dir, "  image: hello_world\n", "  image: hello_world\n  sign: rsa3072\n")
    code, _, text = run_with_output(project_dir, "build")
    assert code == 0, text
    release_lock()
    return project_dir


@pytest.fixture
def board(signed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[virtual_board.VirtualBoard]:
    with virtual_board.VirtualBoard(
        signed / "build" / "virtual" / "esp32-flash.bin", target="esp32", flash_size=4 * MiB
    ) as device:
        monkeypatch.setenv("ESPPORT", device.port)
        yield device


def _plan(project_dir: Path) -> flash.FlashPlan:
    project = load_project()
    keys = signing_key.plan(project, os.environ, Paths(project_dir).keys)
    return flash.plan(project, Paths(project_dir), signing=keys)


def _app(project_dir: Path) -> Path:
    return outputs.read(project_dir / "build/factory/app.json").app_file


def _resign_with_a_foreign_key(image: Path, scratch: Path) -> None:
    """What the audit did: the same image, signed with another key; the size is unchanged."""
    foreign = scratch / "foreign" / "signing_key.pem"
    signing.new_key("rsa3072", foreign)
    data = image.read_bytes()
    tampered = signing.sign(foreign, data[: -signing.SECTOR])
    assert len(tampered) == len(data) and tampered != data
    image.write_bytes(tampered)


def test_flash__refuses_an_image_changed_after_the_build(
    signed: Path, board: virtual_board.VirtualBoard, tmp_path: Path
) -> None:
    before = board.read(0, 4 * MiB)
    app = _app(signed)
    _resign_with_a_foreign_key(app, tmp_path)
    with pytest.raises(DeviceError) as caught:
        flash.write(_plan(signed), port=board.link)
    assert str(caught.value) == (
        f"{app} is not the image `doit build` made (its SHA-256 differs from the one in "
        f"{signed / 'build/factory/app.json'}); nothing was written: run `doit build`"
    )
    assert board.read(0, 4 * MiB) == before  # not a byte written
    assert not list((signed / "build/boards").glob("*.json"))


def test_flash__refuses_an_app_the_project_key_did_not_sign(
    signed: Path, board: virtual_board.VirtualBoard, tmp_path: Path
) -> None:
    """Even with app.json rewritten to match, a signature by another key is not flashed."""
    before = board.read(0, 4 * MiB)
    app = _app(signed)
    _resign_with_a_foreign_key(app, tmp_path)
    summary = signed / "build/factory/app.json"
    import hashlib

    recorded = outputs.read(summary).image("app")
    assert recorded is not None
    summary.write_text(
        summary.read_text().replace(recorded.sha256, hashlib.sha256(app.read_bytes()).hexdigest())
    )
    with pytest.raises(DeviceError) as caught:
        flash.write(_plan(signed), port=board.link)
    message = str(caught.value)
    assert message.startswith(f"{app}: ")
    assert "signature does not verify with the key" in message
    assert message.endswith("nothing was written: run `doit build`")
    assert board.read(0, 4 * MiB) == before


def test_doit_flash__a_changed_image_is_built_again_never_flashed(
    signed: Path, board: virtual_board.VirtualBoard, tmp_path: Path
) -> None:
    """Through doit, the build's own check (SHA-256, not size) makes it stale: `doit flash`
    builds it again first, says why, and the board gets only the project-signed image."""
    app = _app(signed)
    _resign_with_a_foreign_key(app, tmp_path)
    result = doit_process(signed, "flash", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"warning: {app} changed since build:factory:sign made it (SHA-256)" in result.stderr
    assert ".  build:factory" in result.stdout
    key = (signed / "keys" / "signing_key.pem").read_bytes()
    signing.verify(app.read_bytes(), key, app.name)
    factory = board.read(0x10000, len(app.read_bytes()))
    signing.verify(factory, key, "factory on the board")


def test_record__trusted_key_and_efuse_secure_version(
    signed: Path, board: virtual_board.VirtualBoard
) -> None:
    code, _, text = run_with_output(signed, "flash")
    assert code == 0, text
    board_record = record.read(next((signed / "build" / "boards").glob("*.json")))
    key = (signed / "keys" / "signing_key.pem").read_bytes()
    assert board_record.trusted_key_sha256 == signing.public_key_digest(key)
    assert board_record.efuse_secure_version == 0
    assert board_record.to_json()["trusted_key_sha256"] == board_record.trusted_key_sha256


def test_serve__warns_after_the_key_is_rotated(
    signed: Path, board: virtual_board.VirtualBoard
) -> None:
    """After rotate-signing-key the served image is signed with a key no flashed board trusts:
    `doit publish` (and `doit serve`, the same check) names the board."""
    code, _, text = run_with_output(signed, "flash")
    assert code == 0, text
    release_lock()
    old = signing.public_key_digest((signed / "keys" / "signing_key.pem").read_bytes())
    code, _, text = run_with_output(signed, "rotate-signing-key")
    assert code == 0, text
    release_lock()
    code, _, text = run_with_output(signed, "publish")
    assert code == 0, text
    board_record = record.read(next((signed / "build" / "boards").glob("*.json")))
    new = signing.public_key_digest((signed / "keys" / "signing_key.pem").read_bytes())
    assert (
        f"board {board_record.mac}: its app trusts signing key {old[:16]}… only, and "
        f"hello_world.bin is signed with key {new[:16]}…; it will refuse this update"
    ) in text


def test_record__older_records_still_read(tmp_path: Path) -> None:
    """A record written before the key digest and eFuse fields: unknown key, eFuse as flashed."""
    import json

    from tests.test_serve import BOARD

    data = BOARD.to_json()
    del data["trusted_key_sha256"], data["efuse_secure_version"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    old = record.read(path)
    assert old.trusted_key_sha256 is None
    assert old.efuse_secure_version == BOARD.app.secure_version
