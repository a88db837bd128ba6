"""The distribution as a user gets it: sdist → wheel, installed into a fresh venv outside the
repository, then `esp-ota-doit init` in copies of the sample apps (one with an unrelated
tasks.py beside it), and render, certs, build (the idf.py stand-in) and rehearse there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import APPS, REPO, install_fake_idf
from tests.test_adopt import SENSOR_CHOICES

pytestmark = pytest.mark.e2e

_PACKAGED = ("pyproject.toml", "setup.py", "README.md", "tasks", "templates")


def _run(
    command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _ok(command: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    done = _run(command, cwd=cwd, env=env)
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built from a copy of the packaged files, then a wheel built from the sdist
    (so a file missing from the sdist is missing from the wheel too); offline, no isolation."""
    work = tmp_path_factory.mktemp("dist")
    source, dist = work / "src", work / "dist"
    source.mkdir()
    for name in _PACKAGED:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(REPO / name, source / name)
    env = dict(os.environ)
    sdist = (
        _ok(
            [
                sys.executable,
                "-c",
                f"from setuptools import build_meta as b; print(b.build_sdist({str(dist)!r}))",
            ],
            cwd=source,
            env=env,
        )
        .strip()
        .splitlines()[-1]
    )
    _ok(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(dist / sdist),
        ],
        cwd=work,
        env=env,
    )
    (built,) = dist.glob("esp_ota_doit-*.whl")
    return built


def test_wheel__ships_the_templates_under_the_projects_own_import_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "esp_ota_doit/templates/sdkconfig.defaults.j2" in names
    assert "esp_ota_doit/templates/project.yaml.j2" in names
    assert not [name for name in names if name.startswith("tasks/")]
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert (
        "esp-ota-doit = esp_ota_doit.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with the wheel installed; the dependencies come from
    this test run's environment (a .pth line), so nothing is downloaded."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _ok(
        [sys.executable, "-m", "venv", "--without-pip", str(root)],
        cwd=root.parent,
        env=dict(os.environ),
    )
    python = root / "bin" / "python"
    _ok(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        cwd=root.parent,
        env=dict(os.environ),
    )
    site = Path(
        _ok(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=root,
            env=dict(os.environ),
        ).strip()
    )
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def _env(venv: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "IDF_PATH", "VIRTUAL_ENV") and not key.startswith("PYTEST")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def test_venv__imports_the_installed_package_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    where = _ok(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import esp_ota_doit.paths as p; print(p.__file__); print(p.TEMPLATES)",
        ],
        cwd=tmp_path,
        env=_env(venv),
    ).splitlines()
    assert all(line.startswith(str(venv)) for line in where), where


def test_installed__empty_option_values_are_one_line(venv: Path, wheel: Path) -> None:
    """esp_ota_doit.pth (top of site-packages) keeps doit's argv loop off an empty value."""
    assert "esp_ota_doit.pth" in zipfile.ZipFile(wheel).namelist()
    folder = venv.parent / "empty-options"
    folder.mkdir()
    shutil.copy(REPO / "project.yaml", folder)
    shutil.copy(REPO / "dodo.py", folder)
    done = _run(["doit", "boot", "--slot", ""], cwd=folder, env=_env(venv))
    assert (done.returncode, done.stderr) == (
        3,
        "ERROR: --slot: '' is empty; name an app slot (factory, ota_0, ...)\n",
    )


def _adopt(venv: Path, app: str, tmp_path: Path, idf_v53: Path) -> Path:
    folder = tmp_path / app
    shutil.copytree(APPS / app, folder)
    _ok(["esp-ota-doit", "init"], cwd=folder, env=_env(venv, IDF_PATH=str(idf_v53)))
    return folder


def test_installed__init_render_certs_build_rehearse_in_an_adopted_app(
    venv: Path, tmp_path: Path, idf_v53: Path
) -> None:
    folder = _adopt(venv, "sensor_node", tmp_path, idf_v53)
    # An unrelated tasks.py next to dodo.py (invoke's convention) must not shadow the package.
    (folder / "tasks.py").write_text("import invoke  # noqa\n")
    env = _env(venv, OTA_HOST="127.0.0.1", WIFI_PASSWORD="")
    fake = tmp_path / "fake-idf"
    fake.mkdir()
    build_env = dict(env)
    install_fake_idf(fake, build_env.__setitem__)
    for command in (["render"], ["certs"], ["build"]):
        _ok(["doit", *command], cwd=folder, env=build_env)
    # The table equals what ESP-IDF's own gen_esp32part.py makes of the app's CSV.
    golden = tmp_path / "golden.bin"
    _ok(
        [
            sys.executable,
            str(idf_v53 / "components/partition_table/gen_esp32part.py"),
            "--flash-size",
            "8MB",
            "-q",
            str(folder / "partitions_8mb.csv"),
            str(golden),
        ],
        cwd=tmp_path,
        env=env,
    )
    table = folder / "build/generated/partition-table.bin"
    assert table.read_bytes() == golden.read_bytes()
    # The defaults handed to idf.py set the app's own URL option and keep every menuconfig choice.
    defaults = (folder / "build/generated/sensor_node.sdkconfig.defaults").read_text()
    assert 'CONFIG_SENSOR_OTA_URL="https://127.0.0.1:8443/fw/sensor-node.bin"' in defaults
    for name, value in SENSOR_CHOICES.items():
        written = {True: "y", False: "n"}.get(value, value) if isinstance(value, bool) else value
        assert f"{name}={written}" in defaults
    built = (folder / "build/sensor_node/config/sdkconfig.json").read_text()
    assert '"FREERTOS_HZ": 1000' in built and '"SENSOR_SAMPLE_PERIOD_MS": 500' in built
    out = _ok(["doit", "rehearse"], cwd=folder, env=env)
    # No factory partition: the bootloader starts ota_0, and the update to the next version
    # (apps.sensor_node_next, which the rehearsal builds) lands in ota_1.
    assert out.rstrip().endswith("booted ota_1: sensor-node 2.4.2"), out[-2000:]


def test_installed__the_seed_shaped_app_rehearses(
    venv: Path, tmp_path: Path, idf_v53: Path
) -> None:
    folder = _adopt(venv, "ota_seed", tmp_path, idf_v53)
    env = _env(venv, OTA_HOST="127.0.0.1", WIFI_PASSWORD="secret-pass")
    out = _ok(["doit", "rehearse"], cwd=folder, env=env)
    # Updated to the next version of itself, which the rehearsal builds.
    assert "\nbooted ota_0: seed_ota 0.9.1\n" in out + "\n", out[-2000:]
    # The app's own embedded CA is never overwritten: the project's CA goes into the staged copy.
    ca = Path("server_certs") / "ca_cert.pem"
    assert (folder / ca).read_bytes() == (APPS / "ota_seed" / ca).read_bytes()
    assert (folder / "build/virtual/src/seed_ota" / ca).read_bytes() == (
        folder / "certs" / "ca_cert.pem"
    ).read_bytes()
