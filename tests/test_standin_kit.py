"""The stand-in stays honest: the same app, with the same layered defaults, built by ESP-IDF
v5.3.2's real idf.py (the kit, esp32c3) and by the stand-in without ESP-IDF; what this tool reads
from a build must agree: flasher_args.json, project_description.json, sdkconfig.json for every
option asked, config.env's keys, the images' headers, segments and descriptors, the partition
table and otadata bytes, and the build log lines.

Needs the kit (../shared/esp-idf-build); one real build (~1-2 minutes), shared by the tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from esp_ota_doit.idf import esp_image
from esptool.bin_image import LoadFirmwareImage

from tests import idfkit

pytestmark = pytest.mark.idf_kit

_APP = "examples/system/ota/simple_ota_example"
# What `doit render` writes for an app (tests/golden/render), on esp32c3, with rollback,
# anti-rollback and signing as ota.rollback, secure_version and ota.sign ask for them.
_TOOL_DEFAULTS = """\
CONFIG_IDF_TARGET="esp32c3"
CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y
CONFIG_ESPTOOLPY_FLASHMODE_DIO=y
CONFIG_ESPTOOLPY_FLASHFREQ_40M=y
CONFIG_PARTITION_TABLE_CUSTOM=y
CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions.csv"
CONFIG_PARTITION_TABLE_OFFSET=0x8000
CONFIG_APP_PROJECT_VER_FROM_CONFIG=y
CONFIG_APP_PROJECT_VER="1.2.3"
CONFIG_APP_REPRODUCIBLE_BUILD=y
CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL="https://127.0.0.1:8070/hello_world.bin"
CONFIG_EXAMPLE_CONNECT_WIFI=y
CONFIG_EXAMPLE_WIFI_SSID="myssid"
CONFIG_EXAMPLE_WIFI_PASSWORD="kit-password"
CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y
CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y
CONFIG_BOOTLOADER_APP_SECURE_VERSION=2
CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT=y
CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT=y
CONFIG_SECURE_SIGNED_APPS_RSA_SCHEME=y
CONFIG_SECURE_BOOT_BUILD_SIGNED_BINARIES=n
"""
_TABLE = """\
# Name, Type, SubType, Offset, Size, Flags
nvs, data, nvs, 0x9000, 0x4000
otadata, data, ota, 0xd000, 0x2000
phy_init, data, phy, 0xf000, 0x1000
ota_0, app, ota_0, 0x10000, 0x180000
ota_1, app, ota_1, 0x190000, 0x180000
"""
_LAYERS = "SDKCONFIG_DEFAULTS=sdkconfig.defaults;tool.sdkconfig.defaults"


@dataclass(frozen=True)
class Built:
    build: Path
    log: str


def _copy(root: Path) -> Path:
    shutil.copytree(
        idfkit.idf_path() / _APP, root, ignore=shutil.ignore_patterns("build", "sdkconfig")
    )
    (root / "tool.sdkconfig.defaults").write_text(_TOOL_DEFAULTS)
    (root / "partitions.csv").write_text(_TABLE)
    return root


def _build(root: Path, command: list[str], env: dict[str, str]) -> Built:
    done = subprocess.run(
        [*command, "-D", _LAYERS, "build"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Built(root / "build", done.stdout + done.stderr)


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, Built]:
    """(ESP-IDF's build, the stand-in's build) of the same app."""
    idfkit.env_sh()  # skips, saying why, without the kit
    work = tmp_path_factory.mktemp("kit-vs-standin")
    exported = idfkit.exported()
    # idf.py under ESP-IDF's own Python, as the tool runs it (this venv may come first on PATH).
    idf_py = [
        str(Path(exported["IDF_PYTHON_ENV_PATH"]) / "bin" / "python"),
        str(Path(exported["IDF_PATH"]) / "tools" / "idf.py"),
    ]
    real = _build(_copy(work / "real"), idf_py, exported)
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("IDF_", "ESP_IDF"))}
    standin = [sys.executable, "-m", "esp_ota_doit.rehearsal.standin"]
    return real, _build(_copy(work / "standin"), standin, plain)


def _json(built: Built, name: str) -> Any:
    return json.loads((built.build / name).read_text())


def test_kit__flasher_args_agree(builds: tuple[Built, Built]) -> None:
    real, standin = (_json(b, "flasher_args.json") for b in builds)
    assert standin == real
    assert list(standin["flash_files"]) == list(real["flash_files"])  # the build's order


def test_kit__flash_args_files_agree(builds: tuple[Built, Built]) -> None:
    real, standin = builds
    for name in ("flash_args", "flash_app_args", "flash_bootloader_args", "flash_project_args"):
        if (real.build / name).is_file():
            assert (standin.build / name).read_text() == (real.build / name).read_text(), name


def test_kit__project_description_agrees_where_the_tool_reads_it(
    builds: tuple[Built, Built],
) -> None:
    real, standin = (_json(b, "project_description.json") for b in builds)
    assert set(real) <= set(standin) | {"git_revision"}, sorted(set(real) - set(standin))
    read = ("project_name", "project_version", "target", "app_bin", "app_elf", "monitor_baud")
    for key in (*read, "min_rev", "max_rev"):
        assert standin[key] == real[key], key
    for built, description in zip(builds, (real, standin), strict=True):
        assert Path(description["project_path"]) == built.build.parent
    for key in ("build_dir", "bootloader_elf", "config_file"):
        paths = [Path(d[key]).relative_to(d["project_path"]) for d in (standin, real)]
        assert paths[0] == paths[1], key


def test_kit__every_asked_option_and_config_env_agree(builds: tuple[Built, Built]) -> None:
    real, standin = (_json(b, "config/sdkconfig.json") for b in builds)
    asked = re.findall(r"^CONFIG_(\w+)=", _TOOL_DEFAULTS, re.M)
    assert {k: standin.get(k) for k in asked} == {k: real.get(k) for k in asked}
    real_env, standin_env = (_json(b, "config.env") for b in builds)
    assert set(standin_env) == set(real_env)
    for renames in standin_env["COMPONENT_SDKCONFIG_RENAMES"].split(";"):
        assert Path(renames).is_file()


def _image(path: Path) -> Any:
    return LoadFirmwareImage("esp32c3", str(path))


def test_kit__images_agree_where_the_tool_reads_them(builds: tuple[Built, Built]) -> None:
    app = _json(builds[0], "flasher_args.json")["app"]["file"]
    for role, name in (("app", app), ("bootloader", "bootloader/bootloader.bin")):
        made = [_image(b.build / name) for b in builds]
        fields = ("chip_id", "flash_mode", "flash_size_freq", "max_rev_full")
        # The minimum waits for the virtual board's chip revision (standin/standin_images.py).
        fields += ("min_rev", "min_rev_full")
        assert [getattr(made[1], f) for f in fields] == [getattr(made[0], f) for f in fields], role
        assert (made[1].append_digest, made[1].entrypoint != 0) == (made[0].append_digest, True)
    real_app, standin_app = ((b.build / app).read_bytes() for b in builds)
    # Signed apps are padded to the MMU page (--secure-pad-v2) in both.
    assert len(real_app) % 0x10000 == 0 and len(standin_app) % 0x10000 == 0
    real_desc, standin_desc = (esp_image.app_desc(data) for data in (real_app, standin_app))
    assert real_desc is not None and standin_desc is not None
    for key in ("project_name", "version", "idf_version", "secure_version"):
        assert getattr(standin_desc, key) == getattr(real_desc, key), key


def test_kit__partition_table_and_otadata_bytes_agree(builds: tuple[Built, Built]) -> None:
    for name in ("partition_table/partition-table.bin", "ota_data_initial.bin"):
        real, standin = ((b.build / name).read_bytes() for b in builds)
        assert standin == real, name


def _log_lines(log: str) -> list[str]:
    """The lines the tool and a user read from a build, numbers and paths made comparable."""
    wanted = (
        "binary size",
        "Bootloader binary size",
        "App built but not signed",
        "Project build complete",
        "espsecure.py sign_data",
    )
    lines = [line for line in log.splitlines() if any(w in line for w in wanted)]
    # How espsecure is named (its path, or the entry point) is not read; the arguments are.
    lines = [line[line.index("sign_data") :] if "sign_data" in line else line for line in lines]
    return [" ".join(re.sub(r"0x[0-9a-f]+|\d+%|/\S+/", "N", line).split()) for line in lines]


def test_kit__build_log_lines_agree(builds: tuple[Built, Built]) -> None:
    real, standin = builds
    assert _log_lines(standin.log) == _log_lines(real.log)
