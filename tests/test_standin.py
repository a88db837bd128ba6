"""The idf.py stand-in: CLI, Kconfig rules, build outputs that esptool accepts, failures."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from esp_ota_doit.idf.partition import formats
from esp_ota_doit.rehearsal.standin import cli
from esptool.bin_image import LoadFirmwareImage
from esptool.targets import CHIP_DEFS

from tests.conftest import REPO
from tests.fakes.idf import apply, behaviour


def main(argv: list[str]) -> int:
    """The stand-in as tests/fakes/idf.py runs it: STANDIN_* variables become its Behaviour."""
    with pytest.MonkeyPatch.context() as patch:
        apply(behaviour(), patch.setattr)
        return cli.main(argv)


FAKE_IDF = REPO / "tests" / "fakes" / "idf.py"
CA = "-----BEGIN CERTIFICATE-----\nMIIB test CA\n-----END CERTIFICATE-----\n"
KCONFIG = """menu "Example Configuration"
    config EXAMPLE_FIRMWARE_UPGRADE_URL
        string "firmware upgrade url endpoint"
        default "https://192.168.0.3:8070/hello_world.bin"
        help
            URL of server which hosts the firmware image.

    config EXAMPLE_OTA_RECV_TIMEOUT
        int "OTA Receive Timeout"
        default 5000
        range 1000 60000
