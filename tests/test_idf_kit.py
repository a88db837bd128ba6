"""Every build claim on ESP-IDF's own build system: the real ESP-IDF v5.3.2 of
../shared/esp-idf-build (esp32c3 and esp32c6), exported by the kit's env.sh, with this tool's
venv activated after it. CI's real-ESP-IDF stage runs these (`pytest -m idf_kit`, see .ci/run);
the README's test command skips them. Builds are shared through session fixtures.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from esp_ota_doit.firmware import took_effect
from esp_ota_doit.idf.kconfig import kconfgen, sdkconfig

from tests.conftest import REPO
from tests.idfkit import KIT_TIMES

pytestmark = pytest.mark.idf_kit

TARGET = "esp32c3"
BUILD_TIMEOUT = 900  # one real `doit build` of two apps takes 1.5 minutes on two cores


@dataclass
class Project:
    """A project folder, the environment `doit` runs in there, and what each run took."""

    folder: Path
    env: dict[str, str]
    times: dict[str, float] = field(default_factory=dict)

    def doit(self, *args: str, timeout: float = BUILD_TIMEOUT) -> tuple[int, str]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "doit", *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        took = time.monotonic() - started
        what = f"{self.folder.name}: doit {' '.join(args)}"
        runs = sum(1 for key in KIT_TIMES if key.split(" #")[0] == what)
        KIT_TIMES[what + (f" #{runs + 1}" if runs else "")] = took
        self.times[" ".join(args)] = took
        return done.returncode, done.stdout + done.stderr

    @staticmethod
    def tail(output: str) -> str:
        """The end of a run's output, for an assertion message (a real build prints a lot)."""
        return output[-4000:]

    def edit(self, old: str, new: str) -> None:
        path = self.folder / "project.yaml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))


def _ran_idf(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("$ ") and "idf.py" in line]


def _asked(project: Path, app: str) -> dict[str, str]:
    """The options project.yaml asked of `app`: its generated sdkconfig defaults."""
    text = (project / "build" / "generated" / f"{app}.sdkconfig.defaults").read_text()
    return sdkconfig.parse(text)


def _config(project: Path, app: str) -> dict[str, object]:
    path = project / "build" / app / "config" / "sdkconfig.json"
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _image_info(env: dict[str, str], target: str, image: Path) -> str:
    """esptool's own check of an image (this tool's esptool 5)."""
    done = subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", target, "image-info", str(image)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def _check_images(project: Path, app: str, target: str, env: dict[str, str]) -> None:
    """Bootloader and app pass esptool's checks; the manifest lists each file as it is."""
    manifest = json.loads((project / "build" / "manifest.json").read_text())
    entry = manifest["apps"][app]
    assert entry["target"] == target
    assert entry["idf_version"] == "v5.3.2"
    roles = {image["role"]: image for image in entry["images"]}
    assert set(roles) >= {"bootloader", "partition-table", "app"}
    for image in entry["images"]:
        data = (project / image["file"]).read_bytes()
        assert len(data) == image["size"]
        assert hashlib.sha256(data).hexdigest() == image["sha256"], image["file"]
    for role in ("bootloader", "app"):
        info = _image_info(env, target, project / roles[role]["file"])
        assert re.search(r"Checksum: 0x[0-9a-f]+ \(valid\)", info), info
        assert re.search(r"Validation hash: [0-9a-f]+ \(valid\)", info), info
    info = _image_info(env, target, project / roles["app"]["file"])
    assert "ESP-IDF: v5.3.2" in info
    assert f"App version: {entry['version']}" in info


