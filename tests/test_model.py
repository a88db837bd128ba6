"""project.yaml -> Project: defaults, typed values, host resolution and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from esp_ota_doit import model, reference
from esp_ota_doit.errors import ConfigErrors

from tests.conftest import REPO

MINIMAL = """\
name: tiny
target: esp32c3
flash: {size: 4MB}
apps:
  main: {path: "idf:examples/get-started/hello_world", version: "1"}
flash_app: main
"""


def load(text: str, *, env: dict[str, str] | None = None, root: Path = REPO) -> model.Project:
    return model.load(
        text,
        file="project.yaml",
        env=env or {},
        resolve_host=lambda host: "10.0.0.7" if host == "auto" else host,
        project_dir=root,
    )


def errors(text: str, **kwargs: object) -> tuple[str, ...]:
    with pytest.raises(ConfigErrors) as caught:
        load(text, **kwargs)  # type: ignore[arg-type]
    return caught.value.lines


def test_load__the_example() -> None:
    project = load((REPO / "project.yaml").read_text())
    assert project.name == "ota-demo"
    assert project.flash.size == 4 * 1024 * 1024
    assert [app.name for app in project.apps] == ["factory", "hello_world"]
    assert [app.name for app in project.ota_clients] == ["factory"]
    assert project.ota is not None
    assert project.ota.url_text == "https://10.0.0.7:8070/hello_world.bin"
    assert project.ota.url.host == "auto"
    assert [p.name for p in project.table.partitions][-3:] == ["factory", "ota_0", "ota_1"]


def test_load__defaults_are_esp_idf_defaults() -> None:
    project = load(MINIMAL)
    assert project.idf.version == "5.3"
    assert project.flash.mode == "dio"
    assert project.flash.freq == "80m"  # ESP32-C3's Kconfig default
    assert project.flash.baud == 460800
    assert project.partitions.table_offset == 0x8000
    assert project.partitions.layout[0] == "two_ota"
    assert project.ota is None and project.wifi is None


def test_load__custom_rows_are_placed() -> None:
    text = MINIMAL.replace(
        "apps:",
        "partitions:\n  layout:\n"
        "    - {name: nvs, type: data, subtype: nvs, size: 24K}\n"
        "    - {name: otadata, type: data, subtype: ota, size: 0x2000}\n"
        "    - {name: ota_0, type: app, subtype: ota_0, size: 1536K}\n"
        "    - {name: ota_1, type: app, subtype: ota_1, size: 1536K}\n"
        "apps:",
    )
    table = load(text).table
    assert [(p.name, p.offset, p.size) for p in table.partitions] == [
        ("nvs", 0x9000, 0x6000),
        ("otadata", 0xF000, 0x2000),
        ("ota_0", 0x20000, 0x180000),
        ("ota_1", 0x1A0000, 0x180000),
    ]


def test_load__independent_errors_are_all_reported_in_file_order() -> None:
    text = MINIMAL.replace("esp32c3", "esp32x").replace("4MB", "3MB").replace('"1"', '""')
    lines = errors(text)
    assert [line.split(": ")[1] for line in lines] == ["target", "flash.size", "apps.main.version"]


def test_load__cross_rules_wait_for_valid_keys() -> None:
    # flash_app names no app, but the bad target is reported alone first.
    text = MINIMAL.replace("esp32c3", "esp32x").replace("flash_app: main", "flash_app: other")
    assert len(errors(text)) == 1


def test_load__secret_values_are_never_echoed() -> None:
    text = MINIMAL + 'wifi: {ssid: net, password: "${WIFI_PASSWORD}"}\n'
    (line,) = errors(text, env={"WIFI_PASSWORD": "abc"})
    assert "abc" not in line
    assert "wifi.password: a WPA2 passphrase has 8 to 63 characters, this one has 3" in line


def test_load__local_app_folder(tmp_path: Path) -> None:
    (tmp_path / "apps" / "main").mkdir(parents=True)
    (tmp_path / "apps" / "main" / "CMakeLists.txt").write_text("project(main)\n")
    project = load(
        MINIMAL.replace("idf:examples/get-started/hello_world", "apps/main"), root=tmp_path
    )
    assert not project.app("main").in_idf


def test_load__ota_host_resolution_is_injected() -> None:
    text = MINIMAL.replace("esp32c3", "esp32") + (
        "ota: {url: 'https://updates.example.org/fw/main.bin', image: main}\n"
    )
    project = load(text)
    assert project.ota is not None
    assert project.ota.host == "updates.example.org"
    assert project.ota.url.port == 443


def test_reference_rows__every_key_is_documented() -> None:
    rows = reference.reference_rows()
    keys = [key for key, _, _ in rows]
    assert "partitions.layout" in keys and "apps.<name>.version" in keys and "ota.cert.key" in keys
    assert all(doc for _, _, doc in rows)
