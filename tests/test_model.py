"""project.yaml -> Project: defaults, typed values, host resolution and messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from esp_ota_doit.config import loader, model, reference
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
    return loader.load(
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
    assert [app.name for app in project.apps if app.ota_client] == ["factory"]
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


@pytest.mark.parametrize(
    ("cert", "line"),
    [
        (
            "{key: ed25519}",
            "project.yaml:7:67: ota.cert.key: 'ed25519' is not one of: ec-p256, rsa-2048; "
            "valid: ec-p256, rsa-2048",
        ),
        ("{days: 0}", "project.yaml:7:68: ota.cert.days: 0 is out of range; use 1 to 3650"),
    ],
)
def test_load__the_server_cert_settings_are_checked_here(cert: str, line: str) -> None:
    """ota.cert is validated by the model only; certs.plan takes what it was given."""
    text = MINIMAL.replace("esp32c3", "esp32") + (
        f"ota: {{url: 'https://h.example/main.bin', image: main, cert: {cert}}}\n"
    )
    assert errors(text) == (line,)


def test_reference_rows__defaults_are_spelled_as_yaml() -> None:
    rows = {key: default for key, default, _ in reference.reference_rows()}
    assert rows["ota.cert.key"] == "ec-p256"
    assert rows["ota.sign"] == "null" and rows["ota.rollback"] == "false"
    assert rows["ota.cert"] == "{}" and rows["wifi.password"] == '""'
    assert rows["partitions.table_offset"] == "0x8000"


def test_reference_rows__every_key_is_documented() -> None:
    rows = reference.reference_rows()
    keys = [key for key, _, _ in rows]
    assert "partitions.layout" in keys and "apps.<name>.version" in keys and "ota.cert.key" in keys
    assert all(doc for _, _, doc in rows)


def _csv_project(root: Path, csv_name: str, csv_text: str, *, offset: str, size: str) -> str:
    (root / csv_name).write_text(csv_text)
    return MINIMAL.replace("esp32c3", "esp32").replace(
        "flash: {size: 4MB}",
        f"flash: {{size: {size}}}\npartitions: {{table_offset: {offset}, layout: {csv_name}}}",
    )


def _golden_cases() -> list[dict[str, str]]:
    import json

    index = REPO.parent / "shared" / "esp-idf" / "golden" / "index.json"
    if not index.exists():
        return []
    return [case for case in json.loads(index.read_text()) if "bin" in case]


@pytest.mark.parametrize(
    "case", _golden_cases(), ids=lambda c: f"{c['layout']}@{c['table_offset']}-{c['flash_size']}"
)
def test_load__layout_csv_gives_esp_idfs_own_bytes(
    case: dict[str, str], shared: Path, tmp_path: Path
) -> None:

    from esp_ota_doit.idf.partition import formats

    golden = shared / "esp-idf" / "golden"
    text = _csv_project(
        tmp_path,
        "my_table.csv",
        (golden / case["csv"]).read_text(),
        offset=case["table_offset"],
        size=case["flash_size"],
    )
    table = load(text, root=tmp_path).table
    assert formats.to_bin(table) == (golden / case["bin"]).read_bytes()


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        (
            "nvs, data, nvs, , 0x6000\nfactory, app, factory, 0x10001, 1M\n",
            "partitions.layout: t.csv:2: Partition factory invalid: Offset 0x10001 is not "
            "aligned to 0x10000; use a multiple of 0x10000",
        ),
        (
            "# comment\n\nnvs, data, nvs, , \n",
            "partitions.layout: t.csv:3: Size field can't be empty",
        ),
        (
            "nvs, data, nvs, , 0x6000\nfactory, app, factory, , 8M\n",
            "flash.size: Partitions tables occupies 8.1MB of flash (8454144 bytes) which does not "
            "fit in configured flash size 4MB; set flash.size to 16MB or larger, or make "
            "partitions.layout smaller",
        ),
    ],
)
def test_load__layout_csv_errors_name_the_csv_line(
    csv_text: str, expected: str, tmp_path: Path
) -> None:
    text = _csv_project(tmp_path, "t.csv", csv_text, offset="0x8000", size="4MB")
    (line,) = errors(text, root=tmp_path)
    assert line.split(": ", 1)[1] == expected


def test_load__layout_csv_that_is_missing(tmp_path: Path) -> None:
    text = MINIMAL.replace("apps:", "partitions: {layout: parts/missing.csv}\napps:")
    assert errors(text, root=tmp_path) == (
        "project.yaml:4:22: partitions.layout: 'parts/missing.csv' does not exist next to "
        "project.yaml; fix the path, or name a preset (singleapp, singleapp_large, two_ota, "
        "singleapp_coredump, singleapp_large_coredump, two_ota_coredump, singleapp_encr_nvs, "
        "singleapp_large_encr_nvs, two_ota_encr_nvs)",
    )


def test_load__idf_paths_are_checked_when_esp_idf_is_here(tmp_path: Path) -> None:
    (tmp_path / "examples" / "get-started" / "hello_world").mkdir(parents=True)
    typo = MINIMAL.replace("hello_world", "hello_wrold")

    def load_with_idf(text: str) -> model.Project:
        return loader.load(
            text,
            file="project.yaml",
            env={},
            resolve_host=lambda host: host,
            project_dir=REPO,
            idf_root=tmp_path,
        )

    assert load_with_idf(MINIMAL).app("main").in_idf
    with pytest.raises(ConfigErrors) as caught:
        load_with_idf(typo)
    assert caught.value.lines == (
        "project.yaml:5:16: apps.main.path: 'examples/get-started/hello_wrold' does not exist in "
        f"the ESP-IDF at {tmp_path}; fix the path (it is relative to $IDF_PATH), or check IDF_PATH",
    )
    load(typo)  # without ESP-IDF here (the rehearsal), the stand-in tree decides later


def test_load__a_local_folder_that_is_not_an_app(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    text = MINIMAL.replace("idf:examples/get-started/hello_world", "etc")
    assert errors(text, root=tmp_path) == (
        "project.yaml:5:16: apps.main.path: folder 'etc' is not an ESP-IDF app (no CMakeLists.txt "
        "that calls project()); name the folder that holds the app's top-level CMakeLists.txt",
    )


def test_load__own_wifi_options_go_together_and_are_not_set_twice(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'version: "1"}',
        'version: "1", wifi_ssid_option: CONFIG_MY_SSID,\n'
        '         sdkconfig: {CONFIG_MY_SSID: "x"}}',
    )
    lines = errors(text)
    assert [line.split(": ", 1)[1] for line in lines] == [
        "apps.main.wifi_ssid_option: wifi_ssid_option and wifi_password_option go together; "
        "set both, or neither for protocol_examples_common's",
        "apps.main.sdkconfig.CONFIG_MY_SSID: is set from wifi.ssid; remove it here",
    ]


def test_load__an_ota_gap_in_a_csv_names_its_line(tmp_path: Path) -> None:
    csv = (
        "# Name, Type, SubType, Offset, Size\n"
        "nvs, data, nvs, , 0x4000\notadata, data, ota, , 0x2000\n"
        "ota_0, app, ota_0, , 1M\n\nota_2, app, ota_2, , 1M\n"
    )
    text = _csv_project(tmp_path, "t.csv", csv, offset="0x8000", size="4MB") + (
        "ota: {url: 'https://h.example:8070/main.bin', image: main}\n"
    )
    (line,) = errors(text, root=tmp_path)
    assert line.split(": ", 1)[1] == (
        "partitions.layout: t.csv:6: partition 'ota_2' is OTA slot ota_2, but there is no ota_1: "
        "ESP-IDF counts consecutive slots from ota_0; make it ota_1"
    )


# --- the partition table follows idf.version -------------------------------------------------


def _with_release(text: str, release: str) -> str:
    return text.replace("apps:", f'idf: {{version: "{release}"}}\napps:', 1)


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("5.3", ""),
        ("5.4", ""),
        (
            "5.5",
            "partitions.layout: t.csv:2: Partition nvs invalid: 'nvs' partition of type 1 and "
            "subtype 2 of this size (0x2000) must be flagged as 'readonly' (the size of "
            "read/write NVS has to be at least 0x3000); make it 0x3000 or larger, or flag it "
            "readonly",
        ),
    ],
)
def test_load__layout_csv_rules_of_idf_version(release: str, expected: str, tmp_path: Path) -> None:
    csv = "# small nvs\nnvs, data, nvs, , 0x2000\nfactory, app, factory, , 1M\n"
    text = _with_release(_csv_project(tmp_path, "t.csv", csv, offset="0x8000", size="4MB"), release)
    if not expected:
        assert load(text, root=tmp_path).table.release == release
        return
    (line,) = errors(text, root=tmp_path)
    assert line.split(": ", 1)[1] == expected


def test_load__layout_csv_forced_rows_use_the_targets_bootloader_offset(tmp_path: Path) -> None:
    csv = "bl, bootloader, primary, N/A, N/A\nnvs, data, nvs, , 0x6000\nf, app, factory, , 1M\n"
    text = _with_release(_csv_project(tmp_path, "t.csv", csv, offset="0x9000", size="4MB"), "6.0")
    boot = load(text, root=tmp_path).table.partitions[0]
    assert (boot.offset, boot.size) == (0x1000, 0x8000)  # esp32: CONFIG_BOOTLOADER_OFFSET_IN_FLASH


ROWS = """\
partitions:
  layout:
    - {name: nvs, type: data, subtype: nvs, size: 0x6000}
    - {name: bl, type: bootloader, subtype: ota, size: 0x7000}
    - {name: factory, type: app, subtype: factory, size: 1M}