def _bundle_entry(ca_file: Path) -> bytes:
    """The CA as ESP-IDF's certificate bundle holds it: name and key lengths, subject, key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
    name = cert.subject.public_bytes()
    key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return len(name).to_bytes(2, "big") + len(key).to_bytes(2, "big") + name + key


def _espsecure_verify(
    env: dict[str, str], key: Path, image: Path
) -> subprocess.CompletedProcess[str]:
    """espsecure's own check of a Secure Boot V2 signature."""
    command = ["verify-signature", "--version", "2", "--keyfile", str(key), str(image)]
    return subprocess.run(
        [sys.executable, "-m", "espsecure", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _every_option_took_effect(project: Path, app: str) -> int:
    """Each option the generated defaults ask for is in the real sdkconfig.json, as asked."""
    config = _config(project, app)
    asked = _asked(project, app)
    for name, value in asked.items():
        key = name.removeprefix("CONFIG_")
        wanted = sdkconfig.json_value(value)
        if wanted is False:
            assert config.get(key) in (False, None), name
        else:
            assert config.get(key) == wanted, (name, value, config.get(key))
    return len(asked)


# --- the kit and the projects ----------------------------------------------------------------


def _example_project(folder: Path, env: dict[str, str], target: str) -> Project:
    """The built-in example (project.yaml, dodo.py of this repository) for `target`."""
    for name in ("project.yaml", "dodo.py"):
        shutil.copy(REPO / name, folder / name)
    project = Project(folder, env)
    project.edit("\ntarget: esp32\n", f"\ntarget: {target}\n")
    return project


@pytest.fixture(scope="session")
def example_c3(tmp_path_factory: pytest.TempPathFactory, idf_kit: dict[str, str]) -> Project:
    """The built-in example on esp32c3 after one real `doit build`."""
    project = _example_project(tmp_path_factory.mktemp("example-c3"), idf_kit, TARGET)
    code, output = project.doit("build")
    assert code == 0, Project.tail(output)
    (project.folder / "first-build.txt").write_text(output)
    return project


@pytest.fixture(scope="session")
def adopted(tmp_path_factory: pytest.TempPathFactory, idf_kit: dict[str, str]) -> Project:
    """ESP-IDF's advanced_https_ota, adopted by `esp-ota-doit init`, on esp32c6, example_c3."""
    folder = tmp_path_factory.mktemp("adopted-c6") / "advanced_https_ota"
    shutil.copytree(
        Path(idf_kit["IDF_PATH"]) / "examples" / "system" / "ota" / "advanced_https_ota", folder
    )
    env = {**idf_kit, "WIFI_PASSWORD": "kit-test-pass"}  # init writes ${WIFI_PASSWORD}
    init = subprocess.run(
        [str(Path(sys.executable).parent / "esp-ota-doit"), "init", "--target", "esp32c6"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert init.returncode == 0, (init.stdout + init.stderr)[-4000:]
    assert "target: esp32c6 (from --target)" in init.stdout, init.stdout
    project = Project(folder, env)
    code, output = project.doit("build")
    assert code == 0, Project.tail(output)
    return project


# --- the built-in example on esp32c3 ---------------------------------------------------------


def test_build__every_asked_option_in_the_real_sdkconfig(example_c3: Project) -> None:
    output = (example_c3.folder / "first-build.txt").read_text()
    python = Path(example_c3.env["IDF_PYTHON_ENV_PATH"]) / "bin" / "python"
    # idf.py ran under ESP-IDF's Python although this tool's venv came first on PATH.
    assert _ran_idf(output) and all(line.startswith(f"$ {python} ") for line in _ran_idf(output))
    assert "app 'factory': simple_ota.bin 1.0.0 verified" in output
    assert "app 'hello_world': hello_world.bin 1.0.1 verified" in output
    assert _every_option_took_effect(example_c3.folder, "factory") >= 10
    assert _every_option_took_effect(example_c3.folder, "hello_world") >= 5
    config = _config(example_c3.folder, "factory")
    assert config["EXAMPLE_FIRMWARE_UPGRADE_URL"] == "https://127.0.0.1:8070/hello_world.bin"
    assert config["IDF_TARGET"] == TARGET
    for app in ("factory", "hello_world"):
        _check_images(example_c3.folder, app, TARGET, example_c3.env)
    # The factory app trusts the CA that signed the server's certificate: simple_ota_example's
    # own defaults make server_certs/ca_cert.pem its certificate bundle, whose entry is the CA's
    # subject and public key in DER (ESP-IDF's gen_crt_bundle.py).
    assert config["MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH"] == "server_certs/ca_cert.pem"
    image = (example_c3.folder / "build" / "factory" / "simple_ota.bin").read_bytes()
    assert _bundle_entry(example_c3.folder / "certs" / "ca_cert.pem") in image


def test_build__second_run_starts_no_idf_py(example_c3: Project) -> None:
    logs = sorted((example_c3.folder / "build").glob("*/build.log"))
    before = [log.stat().st_mtime_ns for log in logs]
    code, output = example_c3.doit("build")
    assert code == 0, Project.tail(output)
    assert not _ran_idf(output), Project.tail(output)
    assert re.findall(r"(?m)^\.  ", output) == [], Project.tail(output)
    assert "-- build:factory" in output and "-- build:hello_world" in output
    assert [log.stat().st_mtime_ns for log in logs] == before
    assert example_c3.times["build"] < 20, example_c3.times


def test_rehearse__the_real_images_boot(example_c3: Project) -> None:
    code, output = example_c3.doit("rehearse", timeout=300)
    assert code == 0, Project.tail(output)
    assert "synthetic images" not in output
    assert output.rstrip().endswith("booted ota_0: hello_world 1.0.1"), Project.tail(output)
    # The flashed factory app is the real one, byte for byte.
    flash = (example_c3.folder / "build" / "virtual" / f"{TARGET}-flash.bin").read_bytes()
    app = (example_c3.folder / "build" / "factory" / "simple_ota.bin").read_bytes()
    assert flash[0x10000 : 0x10000 + len(app)] == app


def test_rehearse__chip_rev_is_refused_by_esptool(example_c3: Project) -> None:
    """ESP-IDF v5.3's esp32c3 images ask for v0.3 - v1.99; the board is v0.4; one built for
    v0.5 is refused with esptool's own words."""
    code, output = example_c3.doit("rehearse", "--fail", "chip-rev", timeout=300)
    assert code == 0, Project.tail(output)
    assert (
        "the board was not written: esptool: Input requires chip revision in range v0.5 - v1.99 "
        "(this chip is revision v0.4)" in output
    )


def test_flash_and_status__the_board_holds_the_real_images(
    example_c3: Project, tmp_path: Path
) -> None:
    from esp_ota_doit.rehearsal.virtual_board import VirtualBoard

    board = VirtualBoard(tmp_path / "board.bin", target=TARGET, flash_size=4 << 20)
    with board:
        code, output = example_c3.doit("flash", "--port", board.port, timeout=300)
        assert code == 0, Project.tail(output)
        code, status = example_c3.doit("status", "--port", board.port, timeout=300)
        assert code == 0, Project.tail(status)
    flash = (tmp_path / "board.bin").read_bytes()
    for role, offset, name in (
        ("bootloader", 0x0, "bootloader/bootloader.bin"),
        ("partition table", 0x8000, "partition_table/partition-table.bin"),
        ("app", 0x10000, "simple_ota.bin"),
    ):
        image = (example_c3.folder / "build" / "factory" / name).read_bytes()
        assert flash[offset : offset + len(image)] == image, role
    bootloader = (example_c3.folder / "build/factory/bootloader/bootloader.bin").read_bytes()
    assert (
        f"bootloader at 0x0: {len(bootloader)} bytes, SHA-256 "
        f"{hashlib.sha256(bootloader).hexdigest()[:16]}, chip revision v0.3 - v1.99" in status
    ), status
    assert "partition table at 0x8000:" in status
    assert re.search(r"factory +app +factory +0x10000", status), status
    assert "boots: factory" in status
    assert re.search(r"factory +simple_ota 1\.0\.0 \(ESP-IDF v5\.3\.2\)", status), status
    assert re.search(r"ota_0 +no app", status), status


def test_reproduce__every_image_identical(example_c3: Project) -> None:
    code, output = example_c3.doit("reproduce", timeout=1800)
    assert code == 0, Project.tail(output)
    assert "every image and ELF is byte-identical across both builds" in output
    assert "DIFFERENT" not in output


def test_took_effect__names_why_real_esp_idf_dropped_an_option(example_c3: Project) -> None:
    """CONFIG_MBEDTLS_HARDWARE_ECC depends on SOC_ECC_SUPPORTED, which the C3 lacks: ESP-IDF's
    own configure step (idf.py reconfigure) drops it, and the check after the build says why.
    Loading project.yaml says the same before any build."""
    staged = example_c3.folder / "build" / "src" / "hello_world"
    work = example_c3.folder / "build" / "drop-check"
    extra = work / "extra.defaults"
    work.mkdir(parents=True, exist_ok=True)
    extra.write_text("CONFIG_MBEDTLS_HARDWARE_ECC=y\n")
    python = Path(example_c3.env["IDF_PYTHON_ENV_PATH"]) / "bin" / "python"
    done = subprocess.run(
        [
            str(python),
            str(Path(example_c3.env["IDF_PATH"]) / "tools" / "idf.py"),
            "-C",
            str(staged),
            "-B",
            str(work / "build"),
            "-D",
            f"SDKCONFIG={work / 'sdkconfig'}",
            "-D",
            f"SDKCONFIG_DEFAULTS={extra}",
            "-D",
            f"IDF_TARGET={TARGET}",
            "reconfigure",
        ],
        env=example_c3.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    config_dir = work / "build" / "config"
    config = json.loads((config_dir / "sdkconfig.json").read_text())
    assert config.get("MBEDTLS_HARDWARE_ECC") in (None, False)
    problems = took_effect.unmet(
        [("CONFIG_MBEDTLS_HARDWARE_ECC", "y", "apps.hello_world.sdkconfig")],
        config,
        written=sdkconfig.parse((work / "sdkconfig").read_text()),
        menus=json.loads((config_dir / "kconfig_menus.json").read_text()),
        renames=kconfgen.build_renames(work / "build"),
        target=TARGET,
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        "CONFIG_MBEDTLS_HARDWARE_ECC (from apps.hello_world.sdkconfig)"
    ), problems
    assert "depends on SOC_ECC_SUPPORTED" in problems[0], problems
    shutil.rmtree(work)


def test_signing__real_images_verify_with_espsecure(example_c3: Project, tmp_path: Path) -> None:
    """ota.sign's step on the real images: each app signed as `doit build` signs it (Secure
    Boot V2, RSA-3072), then espsecure verifies it; one flipped signature byte fails.

    A build with ota.sign itself does not link with this kit: the app's signature check needs
    RSA from Mbed TLS, and the kit's upstream Mbed TLS 3.6.2 (a substitute for Espressif's fork)
    clashes with ESP-IDF's bignum port (`multiple definition of mbedtls_mpi_mul_mpi`); the ECDSA
    scheme on the C6 misses `ets_ecdsa_verify`. With Espressif's own ESP-IDF it builds."""
    from esp_ota_doit.idf import signing

    key = tmp_path / "signing_key.pem"
    signing.new_key("rsa3072", key)
    for app, image in (("factory", "simple_ota"), ("hello_world", "hello_world")):
        unsigned = (example_c3.folder / "build" / app / f"{image}.bin").read_bytes()
        signed = tmp_path / f"{image}-signed.bin"
        signed.write_bytes(signing.sign(key, unsigned))
        done = _espsecure_verify(example_c3.env, key, signed)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert "Signature block 0 verification successful" in done.stdout, done.stdout
        data = bytearray(signed.read_bytes())
        data[len(data) - signing.SECTOR + 36 + 776 + 8] ^= 0xFF  # in the RSA signature value
        signed.write_bytes(bytes(data))
        assert _espsecure_verify(example_c3.env, key, signed).returncode != 0


# The tests below change the example's project.yaml: they come last.


def test_build__one_option_edited_rebuilds_only_its_app(example_c3: Project) -> None:
    example_c3.edit(
        'hello_world: {path: "idf:examples/get-started/hello_world", version: 1.0.1}',
        'hello_world: {path: "idf:examples/get-started/hello_world", version: 1.0.1, '
        "sdkconfig: {CONFIG_FREERTOS_HZ: 1000}}",
    )
    code, output = example_c3.doit("build")
    assert code == 0, Project.tail(output)
    ran = _ran_idf(output)
    assert len(ran) == 1 and "/build/src/hello_world " in ran[0], ran
    assert "-- build:factory" in output
    assert _config(example_c3.folder, "hello_world")["FREERTOS_HZ"] == 1000
    assert _config(example_c3.folder, "factory")["FREERTOS_HZ"] == 100
    assert _every_option_took_effect(example_c3.folder, "hello_world") >= 6


# --- an adopted ESP-IDF example on esp32c6 ---------------------------------------------------


def test_adopted__builds_flashes_and_reads_back_on_esp32c6(
    adopted: Project, tmp_path: Path
) -> None:
    from esp_ota_doit.rehearsal.virtual_board import VirtualBoard

    app = "advanced_https_ota"
    assert _every_option_took_effect(adopted.folder, app) >= 8
    _check_images(adopted.folder, app, "esp32c6", adopted.env)
    code, output = adopted.doit("build")
    assert code == 0 and not _ran_idf(output), Project.tail(output)
    board = VirtualBoard(tmp_path / "board.bin", target="esp32c6", flash_size=4 << 20)
    with board:
        code, output = adopted.doit("flash", "--port", board.port, timeout=300)
        assert code == 0, Project.tail(output)
        code, status = adopted.doit("status", "--port", board.port, timeout=300)
        assert code == 0, Project.tail(status)
    assert re.search(r"factory +advanced_https_ota 1 \(ESP-IDF v5\.3\.2\)", status), status
