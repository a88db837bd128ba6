"""`esp-ota-doit init` on sample apps written like real ESP-IDF apps (tests/data/apps/), with
ESP-IDF v5.3.2's real Kconfig tree and kconfgen telling menuconfig choices from defaults."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from esp_ota_doit import cli
from esp_ota_doit.config import adopt, loader
from esp_ota_doit.idf import app_folder

AppCopy = Callable[[str], Path]

# What tests/data/apps/sensor_node/sdkconfig changed in menuconfig (its sdkconfig.defaults set
# the target, the flash size and the custom CSV); the Wi-Fi password is a secret, never carried.
SENSOR_CHOICES = {
    "CONFIG_COMPILER_OPTIMIZATION_SIZE": True,
    "CONFIG_ESP_MAIN_TASK_STACK_SIZE": 8192,
    "CONFIG_FREERTOS_HZ": 1000,
    "CONFIG_LOG_DEFAULT_LEVEL_WARN": True,
    "CONFIG_SENSOR_SAMPLE_PERIOD_MS": 500,
}


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _init(
    folder: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[str], list[str]]:
    code = cli.main(["init", str(folder), *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_init__custom_csv_app_with_its_own_options(
    app_copy: AppCopy,
    idf_v53: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = app_copy("sensor_node")
    before = _tree(folder)
    monkeypatch.setenv("IDF_PATH", str(idf_v53))
    code, out, err = _init(folder, capsys)
    assert (code, err) == (0, [])
    data = yaml.safe_load((folder / "project.yaml").read_text())
    app = data["apps"]["sensor_node"]
    assert data["name"] == "sensor-node"
    assert data["target"] == "esp32"
    assert data["flash"]["size"] == "8MB"
    assert data["partitions"] == {"table_offset": 0x8000, "layout": "partitions_8mb.csv"}
    assert app["path"] == "." and app["version"] == "2.4.1" and app["ota_client"] is True
    assert app["url_option"] == "CONFIG_SENSOR_OTA_URL"
    assert app["ca_cert"] == "main/ota_ca.pem"
    assert (app["wifi_ssid_option"], app["wifi_password_option"]) == (
        "CONFIG_SENSOR_WIFI_SSID",
        "CONFIG_SENSOR_WIFI_PASSWORD",
    )
    assert app["sdkconfig"] == SENSOR_CHOICES
    assert data["flash_app"] == data["ota"]["image"] == "sensor_node"
    assert data["ota"]["url"] == "https://auto:8443/fw/sensor-node.bin"
    # No default: a forgotten password is an error, not an empty one.
    assert data["wifi"] == {"ssid": "greenhouse", "password": "${WIFI_PASSWORD}"}
    assert "hunter22" not in (folder / "project.yaml").read_text()
    assert (folder / "dodo.py").read_text() == adopt.DODO
    # One line per fact, each saying where it came from.
    assert "version: 2.4.1 (from version.txt)" in out
    assert "target: esp32 (from sdkconfig)" in out
    assert any(
        line.startswith("URL option: CONFIG_SENSOR_OTA_URL (main/Kconfig.projbuild:11")
        for line in out
    )
    assert any(line.startswith("sdkconfig: 5 option(s)") for line in out)
    # Nothing of the app changed; only the two new files appeared.
    assert {
        k: v for k, v in _tree(folder).items() if k not in ("project.yaml", "dodo.py")
    } == before


def test_init__the_seed_shaped_app(app_copy: AppCopy, capsys: pytest.CaptureFixture[str]) -> None:
    folder = app_copy("ota_seed")  # no sdkconfig yet: no ESP-IDF needed
    code, out, err = _init(folder, capsys)
    assert (code, err) == (0, [])
    data = yaml.safe_load((folder / "project.yaml").read_text())
    app = data["apps"]["seed_ota"]
    assert data["partitions"]["layout"] == "two_ota"
    assert data["flash"]["size"] == "4MB"
    assert app["version"] == "0.9.0"
    assert app["url_option"] == "CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL"
    assert app["ca_cert"] == "server_certs/ca_cert.pem"
    assert "wifi_ssid_option" not in app and "sdkconfig" not in app
    assert data["ota"]["url"] == "https://auto:8070/hello_world.bin"
    assert "version: 0.9.0 (from CMakeLists.txt: set(PROJECT_VER))" in out
    assert (
        "target: esp32 (from ESP-IDF's default target, as neither an sdkconfig, a defaults file "
        "nor $IDF_TARGET names one; pass --target to choose another)"
    ) in out


def _refused(folder: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    before = _tree(folder)
    code, out, err = _init(folder, capsys, *args)
    assert code == 1 and out == [] and len(err) == 1, (code, out, err)
    assert _tree(folder) == before  # nothing written
    return err[0]


def test_init__not_an_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hi\n")
    line = _refused(tmp_path, capsys)
    assert line == (
        f"esp-ota-doit init: {tmp_path} is not an ESP-IDF app: no CMakeLists.txt that calls "
        "project(); run init in (or point it at) the app's folder"
    )


def test_init__two_url_options_are_listed_and_none_taken(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    kconfig = folder / "main" / "Kconfig.projbuild"
    kconfig.write_text(
        kconfig.read_text().replace(
            "endmenu",
            '    config EXAMPLE_BACKUP_URL\n        string "backup"\n'
            '        default "https://backup.example.org/fw.bin"\n\nendmenu',
        )
    )
    line = _refused(folder, capsys)
    assert line == (
        "esp-ota-doit init: URL option: 2 options default to an https:// URL: "
        "CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL (main/Kconfig.projbuild:3), CONFIG_EXAMPLE_BACKUP_URL "
        "(main/Kconfig.projbuild:13); pass --url-option NAME (the option your app reads the "
        "firmware URL from)"
    )
    code, _, _ = _init(folder, capsys, "--url-option", "CONFIG_EXAMPLE_BACKUP_URL")
    assert code == 0
    assert "url_option: CONFIG_EXAMPLE_BACKUP_URL" in (folder / "project.yaml").read_text()


def test_init__a_csv_error_names_its_line(
    app_copy: AppCopy,
    idf_v53: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = app_copy("sensor_node")
    csv = folder / "partitions_8mb.csv"
    csv.write_text(
        csv.read_text().replace("ota_1,    app,  ota_1,   ,", "ota_1,    app,  ota_1,   0x320001,")
    )
    monkeypatch.setenv("IDF_PATH", str(idf_v53))
    line = _refused(folder, capsys)
    assert line == (
        "esp-ota-doit init: partitions_8mb.csv:7: Partition ota_1 invalid: Offset 0x320001 is "
        "not aligned to 0x10000; use a multiple of 0x10000"
    )


def test_init__an_unreadable_sdkconfig(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    (folder / "sdkconfig").mkdir()  # as root, chmod 000 would still be readable
    line = _refused(folder, capsys)
    assert line == (
        f"esp-ota-doit init: {folder / 'sdkconfig'}: cannot be read (Is a directory); "
        "fix its permissions"
    )


def test_init__a_configured_app_without_esp_idf_loses_nothing_silently(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("sensor_node")
    line = _refused(folder, capsys)
    assert line == (
        "esp-ota-doit init: sdkconfig: ESP-IDF not found, so your menuconfig choices cannot be "
        "told from Kconfig's defaults; run init after ESP-IDF's export.sh (or set IDF_PATH), or "
        "pass --no-sdkconfig to leave them out"
    )
    code, out, _ = _init(folder, capsys, "--no-sdkconfig")
    assert code == 0 and "sdkconfig: left out (--no-sdkconfig)" in out


@pytest.mark.parametrize("existing", ["project.yaml", "dodo.py"])
def test_init__never_overwrites(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str], existing: str
) -> None:
    folder = app_copy("ota_seed")
    (folder / existing).write_text("mine\n")
    line = _refused(folder, capsys)
    assert line == (
        f"esp-ota-doit init: {existing} already in {folder}; init never overwrites: move it "
        "away first, or edit it by hand"
    )


def test_init__the_written_project_loads_as_doit_loads_it(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    assert _init(folder, capsys)[0] == 0
    project = loader.load(
        (folder / "project.yaml").read_text(),
        file="project.yaml",
        env={"WIFI_PASSWORD": "secret-pass"},
        resolve_host=lambda host: "192.0.2.7",
        project_dir=folder,
    )
    assert project.table.factory is not None and len(project.table.ota_slots) == 2
    assert (
        project.ota is not None and project.ota.url_text == "https://192.0.2.7:8070/hello_world.bin"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('idf_component_register(SRCS "a.c" EMBED_TXTFILES "ca.pem" b.pem)', ["ca.pem", "b.pem"]),
        (
            "idf_component_register(SRCS a.c\n  EMBED_FILES ${project_dir}/x.crt REQUIRES foo)",
            ["${project_dir}/x.crt"],
        ),
        ("# EMBED_TXTFILES old.pem\nidf_component_register(SRCS a.c)", []),
    ],
)
def test_embedded_files(text: str, expected: list[str]) -> None:
    assert app_folder.embedded_files(text) == expected


def _app_files(folder: Path) -> dict[str, str]:
    """The app's own files and idf.py's build/ (this tool's outputs left out)."""
    ours = (
        "build/generated/",
        "build/kconfig/",  # render's kconfgen cache
        "build/sensor_node/",
        "build/src/",
        "build/manifest.json",
        "certs/",
        ".doit.db",
        "project.yaml",
        "dodo.py",
        "report.json",
    )
    return {name: digest for name, digest in _tree(folder).items() if not name.startswith(ours)}


def test_path_dot__the_apps_own_idf_py_build_and_ours_live_side_by_side(
    app_copy: AppCopy,
    idf_v53: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import subprocess
    import sys

    from tests.conftest import FAKE_IDF, install_fake_idf
    from tests.doitrun import run

    folder = app_copy("sensor_node")
    monkeypatch.setenv("IDF_PATH", str(idf_v53))
    monkeypatch.setenv("WIFI_PASSWORD", "secret-pass")
    assert _init(folder, capsys)[0] == 0
    install_fake_idf(folder.parent, monkeypatch.setenv)

    def own_build() -> None:  # the developer's `idf.py build`, in the app folder
        done = subprocess.run(
            [sys.executable, str(FAKE_IDF), "build"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    own_build()
    assert (folder / "build" / "CMakeCache.txt").exists()
    before = _app_files(folder)
    monkeypatch.chdir(folder)
    code, results = run(folder, "build")
    assert code == 0, results
    assert _app_files(folder) == before  # its sdkconfig, CSV and build/ untouched
    assert (folder / "build" / "sensor_node" / "app.json").exists()
    own_build()  # and the developer's own build still works after ours
    assert run(folder, "build")[0] == 0


def test_init__an_sdkconfig_an_older_esp_idf_wrote_keeps_its_renamed_choices(
    app_copy: AppCopy,
    idf_v53: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Written before v5.0 renamed them: kconfgen reads the old names through sdkconfig.rename,
    # so the choices are the app's all the same and land under today's names.
    folder = app_copy("ota_seed")
    (folder / "sdkconfig").write_text(
        'CONFIG_IDF_TARGET="esp32"\nCONFIG_OTA_ALLOW_HTTP=y\nCONFIG_MAIN_TASK_STACK_SIZE=7168\n'
    )
    monkeypatch.setenv("IDF_PATH", str(idf_v53))
    code, _, err = _init(folder, capsys)
    assert (code, err) == (0, [])
    carried = yaml.safe_load((folder / "project.yaml").read_text())["apps"]["seed_ota"]["sdkconfig"]
    assert carried == {
        "CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP": True,
        "CONFIG_ESP_MAIN_TASK_STACK_SIZE": 7168,
    }


def test_new_names__renamed_and_inverted_options() -> None:
    from esp_ota_doit.idf.kconfig.app_config import _new_names

    renames = {
        "CONFIG_OLD_A": "CONFIG_NEW_A",
        "CONFIG_OLD_B": "!CONFIG_NEW_B",
        "CONFIG_C": "CONFIG_D",
    }
    written = {"CONFIG_OLD_A": "5", "CONFIG_OLD_B": "y", "CONFIG_C": "1", "CONFIG_D": "2"}
    assert _new_names(written, renames) == {
        "CONFIG_NEW_A": "5",
        "CONFIG_NEW_B": "n",
        "CONFIG_D": "2",
    }


def test_rehearse__code_that_reads_an_options_old_name_is_read_as_sdkconfig_h_defines_it(
    app_copy: AppCopy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written for ESP-IDF v4: the confirmation sits under CONFIG_APP_ROLLBACK_ENABLE, which
    # sdkconfig.h still defines (kconfgen's list of deprecated options) when rollback is on.
    from tests.doitrun import run_with_output

    folder = app_copy("ota_seed")
    defaults = folder / "sdkconfig.defaults"
    defaults.write_text(defaults.read_text() + "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y\n")
    source = folder / "main" / "seed_ota.c"
    source.write_text(
        source.read_text().replace(
            "{\n    ESP_ERROR_CHECK(example_connect());",
            "{\n#ifdef CONFIG_APP_ROLLBACK_ENABLE\n    esp_ota_mark_app_valid_cancel_rollback();\n"
            "#endif\n    ESP_ERROR_CHECK(example_connect());",
        )
    )
    monkeypatch.delenv("IDF_PATH", raising=False)
    monkeypatch.setenv("WIFI_PASSWORD", "secret-pass")
    assert _init(folder, capsys)[0] == 0
    monkeypatch.chdir(folder)
    code, _, text = run_with_output(folder, "rehearse")
    assert code == 0, text
    assert "app: esp_ota_mark_app_valid_cancel_rollback(): ota_0 is valid" in text
    assert "never calls esp_ota_mark_app_valid_cancel_rollback" not in text


def test_init__a_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _init(tmp_path / "nowhere", capsys)
    assert (code, out) == (1, [])
    assert err == [f"esp-ota-doit init: {tmp_path / 'nowhere'}: no such folder"]


def test_init__a_url_option_the_app_does_not_have(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refused(app_copy("ota_seed"), capsys, "--url-option", "CONFIG_NOPE")
    assert line == (
        "esp-ota-doit init: --url-option CONFIG_NOPE: no string option of that name in the "
        "app's Kconfig.projbuild"
    )


def _no_url_option(folder: Path, code: str, header: str = "") -> None:
    """The seed app with no Kconfig option for its URL: only its code says where it fetches."""
    (folder / "main" / "Kconfig.projbuild").unlink()
    (folder / "main" / "seed_ota.c").write_text(code)
    if header:
        (folder / "main" / "fw_source.h").write_text(header)


@pytest.mark.parametrize("spelled", ["macro", "literal"])
def test_init__a_url_the_code_compiles_in_is_named_with_the_way_out(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str], spelled: str
) -> None:
    folder = app_copy("ota_seed")
    url = "http://10.1.2.3:8000/images/seed.bin"
    header = (
        '#pragma once\n// #define FW_SOURCE "https://old.example/seed.bin"\n'
        f'#define FW_SOURCE "{url}"\n'
    )
    value = "FW_SOURCE" if spelled == "macro" else f'"{url}"'
    code = (
        '#include "esp_ota_ops.h"\n#include "esp_http_client.h"\n#include "fw_source.h"\n'
        "void fetch(void) {\n"
        f"    esp_http_client_config_t http = {{ .url = {value}, .timeout_ms = 5000 }};\n"
        "    esp_http_client_handle_t client = esp_http_client_init(&http);\n"
        "    esp_ota_handle_t handle; esp_ota_begin(NULL, 0, &handle);\n}\n"
    )
    _no_url_option(folder, code, header)
    where = "main/seed_ota.c:5" + (
        ", FW_SOURCE at main/fw_source.h:3" if spelled == "macro" else ""
    )
    assert _refused(folder, capsys) == (
        "esp-ota-doit init: URL option: none; the app's code compiles its firmware URL in "
        f"('{url}', {where}), which no configuration changes, so its boards cannot be pointed "
        "at this tool's server: make the URL a string option of main/Kconfig.projbuild, hand it "
        "to esp_http_client (.url = CONFIG_<NAME>), then run init again"
    )


def test_init__an_app_that_takes_its_update_over_another_transport(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    # The image arrives over USB serial and is written with esp_ota_begin/esp_ota_write: there
    # is no HTTP download to serve.
    folder = app_copy("ota_seed")
    code = (
        '#include "esp_ota_ops.h"\n#include "driver/usb_serial_jtag.h"\n'
        "void take_image(size_t size) {\n    esp_ota_handle_t handle;\n"
        "    esp_ota_begin(esp_ota_get_next_update_partition(NULL), size, &handle);\n}\n"
    )
    _no_url_option(folder, code)
    assert _refused(folder, capsys) == (
        "esp-ota-doit init: URL option: none; the app's code writes an update itself "
        "(esp_ota_begin) but downloads none with esp_http_client or esp_https_ota (serial, USB, "
        "BLE or its own TLS?), and this tool serves updates over HTTPS to ESP-IDF's HTTP client "
        "only; pass --url-option NAME if a library downloads it from that option's URL"
    )


def test_init__a_url_handed_over_at_run_time_keeps_the_general_line(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    code = (
        '#include "esp_https_ota.h"\n'
        "esp_err_t update(const char *url) {\n"
        "    esp_http_client_config_t http = { .url = url };\n"
        "    esp_https_ota_config_t ota = { .http_config = &http };\n"
        "    return esp_https_ota(&ota);\n}\n"
    )
    _no_url_option(folder, code)
    assert _refused(folder, capsys) == (
        "esp-ota-doit init: URL option: no string option of the app's Kconfig.projbuild "
        "defaults to an https:// URL or is what its code passes as the URL; pass --url-option "
        "NAME (the option your app reads the firmware URL from)"
    )


def test_init__a_url_option_that_holds_only_a_host(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    # The code prepends the scheme and appends a path: a whole URL in it would break the board.
    folder = app_copy("ota_seed")
    _kconfig_default(folder, "updates.example.net")
    source = folder / "main" / "seed_ota.c"
    built = source.read_text().replace(
        ".url = CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL,",
        ".url = url,",
    )
    source.write_text(
        built.replace(
            "void app_main(void)\n{\n",
            "void app_main(void)\n{\n    char url[128];\n"
            '    snprintf(url, sizeof url, "https://%s/fw.bin",\n'
            "             CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL);\n",
        )
    )
    line = _refused(folder, capsys, "--url-option", "EXAMPLE_FIRMWARE_UPGRADE_URL")
    assert line == (
        "esp-ota-doit init: --url-option EXAMPLE_FIRMWARE_UPGRADE_URL: its value "
        "'updates.example.net' is no URL (no scheme), so the app's code builds its URL around "
        "it, while this tool writes the whole firmware URL into the option; name the option the "
        "code hands esp_http_client as .url"
    )


def test_init__a_url_option_the_code_hands_over_whole_is_taken_whatever_it_holds(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    _kconfig_default(folder, "updates.example.net")
    code, out, err = _init(folder, capsys, "--url-option", "EXAMPLE_FIRMWARE_UPGRADE_URL")
    assert (code, err) == (0, [])
    assert (
        "OTA URL: the app's value 'updates.example.net' is no https:// URL to keep, so the board "
        "gets https://auto:8070/seed_ota.bin (edit ota.url to change it)"
    ) in out


def test_init__a_target_this_project_does_not_support(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    defaults = folder / "sdkconfig.defaults"
    defaults.write_text('CONFIG_IDF_TARGET="esp8266"\n' + defaults.read_text())
    line = _refused(folder, capsys)
    assert line.startswith(
        "esp-ota-doit init: target 'esp8266' (from sdkconfig.defaults) is not supported; "
        "supported: esp32, "
    )


def test_init__a_custom_table_whose_csv_is_missing(
    app_copy: AppCopy,
    idf_v53: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = app_copy("sensor_node")
    (folder / "partitions_8mb.csv").unlink()
    monkeypatch.setenv("IDF_PATH", str(idf_v53))
    line = _refused(folder, capsys)
    assert line == (
        "esp-ota-doit init: sdkconfig.defaults, sdkconfig: the custom partition table "
        "'partitions_8mb.csv' does not "
        f"exist in {folder}; fix CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"
    )


def _kconfig_default(folder: Path, default: str) -> None:
    kconfig = folder / "main" / "Kconfig.projbuild"
    kconfig.write_text(
        kconfig.read_text().replace('"https://192.168.0.3:8070/hello_world.bin"', f'"{default}"')
    )


@pytest.mark.parametrize("default", ["FROM_STDIN", "", "http://192.168.0.3:8080/fw.bin"])
def test_init__a_url_option_whose_default_is_no_https_url(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str], default: str
) -> None:
    # ESP-IDF's CI variants say FROM_STDIN: found from the code's `.url = CONFIG_...`, and
    # never concatenated into a URL.
    folder = app_copy("ota_seed")
    _kconfig_default(folder, default)
    code, out, err = _init(folder, capsys)
    assert (code, err) == (0, [])
    data = yaml.safe_load((folder / "project.yaml").read_text())
    assert data["apps"]["seed_ota"]["url_option"] == "CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL"
    assert data["ota"]["url"] == "https://auto:8070/seed_ota.bin"
    assert (
        f"OTA URL: the app's value '{default}' is no https:// URL to keep, so the board gets "
        "https://auto:8070/seed_ota.bin (edit ota.url to change it)"
    ) in out


@pytest.mark.parametrize(
    "spelling", ["EXAMPLE_FIRMWARE_UPGRADE_URL", "CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL"]
)
def test_init__url_option_in_either_spelling(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    folder = app_copy("ota_seed")
    _kconfig_default(folder, "FROM_STDIN")
    (folder / "main" / "seed_ota.c").write_text("void app_main(void) {}\n")  # a library's call
    code, out, _ = _init(folder, capsys)
    assert code == 0 and any(line.startswith("OTA client: no; its code calls") for line in out)
    for written in ("project.yaml", "dodo.py"):
        (folder / written).unlink()
    code, _, err = _init(folder, capsys, "--url-option", spelling)
    assert (code, err) == (0, [])
    assert (
        "url_option: CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL" in (folder / "project.yaml").read_text()
    )


def test_init__the_apps_port_is_kept_443_included(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    _kconfig_default(folder, "https://updates.example.org/fw/seed.bin")
    code, out, _ = _init(folder, capsys)
    assert code == 0
    data = yaml.safe_load((folder / "project.yaml").read_text())
    assert data["ota"]["url"] == "https://auto:443/fw/seed.bin"
    assert any(line.startswith("OTA URL: port 443 kept; a port under 1024 needs") for line in out)


def test_init__target_and_layered_defaults(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    (folder / "sdkconfig.ci.big").write_text("CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y\n")
    # Each file's .<target> twin follows it; a later file wins.
    (folder / "sdkconfig.ci.big.esp32c3").write_text("CONFIG_ESPTOOLPY_FLASHSIZE_16MB=y\n")
    code, out, err = _init(
        folder,
        capsys,
        "--target",
        "esp32c3",
        "--defaults",
        "sdkconfig.defaults",
        "sdkconfig.ci.big",
    )
    assert (code, err) == (0, [])
    data = yaml.safe_load((folder / "project.yaml").read_text())
    assert data["target"] == "esp32c3"
    assert data["flash"]["size"] == "16MB"
    assert data["apps"]["seed_ota"]["sdkconfig_defaults"] == [
        "sdkconfig.defaults",
        "sdkconfig.ci.big",
    ]
    assert "target: esp32c3 (from --target)" in out
    assert (
        "configuration: sdkconfig.defaults, sdkconfig.ci.big, sdkconfig.ci.big.esp32c3, "
        "evaluated by the files as written"
    ) in out
    for written in ("project.yaml", "dodo.py"):
        (folder / written).unlink()
    line = _refused(folder, capsys, "--defaults", "sdkconfig.ci.nope")
    assert line.startswith("esp-ota-doit init: --defaults sdkconfig.ci.nope: no such file in ")


def test_init__a_pre_encrypted_client_gets_ota_encrypt_with_the_key_it_embeds(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    source = folder / "main" / "seed_ota.c"
    source.write_text(
        source.read_text().replace(
            "esp_https_ota_config_t ota = {.http_config = &http};",
            "esp_https_ota_config_t ota = {.http_config = &http, .decrypt_cb = _decrypt_cb};\n"
            "    esp_decrypt_handle_t h = esp_encrypted_img_decrypt_start(&cfg);",
        )
    )
    code, out, err = _init(folder, capsys)
    assert (code, err) == (0, [])
    assert (
        "payload: pre-encrypted images (its code calls esp_encrypted_img_decrypt_start): "
        "ota.encrypt: rsa3072; assumed it embeds its RSA key as rsa_key/private.pem (no single "
        "key file among its EMBED_TXTFILES/EMBED_FILES); state it with apps.<name>.decrypt_key"
    ) in out
    data = yaml.safe_load((folder / "project.yaml").read_text())
    assert data["ota"]["encrypt"] == "rsa3072" and "decrypt_key" not in data["apps"]["seed_ota"]


def test_init__a_delta_client_gets_ota_delta(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    source = folder / "main" / "seed_ota.c"
    source.write_text(source.read_text() + "\nvoid apply(void) { esp_delta_ota_init(&cfg); }\n")
    code, out, err = _init(folder, capsys)
    assert (code, err) == (0, [])
    assert "payload: delta images (its code calls esp_delta_ota): ota.delta: true" in out
    data = yaml.safe_load((folder / "project.yaml").read_text())
    assert data["ota"]["delta"] is True


def test_init__then_rehearse_updates_the_app_to_its_next_version(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.doitrun import run_with_output

    folder = app_copy("ota_seed")
    assert _init(folder, capsys)[0] == 0
    monkeypatch.setenv("WIFI_PASSWORD", "secret-pass")
    folders = os.environ["PATH"].split(os.pathsep)
    monkeypatch.setenv(
        "PATH", os.pathsep.join(f for f in folders if not (Path(f) / "idf.py").exists())
    )
    monkeypatch.chdir(folder)
    code, results, text = run_with_output(folder, "rehearse")
    assert code == 0, text
    # The flashed app, then a build of the same app at the next version, served.
    assert "rehearse-build:seed_ota_next" in results
    assert "app 'seed_ota_next': seed_ota.bin 0.9.1 verified" in text
    assert "synthetic images: no ESP-IDF here, so the idf.py stand-in built them" in text
    assert "\nbooted ota_0: seed_ota 0.9.1\n" in text


def test_init__defaults_the_apps_cmakelists_names(
    app_copy: AppCopy, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = app_copy("ota_seed")
    (folder / "sdkconfig.prod").write_text("CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y\n")
    cmake = folder / "CMakeLists.txt"
    cmake.write_text(
        'set(SDKCONFIG_DEFAULTS "sdkconfig.defaults;sdkconfig.prod")\n' + cmake.read_text()
    )
    code, out, err = _init(folder, capsys)
    assert (code, err) == (0, [])
    data = yaml.safe_load((folder / "project.yaml").read_text())
    assert data["flash"]["size"] == "8MB"
    assert data["apps"]["seed_ota"]["sdkconfig_defaults"] == [
        "sdkconfig.defaults",
        "sdkconfig.prod",
    ]
    assert any(line.startswith("CMakeLists.txt sets SDKCONFIG_DEFAULTS (") for line in out)


def test_read_app__embedded_files_are_read_as_cmake_reads_them(tmp_path: Path) -> None:
    # https_delta_ota's shape: the files are listed in a variable the register call expands.
    (tmp_path / "main").mkdir()
    (tmp_path / "CMakeLists.txt").write_text("project(delta_shaped)\n")
    (tmp_path / "main" / "CMakeLists.txt").write_text(
        "idf_build_get_property(project_dir PROJECT_DIR)\n"
        "set(EMBED_TXTFILES ${project_dir}/server_certs/ca_cert.pem)\n"
        'idf_component_register(SRCS "main.c" EMBED_TXTFILES ${EMBED_TXTFILES} EMBED_FILES k.bin)\n'
    )
    assert app_folder.read_app(tmp_path).embedded == ("server_certs/ca_cert.pem", "main/k.bin")