apps:"""


def test_load__layout_rows_keywords_of_idf_version() -> None:
    text = MINIMAL.replace("apps:", ROWS, 1)
    assert errors(_with_release(text, "5.3")) == (
        "project.yaml:7:24: partitions.layout[1].type: Value 'bootloader' is not valid. Known "
        "keywords: app, data",
    )
    table = load(_with_release(text, "5.4")).table
    assert (table.partitions[1].type, table.partitions[1].size) == (2, 0x7000)
    table = load(_with_release(text, "5.5")).table
    assert table.partitions[1].size == 0x8000  # forced: table offset - esp32c3's bootloader at 0


def test_load__preset_of_a_later_release() -> None:
    text = MINIMAL.replace("apps:", "partitions: {layout: two_ota_large}\napps:", 1)
    assert errors(_with_release(text, "5.3")) == (
        "project.yaml:4:22: partitions.layout: preset 'two_ota_large' is in ESP-IDF 5.4 and "
        'later, not in 5.3; set idf.version: "5.4" or later, or use another preset',
    )
    assert load(_with_release(text, "6.0")).table.ota_slots[1].size == 1700 * 1024


_CLIENT = """\
name: node
target: esp32
flash: {{size: 8MB}}
apps:
  node: {{path: sensor_node, version: 2.4.1, ota_client: true{extra}}}
