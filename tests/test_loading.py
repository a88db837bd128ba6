"""Loading touches nothing: project.yaml becomes a Project without a child process, and the
commands that only read the task list (list, help, info) start none; kconfgen runs in the
kconfig task, whose findings still fail the run as project.yaml:L:C: lines."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from esp_ota_doit import graph, wiring

from tests.doitrun import doit_process, edit

_SPAWNS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "system")


@pytest.fixture
def no_child(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way this interpreter starts a program, made to record and refuse."""
    started: list[str] = []

    def refuse(name: str) -> object:
        def refused(*args: object, **kwargs: object) -> object:
            started.append(f"{name} {args[:2]}")
            raise AssertionError(f"{name} called while loading")

        return refused

    monkeypatch.setattr(subprocess, "Popen", refuse("Popen"))
    for name in _SPAWNS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(name))
    return started


def test_load_project__with_esp_idf_here_starts_no_process(
    project_dir: Path, idf_v53: Path, monkeypatch: pytest.MonkeyPatch, no_child: list[str]
) -> None:
    # With ESP-IDF's Kconfig and kconfgen here, loading used to run kconfgen for every app.
    monkeypatch.setenv("IDF_PATH", str(idf_v53))
    edit(project_dir, "sdkconfig: {}", "sdkconfig: {CONFIG_FREERTOS_HZ: fast}")
    project = wiring.load_project()
    assert project.kconfig == ()  # the kconfig task's to find, not loading's
    wiring.release_lock()
    assert DoitMain(ModuleTaskLoader(graph)).run(["list", "--all"]) == 0
    assert no_child == []


def _recording_python(folder: Path, log: Path) -> Path:
    """An IDF_PYTHON_ENV_PATH whose python only writes down that it ran (then fails)."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 1\n')
    python.chmod(0o755)
    return folder


def test_reading_commands__start_no_kconfgen(project_dir: Path, idf_v53: Path) -> None:
    log = project_dir / "kconfgen.log"
    env = {
        **os.environ,
        "IDF_PATH": str(idf_v53),
        "IDF_PYTHON_ENV_PATH": str(_recording_python(project_dir / "idf-env", log)),
    }
    for command in (["list"], ["list", "--all"], ["help", "render"], ["info", "kconfig"]):
        done = doit_process(project_dir, *command, env=env)
        assert done.returncode in (0, 1), done.stdout + done.stderr  # info: 1 when not current
        assert "Traceback" not in done.stderr
    assert not log.exists(), log.read_text()
    assert not (project_dir / "build").exists()
    # The same fake is what the kconfig task runs: it would have been seen.
    done = doit_process(project_dir, "kconfig", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "kconfgen" in log.read_text()


def test_reading_commands__a_bad_project_yaml_is_still_one_line(project_dir: Path) -> None:
    edit(project_dir, "flash_app: factory", "flash_app: factroy")
    # (doit's own `help <task>` answers a task list it cannot load with its general help.)
    for command in (["list"], ["list", "--all"], ["info", "render:partitions"]):
        done = doit_process(project_dir, *command)
        assert done.returncode == 3, command
        assert done.stderr.startswith("ERROR: project.yaml:"), done.stderr
        assert "flash_app: no app 'factroy' in apps" in done.stderr
        assert "Traceback" not in done.stderr


def test_load_project__auto_host_is_no_probe(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto` stays `auto` while loading; the host task finds the address, and what puts the URL
    in a file reads it from build/facts/host.json when it runs, and again once it changes."""
    from esp_ota_doit.config import hosts

    from tests.doitrun import run

    monkeypatch.delenv("OTA_HOST")
    # Without ESP-IDF the app's Kconfig cannot say which option holds the URL: project.yaml does.
    edit(
        project_dir,
        "version: 1.0.0, ota_client: true}",
        "version: 1.0.0, ota_client: true, url_option: CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL}",
    )

    def no_probe() -> str:
        raise AssertionError("the LAN address was probed while loading")

    monkeypatch.setattr(hosts, "lan_address", no_probe)
    project = wiring.load_project()
    assert project.ota is not None and project.ota.host == hosts.AUTO
    wiring.release_lock()
    assert DoitMain(ModuleTaskLoader(graph)).run(["list", "--all"]) == 0

    monkeypatch.setattr(hosts, "lan_address", lambda: "192.0.2.9")
    code, results = run(project_dir, "render:sdkconfig-factory", "certs")
    assert (code, results["host"], results["certs"]) == (0, "success", "success")
    defaults = project_dir / "build/generated/factory.sdkconfig.defaults"
    assert 'CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL="https://192.0.2.9:8070/hello_world.bin"' in (
        defaults.read_text()
    )
    assert hosts.read(project_dir / "build/facts/host.json").host == "192.0.2.9"
    leaf = (project_dir / "certs/server_cert.pem").read_bytes()
    code, results = run(project_dir, "render:sdkconfig-factory", "certs")
    assert (code, results["host"], results["certs"]) == (0, "up-to-date", "up-to-date")

    monkeypatch.setattr(hosts, "lan_address", lambda: "192.0.2.10")  # another network
    code, results = run(project_dir, "render:sdkconfig-factory", "certs")
    assert (code, results["host"], results["certs"]) == (0, "success", "success")
    assert "https://192.0.2.10:8070/" in defaults.read_text()
    assert (project_dir / "certs/server_cert.pem").read_bytes() != leaf  # reissued for it
