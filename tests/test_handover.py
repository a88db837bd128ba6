"""The files tasks hand over (app.json, build/boards/<mac>.json) and the one reader of each shared
concept: the typed owners round-trip, and refuse a file of another schema with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from esp_ota_doit.device import board, record
from esp_ota_doit.errors import DeviceError, ToolError
from esp_ota_doit.firmware import outputs, repro
from esp_ota_doit.idf import esp_image
from esp_ota_doit.idf.partition import formats

from tests.test_serve import BOARD, cached_image
from tests.test_serve import summary as app_summary

SUMMARY = app_summary("factory", Path("factory.bin"), b"image", ca_sha256="c" * 64)


def test_app_summary__round_trips_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    assert outputs.write(path, SUMMARY)
    assert not outputs.write(path, SUMMARY)  # unchanged: not rewritten
    assert outputs.read(path) == SUMMARY
    data = json.loads(path.read_text())
    assert data["schema"] == outputs.SCHEMA
    assert data["images"][0] == {
        "role": "bootloader",
        "offset": "0x1000",
        "file": "b.bin",
        "size": 1,
        "sha256": "b" * 64,
        "encrypted": False,
    }
    assert SUMMARY.app_file == Path("factory.bin") and SUMMARY.version == "1.0.1"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("schema"), "not an app summary of schema 1 (no schema)"),
        (lambda d: d.update(schema=0), "not an app summary of schema 1 (schema 0)"),
        (lambda d: d.pop("target"), "not a valid app summary ('target' is not str)"),
        (
            lambda d: d["app_image"].update(size=True),
            "not a valid app summary ('size' is not int)",
        ),
        (
            lambda d: d["images"][0].update(offset="0xzz"),
            "not a valid app summary (offset '0xzz' is not hexadecimal)",
        ),
        (lambda d: d["images"].pop(), "names no app image"),
    ],
)
def test_app_summary__refuses_another_shape(tmp_path: Path, change: object, problem: str) -> None:
    path = tmp_path / "app.json"
    data = SUMMARY.to_json()
    data = json.loads(json.dumps(data))
    change(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))
    with pytest.raises(ToolError) as caught:
        outputs.read(path)
    assert str(caught.value) == f"{path}: {problem}; run doit build"


def test_app_summary__missing_or_not_json(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    with pytest.raises(ToolError, match=r"app\.json: missing; run `doit build:x` first$"):
        outputs.read(path, fix="run `doit build:x` first")
    path.write_text("[")
    with pytest.raises(ToolError, match=r"app\.json: cannot be read \(not JSON: .*\); run doit"):
        outputs.read(path)


def test_board_record__round_trips_and_refuses_another_schema(tmp_path: Path) -> None:
    path = record.write(tmp_path, BOARD)
    assert path.name == "240ac4000001.json"
    assert record.read(path) == BOARD
    data = json.loads(path.read_text())
    assert data["images"]["bootloader"] == {"offset": "0x1000", "sha256": "b" * 64, "size": 1}
    data["schema"] = 2
    path.write_text(json.dumps(data))
    with pytest.raises(ToolError) as caught:
        record.read(path)
    assert str(caught.value) == (
        f"{path}: not a board record of schema 1 (schema 2); run doit flash"
    )
    data["schema"] = 1
    data["app"]["secure_version"] = "1"
    path.write_text(json.dumps(data))
    with pytest.raises(ToolError) as caught:
        record.read(path)
    assert str(caught.value) == (
        f"{path}: not a valid board record ('secure_version' is not int); run doit flash"
    )


# --- one reader per concept ------------------------------------------------------------------


def test_app_desc__the_one_descriptor_reader() -> None:
    data = cached_image(version="2.5")
    desc = esp_image.app_desc(data[: esp_image.APP_DESC_END])
    assert desc is not None and desc.version == "2.5"
    assert desc == esp_image.app_desc(data)
    app = esp_image.read_app(data, "esp32")
    assert (app.version, app.project_name, app.secure_version) == (
        desc.version,
        desc.project_name,
        desc.secure_version,
    )
    assert esp_image.app_desc(b"\xff" * esp_image.APP_DESC_END) is None  # an erased slot
    assert esp_image.app_desc(data[: esp_image.APP_DESC_END - 1]) is None  # too short
    broken = bytearray(data)
    broken[0x20] ^= 0xFF  # the descriptor magic
    assert esp_image.app_desc(bytes(broken)) is None


def test_read_table__the_one_board_table_reader() -> None:
    from esp_ota_doit.idf.partition import rules

    table = rules.layout(rules.preset("two_ota"), table_offset=0x8000, path=())
    flash = {0x8000: formats.to_bin(table)}

    def read(offset: int, size: int) -> bytes:
        return flash.get(offset, b"").ljust(size, b"\xff")[:size]

    assert board.read_table(read, 0x8000) == table
    with pytest.raises(DeviceError, match="no partition table at 0x9000; run doit flash"):
        board.read_table(read, 0x9000)
    flash[0x8000] = b"\x00" * 64
    with pytest.raises(DeviceError, match="the board's partition table at 0x8000 is invalid: "):
        board.read_table(read, 0x8000)


def test_first_difference__a_truncated_image_is_named_by_offset() -> None:
    image = cached_image()
    truncated = image[:19] + bytes([image[19] ^ 1])
    assert repro.first_difference(image[:20], truncated, "esp32") == "byte 0x13"
    changed = bytearray(image)
    changed[len(image) // 2] ^= 1
    assert repro.first_difference(image, bytes(changed), "esp32").startswith("segment ")