flash_app: node
ota: {{url: "https://10.0.0.7:8070/node.bin", image: node}}
wifi: {{ssid: lab, password: secret-pass}}
"""


def test_load__an_ota_clients_url_and_wifi_options_come_from_its_kconfig(
    app_copy: Callable[[str], Path],
) -> None:
    from esp_ota_doit.firmware import defaults

    root = app_copy("sensor_node").parent
    project = load(_CLIENT.format(extra=""), root=root)
    app = project.app("node")
    assert (app.url_option, app.wifi_ssid_option, app.wifi_password_option) == (
        "CONFIG_SENSOR_OTA_URL",
        "CONFIG_SENSOR_WIFI_SSID",
        "CONFIG_SENSOR_WIFI_PASSWORD",
    )
    groups = dict(defaults.plan(project, app, partitions_csv=Path("p.csv")).groups)
    assert groups["OTA client"] == (("CONFIG_SENSOR_OTA_URL", '"https://10.0.0.7:8070/node.bin"'),)
    # url_option stays the override; a wrong one is the Kconfig check's to report.
    project = load(_CLIENT.format(extra=", url_option: CONFIG_SENSOR_REPORT_URL"), root=root)
    assert project.app("node").url_option == "CONFIG_SENSOR_REPORT_URL"
    kconfig = root / "sensor_node" / "main" / "Kconfig.projbuild"
    kconfig.write_text(kconfig.read_text().replace("http://192.168", "https://192.168"))
    assert errors(_CLIENT.format(extra=""), root=root) == (
        "project.yaml:5:57: apps.node.ota_client: 2 options of the app's Kconfig default to an "
        "https:// URL: CONFIG_SENSOR_OTA_URL (main/Kconfig.projbuild:11), CONFIG_SENSOR_REPORT_URL "
        "(main/Kconfig.projbuild:17); set apps.node.url_option to the option the app reads the "
        "firmware URL from",
    )


def test_load__layout_csv_that_is_not_text(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(b"nvs, data, nvs, , 0x6000\n\xff\xfe\n")
    text = MINIMAL.replace("apps:", "partitions: {layout: t.csv}\napps:")
    assert errors(text, root=tmp_path) == (
        "project.yaml:4:22: partitions.layout: 't.csv' cannot be read (not UTF-8 text)",
    )
