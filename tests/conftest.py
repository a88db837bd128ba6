"""Shared fixtures: the shared/ reference folder, a clean environment, a project in a temp dir."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"

# Variables that would make a test depend on the machine it runs on.
_SCRUBBED = (
    "ESPPORT",
    "ESPBAUD",
    "IDF_PATH",
    "IDF_TARGET",
    "IDF_PYTHON_ENV_PATH",
    "WIFI_PASSWORD",
    "OTA_HOST",
    "OTA_CA_CERT",
    "OTA_CA_KEY",
    "OTA_ENCRYPTION_KEY",
    "OTA_SIGNING_KEY",
    "OTA_SIGNING_KEY_PASSPHRASE",
)


def pytest_configure(config: pytest.Config) -> None:
    """Many tests run doit, the idf.py stand-in and esptool as child processes. Where
    PYTHONDONTWRITEBYTECODE is set (some CI images set it), each child would compile this package
    from source again, about 75 ms a process: they keep the compiled modules (in the ignored
    __pycache__ folders), as Python does on a user's machine."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


@pytest.fixture
def shared() -> Path:
    """The shared/ folder next to the checkout (real ESP-IDF files and golden pairs)."""
    if not SHARED.is_dir():
        pytest.skip("shared/ folder absent (../shared next to the checkout)")
    return SHARED


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    # Tests never depend on this machine's LAN address.
    monkeypatch.setenv("OTA_HOST", "127.0.0.1")


@pytest.fixture(autouse=True)
def project_lock_released() -> Iterator[None]:
    """In-process doit runs keep the project lock for the process; give it up after each test."""
    yield
    from esp_ota_doit import graph

    graph.release_lock()


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the example project (project.yaml, dodo.py) in a temp dir, as the cwd."""
    for name in ("project.yaml", "dodo.py"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-ESP-IDF tests (marker idf_kit) take minutes: they run only when asked."""
    from tests import idfkit

    if idfkit.asked(config):
        return
    for item in items:
        if "idf_kit" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=idfkit.NOT_ASKED))


@pytest.fixture(scope="session")
def idf_kit() -> dict[str, str]:
    """The environment of a shell with the real ESP-IDF v5.3.2 kit exported (tests/idfkit.py)."""
    from tests import idfkit

    return idfkit.environment()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests import idfkit

    idfkit.summary(terminalreporter.write_line)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current output (review the diff in git)",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[Path, bytes], None]:
    """Compare bytes with a golden file, or rewrite it under --update-golden."""
    update = bool(request.config.getoption("--update-golden"))

    def check(path: Path, actual: bytes) -> None:
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual)
        assert path.exists(), f"{path} missing; run pytest --update-golden and review it"
        assert actual == path.read_bytes(), f"{path.name} differs from the golden file"

    return check


FAKE_IDF = REPO / "tests" / "fakes" / "idf.py"


def install_fake_idf(root: Path, setenv: Callable[[str, str], None]) -> Path:
    """A synthetic ESP-IDF under `root`, with the logging stand-in idf.py first on PATH."""
    from esp_ota_doit.idf import idftool
    from esp_ota_doit.rehearsal import virtual_idf

    idf_path = root / "esp-idf"
    virtual_idf.write(idf_path)
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "idf.py"
    if not launcher.exists():
        # This interpreter by its absolute path: no `python3` on PATH is assumed (the suite runs
        # with only the README's test command, whatever PATH holds).
        launcher.write_text(
            f"#!{sys.executable}\nimport runpy\n"
            f"runpy.run_path({str(FAKE_IDF)!r}, run_name='__main__')\n"
        )
        launcher.chmod(0o755)
    setenv("IDF_PATH", str(idf_path))
    setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    setenv("FAKE_IDF_LOG", str(root / "idf-calls.jsonl"))
    idftool._version_of.cache_clear()
    return idf_path


@pytest.fixture
def idf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ESP-IDF (example skeletons) under tmp_path; the stand-in idf.py first on PATH."""
    return install_fake_idf(tmp_path, monkeypatch.setenv)


@pytest.fixture
def built(project_dir: Path, idf: Path) -> Path:
    """The example project after a successful `doit build`."""
    from tests.doitrun import run

    code, results = run(project_dir, "build")
    assert code == 0, results
    return project_dir


APPS = DATA / "apps"


# The real ESP-IDF Kconfig subsets in shared/esp-idf/kconfig/, one per release.
IDF_TAGS = ("v5.3.2", "v5.4.4", "v5.5.5", "v6.0.2")


@pytest.fixture(scope="session")
def idf_tree(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """ESP-IDF's real Kconfig subset of a release (shared/), extracted once per session: an
    IDF_PATH for kconfgen and gen_esp32part.py, with no toolchain."""
    import tarfile

    trees: dict[str, Path] = {}

    def extract(tag: str) -> Path:
        if tag not in trees:
            archive = SHARED / "esp-idf" / "kconfig" / f"idf-{tag}-kconfig.tar.xz"
            if not archive.is_file():
                pytest.skip(f"{archive} absent (../shared next to the checkout)")
            root = tmp_path_factory.mktemp(f"idf-{tag}")
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")
            trees[tag] = root
        return trees[tag]

    return extract


@pytest.fixture(scope="session")
def idf_v53(idf_tree: Callable[[str], Path]) -> Path:
    """ESP-IDF v5.3.2's real Kconfig subset, extracted once."""
    return idf_tree("v5.3.2")


@pytest.fixture(scope="session")
def kconfgen_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path | None]:
    """An IDF_PYTHON_ENV_PATH whose kconfgen is the one a release runs: None for this venv's
    (esp-idf-kconfig 2.x, v5.3 to v5.5); for v6.0 a venv with esp-idf-kconfig 3.x, made once
    per session from the package index (skips when it cannot be installed)."""
    import subprocess
    import sys

    made: dict[str, Path] = {}

    def env_for(tag: str) -> Path | None:
        if not tag.startswith("v6."):
            return None
        if "3" not in made:
            venv = tmp_path_factory.mktemp("kconfgen3")
            try:
                subprocess.run(
                    [sys.executable, "-m", "venv", "--without-pip", str(venv)],
                    check=True, timeout=120, capture_output=True,
                )  # fmt: skip
                subprocess.run(
                    [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                     "install", "-q", "esp-idf-kconfig>=3.2,<4"],
                    check=True, timeout=300, capture_output=True,
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError) as error:
                # pip from the package index failed: v6.0's kconfgen (esp-idf-kconfig 3.x)
                pytest.skip(reason=f"esp-idf-kconfig 3.x not installed: {error}")
            made["3"] = venv
        return made["3"]

    return env_for


@pytest.fixture
def app_copy(tmp_path: Path) -> Callable[[str], Path]:
    """A fresh copy of a sample app from tests/data/apps/, by name."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(APPS / name, target, symlinks=True)
        return target

    return copy


@pytest.fixture
def rehearsal(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example project on a machine with no ESP-IDF (idf.py nowhere on PATH)."""
    monkeypatch.delenv("IDF_PATH", raising=False)
    folders = os.environ["PATH"].split(os.pathsep)
    monkeypatch.setenv(
        "PATH", os.pathsep.join(f for f in folders if not (Path(f) / "idf.py").exists())
    )
    return project_dir
