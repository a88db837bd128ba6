"""The rehearsal is an optional part: without the `rehearse` extra (esp32-mock-bootloader,
esp-idf-kconfig) every other task works and `doit rehearse` says in one line what to install.

No second venv: doit runs in a child with tests/extras_only/ on PYTHONPATH, which makes the
extra's modules unimportable there (and in that child's Python children).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.conftest import REPO
from tests.doitrun import doit_process, edit

HOOK = REPO / "tests" / "extras_only"
INSTALL = "pip install 'esp-ota-doit[rehearse]'"


def _extra_modules() -> list[str]:
    """The top-level modules the rehearse extra's own distributions install."""
    extra = {canonicalize_name(d) for d in ("esp32-mock-bootloader", "esp-idf-kconfig")}
    return sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if any(canonicalize_name(dist) in extra for dist in dists)
    )


def _without_extra() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{HOOK}{os.pathsep}{REPO}"}
    env["EXTRAS_ONLY_BLOCK"] = ",".join(_extra_modules())
    return env


def _idf_with_its_own_kconfgen(bin_dir: Path) -> None:
    """ESP-IDF's idf.py brings its own kconfgen (in ESP-IDF's Python): the fake gets the
    extra's modules back, where this tool's doit cannot import them."""
    fake = REPO / "tests" / "fakes" / "idf.py"
    (bin_dir / "idf.py").write_text(
        f"#!{sys.executable}\nimport os, runpy, sys\n"
        "for name in os.environ.pop('EXTRAS_ONLY_BLOCK', '').split(','):\n"
        "    if name and name in sys.modules and sys.modules[name] is None:\n"
        "        del sys.modules[name]\n"
        f"runpy.run_path({str(fake)!r}, run_name='__main__')\n"
    )


def test_optional__the_block_holds() -> None:
    """The check below can fail: in the child, neither the emulator nor kconfgen imports."""
    assert {"esp32_mock_bootloader", "kconfgen"} <= set(_extra_modules())
    for module in ("esp32_mock_bootloader", "kconfgen"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            env=_without_extra(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, module


def test_optional__every_other_task_works_and_rehearse_says_what_to_install(
    project_dir: Path, idf: Path
) -> None:
    from esp_ota_doit.rehearsal.virtual_board import VirtualBoard

    _idf_with_its_own_kconfgen(idf.parent / "bin")
    with socket.create_server(("127.0.0.1", 0)) as probe:  # a free loopback port for serve
        port = probe.getsockname()[1]
    edit(project_dir, "https://auto:8070/", f"https://auto:{port}/")
    edit(project_dir, "bind: 0.0.0.0", "bind: 127.0.0.1")
    env = {**_without_extra(), "OTA_HOST": "127.0.0.1"}
    listed = doit_process(project_dir, "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "rehearse " in listed.stdout and "build " in listed.stdout
    made = doit_process(project_dir, "build", "release", env=env, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (project_dir / "build" / "generated" / "partition-table.bin").is_file()
    assert (project_dir / "certs" / "server_cert.pem").is_file()
    assert (project_dir / "build" / "factory" / "app.json").is_file()
    assert (project_dir / "releases" / "hello_world" / "1.0.1" / "release.json").is_file()
    # The board is this process's (it has the emulator); doit in the child only needs esptool.
    with VirtualBoard(project_dir / "board.bin", target="esp32", flash_size=4 << 20) as board:
        flashed = doit_process(project_dir, "flash", "--port", board.port, env=env)
    assert flashed.returncode == 0, flashed.stdout + flashed.stderr
    assert " bytes written" in flashed.stdout
    _serves_the_release(project_dir, env, port)
    for args in (("rehearse",), ("rehearse", "--fail", "cut")):
        done = doit_process(project_dir, *args, env=env)
        assert done.returncode == 1, done.stdout + done.stderr
        output = done.stdout + done.stderr
        assert (
            "doit rehearse needs esp32-mock-bootloader and esp-idf-kconfig (the rehearse extra): "
            f"{INSTALL}\n"
        ) in output
        assert "Traceback" not in output
    assert not (project_dir / "build" / "virtual").exists()


def _serves_the_release(project_dir: Path, env: dict[str, str], port: int) -> None:
    """`doit serve` in the child answers with the released image over TLS, then stops on Ctrl-C."""
    import ssl
    import urllib.request

    child = subprocess.Popen(
        [sys.executable, "-m", "doit", "serve"],
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Reading its output is bounded: a child silent for 60 s is killed, which ends the loop.
    watchdog = threading.Timer(60, lambda: os.killpg(child.pid, signal.SIGKILL))
    watchdog.start()
    try:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line)
            if f":{port}" in line or "Traceback" in line or len(lines) > 200:
                break
        assert any(f":{port}" in line for line in lines), "".join(lines)
        context = ssl.create_default_context(cafile=str(project_dir / "certs" / "ca_cert.pem"))
        url = f"https://127.0.0.1:{port}/hello_world.bin"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            body = response.read()
        image = project_dir / "releases" / "hello_world" / "1.0.1" / "hello_world.bin"
        assert body == image.read_bytes()
        os.killpg(child.pid, signal.SIGINT)
        assert child.wait(timeout=20) == 0
    finally:
        watchdog.cancel()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)


@pytest.mark.parametrize("absent", ["esp32_mock_bootloader", "kconfgen"])
def test_optional__rehearse_names_the_one_that_is_missing(
    project_dir: Path, absent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.doitrun import run_with_output

    monkeypatch.setitem(sys.modules, absent, None)
    code, results, text = run_with_output(project_dir, "rehearse")
    assert code == 1
    dist = {"esp32_mock_bootloader": "esp32-mock-bootloader", "kconfgen": "esp-idf-kconfig"}
    assert f"doit rehearse needs {dist[absent]} (the rehearse extra): {INSTALL}" in text
    assert set(results) == {"rehearse"}  # nothing was built or rendered for it