endmenu
"""
SIMPLE_OTA = {
    "CMakeLists.txt": "cmake_minimum_required(VERSION 3.16)\n"
    "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\nproject(simple_ota)\n",
    "main/CMakeLists.txt": "idf_build_get_property(project_dir PROJECT_DIR)\n"
    'idf_component_register(SRCS "a.c" INCLUDE_DIRS "."\n'
    "                       EMBED_TXTFILES ${project_dir}/server_certs/ca_cert.pem)\n",
    "main/a.c": "void app_main(void) {}\n",
    "main/Kconfig.projbuild": KCONFIG,
    "main/idf_component.yml": "dependencies:\n  protocol_examples_common:\n"
    "    path: ${IDF_PATH}/examples/common_components/protocol_examples_common\n",
    "server_certs/ca_cert.pem": CA,
    "sdkconfig.defaults": "CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y\nCONFIG_PARTITION_TABLE_TWO_OTA=y\n",
}
HELLO_WORLD = {
    "CMakeLists.txt": "cmake_minimum_required(VERSION 3.16)\n"
    "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\nproject(hello_world)\n",
    "main/CMakeLists.txt": 'idf_component_register(SRCS "hello_world_main.c" INCLUDE_DIRS "")\n',
    "main/hello_world_main.c": 'void app_main(void) { printf("Hello world!\\n"); }\n',
}


def _project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def simple_ota(tmp_path: Path) -> Path:
    return _project(tmp_path / "simple_ota", SIMPLE_OTA)


@pytest.fixture
def hello_world(tmp_path: Path) -> Path:
    return _project(tmp_path / "hello_world", HELLO_WORLD)


Idf = Callable[..., tuple[int, str, str]]


@pytest.fixture
def idf(capsys: pytest.CaptureFixture[str]) -> Idf:
    """Run the stand-in in-process: idf(project, *args) -> (exit code, stdout, stderr)."""

    def run(project: Path, *args: str) -> tuple[int, str, str]:
        code = main(["-C", str(project), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _json(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())


def test_standin__version(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "ESP-IDF v5.3.2\n"
    monkeypatch.setenv("STANDIN_IDF_VERSION", "v5.1.4")
    assert main(["build", "--version"]) == 0
    assert capsys.readouterr().out == "ESP-IDF v5.1.4\n"
    result = subprocess.run(
        [sys.executable, "-m", "esp_ota_doit.rehearsal.standin", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    # Run as the package ships it, the stand-in knows no test switch.
    assert (result.returncode, result.stdout) == (0, "ESP-IDF v5.3.2\n")


def test_standin__build_outputs(simple_ota: Path, idf: Idf) -> None:
    code, out, _ = idf(simple_ota, "build")
    assert code == 0, out
    build = simple_ota / "build"
    for name in (
        "simple_ota.bin",
        "simple_ota.elf",
        "simple_ota.map",
        "bootloader/bootloader.bin",
        "partition_table/partition-table.bin",
        "ota_data_initial.bin",
        "flasher_args.json",
        "flash_args",
        "flash_app_args",
        "project_description.json",
        "config/sdkconfig.json",
    ):
        assert (build / name).is_file(), name
    assert "Executing action: all (aliases: build)" in out
    assert f"Running cmake in directory {build}" in out
    assert '-- App "simple_ota" version: 1' in out
    assert (
        "simple_ota.bin binary size 0x" in out
        and "Smallest app partition is 0x100000 bytes." in out
    )
    assert "Project build complete. To flash, run:\n idf.py flash" in out
    assert (build / "ota_data_initial.bin").read_bytes() == b"\xff" * 0x2000
    assert (build / "simple_ota.elf").read_bytes().startswith(b"\x7fELF")
    table = formats.from_bin((build / "partition_table/partition-table.bin").read_bytes())
    assert [p.name for p in table.partitions] == [
        "nvs",
        "otadata",
        "phy_init",
        "factory",
        "ota_0",
        "ota_1",
    ]
    assert (
        build / "flash_app_args"
    ).read_text() == "--flash_mode dio --flash_freq 40m --flash_size 4MB\n0x10000 simple_ota.bin\n"
    description = _json(build / "project_description.json")
    assert description["version"] == "1.1" and description["monitor_baud"] == "115200"  # a string
    assert (description["project_name"], description["app_bin"], description["target"]) == (
        "simple_ota",
        "simple_ota.bin",
        "esp32",
    )
    assert description["config_defaults"] == str(simple_ota / "sdkconfig.defaults")
    assert (simple_ota / "sdkconfig").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("target", ["esp32", "esp32c3"])
def test_standin__images_verify_with_esptool(
    simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setenv("IDF_TARGET", target)
    assert idf(simple_ota, "build")[0] == 0
    chip = CHIP_DEFS[target]
    for name in ("simple_ota.bin", "bootloader/bootloader.bin"):
        image = LoadFirmwareImage(target, str(simple_ota / "build" / name))
        assert image.chip_id == chip.IMAGE_CHIP_ID
        assert image.checksum == image.calculate_checksum()
        assert image.stored_digest == image.calc_digest
        assert image.flash_size_freq & 0xF0 == chip.FLASH_SIZES["4MB"]
    app = LoadFirmwareImage(target, str(simple_ota / "build" / "simple_ota.bin"))
    assert chip.DROM_MAP_START <= app.segments[0].addr < chip.DROM_MAP_END
    assert chip.IROM_MAP_START <= app.entrypoint < chip.IROM_MAP_END
    args = _json(simple_ota / "build" / "flasher_args.json")
    assert args["bootloader"] == {
        "offset": hex(chip.BOOTLOADER_FLASH_OFFSET),
        "file": "bootloader/bootloader.bin",
        "encrypted": "false",
    }


def test_standin__image_info_cli(
    simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDF_TARGET", "esp32c3")
    assert idf(simple_ota, "build")[0] == 0
    for name, expected in (
        ("simple_ota.bin", "Project name: simple_ota"),
        ("bootloader/bootloader.bin", "Bootloader version: 1"),
    ):
        command = [
            sys.executable,
            "-m",
            "esptool",
            "--chip",
            "esp32c3",
            "image-info",
            str(simple_ota / "build" / name),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert expected in result.stdout and "(valid)" in result.stdout


def test_standin__app_descriptor_fields(simple_ota: Path, idf: Idf) -> None:
    (simple_ota / "version.txt").write_text("2.0.1\n")
    assert idf(simple_ota, "build")[0] == 0
    data = (simple_ota / "build" / "simple_ota.bin").read_bytes()
    elf = (simple_ota / "build" / "simple_ota.elf").read_bytes()

    def text(offset: int, size: int) -> bytes:
        return data[offset : offset + size].rstrip(b"\0")

    assert struct.unpack_from("<II", data, 0x20) == (0xABCD5432, 0)
    assert (text(0x30, 32), text(0x50, 32), text(0x90, 32)) == (b"2.0.1", b"simple_ota", b"v5.3.2")
    assert len(text(0x70, 16)) == 8 and len(text(0x80, 16)) == 11  # "12:34:56", "Dec  5 2024"
    assert data[0xB0:0xD0] == hashlib.sha256(elf).digest()


def test_standin__embedded_ca_is_in_the_image(simple_ota: Path, idf: Idf) -> None:
    with (simple_ota / "sdkconfig.defaults").open("a") as defaults:
        defaults.write("CONFIG_APP_REPRODUCIBLE_BUILD=y\n")
    assert idf(simple_ota, "build")[0] == 0
    image = simple_ota / "build" / "simple_ota.bin"
    before = image.read_bytes()
    assert b"_binary_ca_cert_pem_start\0" + CA.encode() + b"\0" in before
    (simple_ota / "server_certs" / "ca_cert.pem").write_text(CA.replace("test CA", "other CA"))
    assert idf(simple_ota, "build")[0] == 0
    assert image.read_bytes() != before
    (simple_ota / "server_certs" / "ca_cert.pem").unlink()
    code, _, err = idf(simple_ota, "build")
    assert code == 2 and "missing and no known rule to make it" in err


def test_standin__flasher_args(simple_ota: Path, idf: Idf) -> None:
    assert idf(simple_ota, "build")[0] == 0
    args = _json(simple_ota / "build" / "flasher_args.json")
    assert list(args) == [
        "write_flash_args",
        "flash_settings",
        "flash_files",
        "bootloader",
        "app",
        "partition-table",
        "otadata",
        "extra_esptool_args",
    ]
    assert args["write_flash_args"] == [
        "--flash_mode",
        "dio",
        "--flash_size",
        "4MB",
        "--flash_freq",
        "40m",
    ]
    assert args["flash_settings"] == {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"}
    assert args["flash_files"] == {
        "0x1000": "bootloader/bootloader.bin",
        "0x8000": "partition_table/partition-table.bin",
        "0xd000": "ota_data_initial.bin",
        "0x10000": "simple_ota.bin",
    }
    assert args["app"] == {"offset": "0x10000", "file": "simple_ota.bin", "encrypted": "false"}
    assert args["otadata"] == {
        "offset": "0xd000",
        "file": "ota_data_initial.bin",
        "encrypted": "false",
    }
    assert args["extra_esptool_args"] == {
        "after": "hard_reset",
        "before": "default_reset",
        "stub": True,
        "chip": "esp32",
    }


def test_standin__sdkconfig_json_is_typed_without_prefix(simple_ota: Path, idf: Idf) -> None:
    assert idf(simple_ota, "build")[0] == 0
    values = _json(simple_ota / "build" / "config" / "sdkconfig.json")
    assert not [key for key in values if key.startswith("CONFIG_")]
    assert values["PARTITION_TABLE_OFFSET"] == 0x8000 and values["ESPTOOLPY_MONITOR_BAUD"] == 115200
    assert values["PARTITION_TABLE_TWO_OTA"] is True and values["APP_REPRODUCIBLE_BUILD"] is False
    assert (values["ESPTOOLPY_FLASHSIZE"], values["IDF_TARGET"], values["EXAMPLE_WIFI_SSID"]) == (
        "4MB",
        "esp32",
        "myssid",
    )
    assert values["EXAMPLE_FIRMWARE_UPGRADE_URL"] == "https://192.168.0.3:8070/hello_world.bin"
    text = (simple_ota / "sdkconfig").read_text()
    assert 'CONFIG_EXAMPLE_WIFI_PASSWORD="mypassword"\n' in text
    assert (
        "CONFIG_PARTITION_TABLE_OFFSET=0x8000\n" in text
        and "# CONFIG_PARTITION_TABLE_SINGLE_APP is not set\n" in text
    )


def test_standin__unknown_and_out_of_range_options_are_dropped(simple_ota: Path, idf: Idf) -> None:
    defaults = simple_ota / "sdkconfig.defaults"
    defaults.write_text(
        defaults.read_text() + "CONFIG_NO_SUCH_OPTION=y\nCONFIG_EXAMPLE_OTA_RECV_TIMEOUT=10\n"
    )
    code, _, err = idf(simple_ota, "build")
    assert code == 0
    assert f"warning: unknown kconfig symbol 'NO_SUCH_OPTION' assigned to 'y' in {defaults}" in err
    # kconfiglib's own warning, from the real kconfgen.
    assert "warning: user value 10 on the int symbol EXAMPLE_OTA_RECV_TIMEOUT" in err
    assert "ignored due to being outside the active range ([1000, 60000])" in err
    text = (simple_ota / "sdkconfig").read_text()
    assert "NO_SUCH_OPTION" not in text and "CONFIG_EXAMPLE_OTA_RECV_TIMEOUT=5000\n" in text


def test_standin__examples_common_options_exist_only_where_used(
    simple_ota: Path, hello_world: Path, idf
) -> None:
    for project in (simple_ota, hello_world):
        with (project / "sdkconfig.defaults").open("a") as defaults:
            defaults.write('CONFIG_EXAMPLE_WIFI_SSID="lab"\n')
    code, _, err = idf(simple_ota, "build")
    assert code == 0 and "unknown kconfig symbol" not in err
    assert _json(simple_ota / "build/config/sdkconfig.json")["EXAMPLE_WIFI_SSID"] == "lab"
    code, _, err = idf(hello_world, "build")
    assert code == 0 and "unknown kconfig symbol 'EXAMPLE_WIFI_SSID' assigned to '\"lab\"'" in err


def test_standin__defaults_do_not_override_an_existing_sdkconfig(
    simple_ota: Path, idf: Idf
) -> None:
    assert idf(simple_ota, "build")[0] == 0
    (simple_ota / "sdkconfig.defaults").write_text(
        "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y\nCONFIG_PARTITION_TABLE_TWO_OTA=y\n"
    )
    assert idf(simple_ota, "build")[0] == 0
    assert _json(simple_ota / "build/config/sdkconfig.json")["ESPTOOLPY_FLASHSIZE"] == "4MB"
    (simple_ota / "sdkconfig").unlink()
    assert idf(simple_ota, "build")[0] == 0
    assert _json(simple_ota / "build/config/sdkconfig.json")["ESPTOOLPY_FLASHSIZE"] == "8MB"


def test_standin__sdkconfig_defaults_list_and_target_files(
    simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = idf(
        simple_ota, "-DSDKCONFIG_DEFAULTS=sdkconfig.defaults;missing.defaults", "build"
    )
    assert (
        code == 2
        and f"SDKCONFIG_DEFAULTS '{simple_ota / 'missing.defaults'}' does not exist." in err
    )
    (simple_ota / "more.defaults").write_text("CONFIG_LOG_DEFAULT_LEVEL_WARN=y\n")
    (simple_ota / "sdkconfig.defaults.esp32c3").write_text("CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y\n")
    monkeypatch.setenv("IDF_TARGET", "esp32c3")
    sdkconfig = simple_ota.parent / "elsewhere" / "sdkconfig"
    args = (
        f"-DSDKCONFIG={sdkconfig}",
        "-DSDKCONFIG_DEFAULTS=sdkconfig.defaults;more.defaults",
        "build",
    )
    assert idf(simple_ota, *args)[0] == 0
    values = _json(simple_ota / "build/config/sdkconfig.json")
    assert (values["ESPTOOLPY_FLASHSIZE"], values["LOG_DEFAULT_LEVEL"], values["IDF_TARGET"]) == (
        "8MB",
        2,
        "esp32c3",
    )
    assert sdkconfig.is_file() and not (simple_ota / "sdkconfig").exists()


def test_standin__set_target_renames_sdkconfig(
    simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert idf(simple_ota, "build")[0] == 0
    monkeypatch.setenv("IDF_TARGET", "esp32c3")
    code, _, err = idf(simple_ota, "build")
    assert code == 2
    assert (
        f"Project sdkconfig '{simple_ota / 'sdkconfig'}' was generated for target 'esp32', but "
        "environment variable IDF_TARGET is set to 'esp32c3'. Run 'idf.py set-target esp32c3' to "
        "generate new sdkconfig file for target esp32c3." in err
    )
    monkeypatch.delenv("IDF_TARGET")
    code, out, _ = idf(simple_ota, "set-target", "esp32c3", "build")
    assert code == 0, out
    assert 'CONFIG_IDF_TARGET="esp32"' in (simple_ota / "sdkconfig.old").read_text()
    assert 'CONFIG_IDF_TARGET="esp32c3"' in (simple_ota / "sdkconfig").read_text()
    assert "IDF_TARGET:STRING=esp32c3" in (simple_ota / "build" / "CMakeCache.txt").read_text()
    code, _, err = idf(simple_ota, "-DIDF_TARGET=esp32s3", "build")
    assert (
        code == 2
        and "IDF_TARGET 'esp32c3' in CMake cache does not match currently selected IDF_TARGET "
        "'esp32s3'"
        in err
    )


def test_standin__partition_table_too_big_for_flash(hello_world: Path, idf: Idf) -> None:
    (hello_world / "sdkconfig.defaults").write_text("CONFIG_PARTITION_TABLE_TWO_OTA=y\n")
    code, out, err = idf(hello_world, "build")
    build = hello_world / "build"
    assert code == 2
    assert (
        "Partitions tables occupies 3.1MB of flash (3211264 bytes) which does not fit in "
        "configured flash size 2MB. Change the flash size in menuconfig under the 'Serial Flasher "
        "Config' menu.\n" in err
    )
    assert "ninja: build stopped: subcommand failed." in out
    logs = sorted(path.name for path in (build / "log").iterdir())
    assert (
        f"ninja failed with exit code 1, output of the command is in the {build / 'log' / logs[0]} "
        f"and {build / 'log' / logs[1]}" in err
    )
    assert not (build / "hello_world.bin").exists()


def test_standin__custom_partition_csv_and_app_too_big(
    hello_world: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    (hello_world / "parts.csv").write_text("nvs,data,nvs,,0x6000\nfactory,app,factory,,0x40000\n")
    (hello_world / "sdkconfig.defaults").write_text(
        'CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME="parts.csv"\n'
    )
    code, out, _ = idf(hello_world, "build")
    assert code == 0 and "Smallest app partition is 0x40000 bytes." in out
    monkeypatch.setenv("STANDIN_APP_SIZE", str(0x41000))
    code, out, err = idf(hello_world, "build")
    assert (
        code == 2
        and "Error: app partition is too small for binary hello_world.bin size 0x41000:" in err
    )
    assert "  - Part 'factory' 0/0 @ 0x10000 size 0x40000 (overflow 0x1000)" in err


def test_standin__compile_failure(
    simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_FAIL", "compile")
    code, out, err = idf(simple_ota, "build")
    assert code == 2
    assert "main/a.c:12:5: error: " in err and "ninja: build stopped: subcommand failed." in out


def test_standin__configure_failure(
    simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_FAIL", "cmake")
    code, _, err = idf(simple_ota, "build")
    assert code == 2
    assert "CMake Error at CMakeLists.txt (message):" in err
    assert "configure failure requested (a test's stand-in)" in err


def test_standin__reproducible_across_paths(
    tmp_path: Path, simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (simple_ota / "sdkconfig.defaults").open("a") as defaults:
        defaults.write("CONFIG_APP_REPRODUCIBLE_BUILD=y\n")
    copy = shutil.copytree(simple_ota, tmp_path / "elsewhere" / "copy")
    outputs = (
        "simple_ota.bin",
        "simple_ota.elf",
        "bootloader/bootloader.bin",
        "partition_table/partition-table.bin",
        "ota_data_initial.bin",
    )

    def built(project: Path, build: Path) -> list[bytes]:
        assert idf(project, "-B", str(build), "build")[0] == 0
        return [(build / name).read_bytes() for name in outputs]

    first = built(simple_ota, tmp_path / "b1")
    assert built(copy, tmp_path / "b2") == first
    assert (tmp_path / "b1" / "simple_ota.bin").read_bytes()[0x70:0x90] == bytes(
        32
    )  # no time, no date
    monkeypatch.setenv("STANDIN_STAMP_TIME", "1")
    stamped = built(copy, tmp_path / "b3")
    assert stamped[0] != first[0] and stamped[1] != first[1]


def test_standin__second_build_does_no_work(simple_ota: Path, idf: Idf) -> None:
    assert idf(simple_ota, "build")[0] == 0
    files = [path for path in (simple_ota / "build").rglob("*") if path.is_file()] + [
        simple_ota / "sdkconfig"
    ]
    mtimes = {path: path.stat().st_mtime_ns for path in files}
    code, out, _ = idf(simple_ota, "build")
    assert code == 0 and "ninja: no work to do." in out and "Running cmake" not in out
    assert {path: path.stat().st_mtime_ns for path in files} == mtimes


def test_standin__menuconfig_sets_options(
    simple_ota: Path, idf: Idf, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert idf(simple_ota, "build")[0] == 0
    monkeypatch.setenv(
        "STANDIN_MENUCONFIG_SET", 'CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y;CONFIG_EXAMPLE_WIFI_SSID="a;b"'
    )
    code, out, _ = idf(simple_ota, "menuconfig")
    assert code == 0 and "stand-in" in out
    text = (simple_ota / "sdkconfig").read_text()
    assert (
        "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y\n" in text
        and "# CONFIG_ESPTOOLPY_FLASHSIZE_4MB is not set\n" in text
    )
    assert 'CONFIG_EXAMPLE_WIFI_SSID="a;b"\n' in text


def test_standin__cli_errors(simple_ota: Path, idf: Idf) -> None:
    code, _, err = idf(simple_ota, "frobnicate")
    assert code == 2 and "Error: No such command 'frobnicate'." in err
    code, _, err = idf(simple_ota, "set-target", "esp8266")
    assert code == 2 and "'esp8266' is not one of" in err
    code, out, _ = idf(simple_ota, "build", "-v", "--no-hints", "-p", "/dev/null", "-b", "921600")
    assert code == 0 and "-b 921600" in out


def test_standin__fake_idf_logs_each_call(tmp_path: Path, simple_ota: Path) -> None:
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "FAKE_IDF_LOG": str(log), "IDF_TARGET": "esp32", "STANDIN_FAIL": ""}
    for args in (["--version"], ["-C", str(simple_ota), "reconfigure"]):
        result = subprocess.run(
            [sys.executable, str(FAKE_IDF), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [call["argv"] for call in calls] == [
        ["--version"],
        ["-C", str(simple_ota), "reconfigure"],
    ]
    assert calls[1]["cwd"] == str(tmp_path) and calls[1]["env"]["IDF_TARGET"] == "esp32"
    assert calls[1]["env"]["STANDIN_FAIL"] == "" and (simple_ota / "sdkconfig").is_file()


def test_standin__any_option_of_the_kconfig_set_and_renames(simple_ota: Path, idf: Idf) -> None:
    # Real component options build; an old name from sdkconfig.rename is read as the new one.
    with (simple_ota / "sdkconfig.defaults").open("a") as defaults:
        defaults.write('CONFIG_LWIP_LOCAL_HOSTNAME="node-7"\nCONFIG_OTA_ALLOW_HTTP=y\n')
    code, _, err = idf(simple_ota, "build")
    assert code == 0 and "unknown kconfig symbol" not in err, err
    values = _json(simple_ota / "build/config/sdkconfig.json")
    assert values["LWIP_LOCAL_HOSTNAME"] == "node-7" and values["ESP_HTTPS_OTA_ALLOW_HTTP"] is True
    text = (simple_ota / "sdkconfig").read_text()
    # kconfgen keeps the old name in its "Deprecated options" section.
    assert "CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP=y\n" in text and "CONFIG_OTA_ALLOW_HTTP=y\n" in text
    menus = json.loads((simple_ota / "build/config/kconfig_menus.json").read_text())
    nodes, names = list(menus), set()
    while nodes:
        node = nodes.pop()
        names.add(node.get("name"))
        nodes += node.get("children") or []
    assert {"LWIP_LOCAL_HOSTNAME", "ESP_HTTPS_OTA_ALLOW_HTTP"} <= names
    header = (simple_ota / "build/config/sdkconfig.h").read_text()
    assert '#define CONFIG_LWIP_LOCAL_HOSTNAME "node-7"\n' in header


@pytest.mark.parametrize(
    ("target", "freq", "header"),
    [("esp32h2", "16M", "12m"), ("esp32c2", "15M", "20m"), ("esp32c3", "80M", "80m")],
)
def test_standin__flash_frequency_as_esp_idf_maps_it(
    hello_world: Path,
    idf: Idf,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    freq: str,
    header: str,
) -> None:
    (hello_world / "sdkconfig.defaults").write_text(f"CONFIG_ESPTOOLPY_FLASHFREQ_{freq}=y\n")
    monkeypatch.setenv("IDF_TARGET", target)
    assert idf(hello_world, "build")[0] == 0
    assert _json(hello_world / "build/config/sdkconfig.json")["ESPTOOLPY_FLASHFREQ"] == header
    flasher = _json(hello_world / "build/flasher_args.json")
    assert flasher["flash_settings"]["flash_freq"] == header  # type: ignore[index]
