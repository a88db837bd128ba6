"""project.yaml's CONFIG_ options against ESP-IDF's real Kconfig (shared/ subsets of v5.3.2,
v5.4.4, v5.5.5 and v6.0.2), evaluated by the kconfgen each release runs: typed values, renamed,
unknown and dependency-off options, before any build."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from esp_ota_doit.config import loader
from esp_ota_doit.config.model import Project
from esp_ota_doit.errors import ConfigErrors
from esp_ota_doit.firmware import defaults, kconfig_source

_YAML = """\
name: demo
target: {target}
idf: {{version: "{version}"}}
flash: {{size: 4MB}}
apps:
  factory: {{path: "idf:examples/system/ota/simple_ota_example", version: 1.0.0,
            ota_client: true{factory}}}
  hello_world: {{path: "idf:examples/get-started/hello_world", version: 1.0.1{hello}}}
flash_app: factory
ota: {{url: "https://127.0.0.1:8070/hello_world.bin", image: hello_world}}
sdkconfig:
{common}
"""
# One of every type: a bool choice member written `y`, an int written in hex, a hex written as
# a plain YAML number (the number 16, not 0x16), a string that needs escaping, a renamed bool.
_COMMON = """\
  CONFIG_LOG_DEFAULT_LEVEL_DEBUG: y
  CONFIG_FREERTOS_HZ: 0x3E8
  CONFIG_BOOTLOADER_CUSTOM_RESERVE_RTC: true
  CONFIG_BOOTLOADER_CUSTOM_RESERVE_RTC_SIZE: 16
  CONFIG_LWIP_LOCAL_HOSTNAME: 'ota "node" \\ 1'
  CONFIG_OTA_ALLOW_HTTP: true
"""
_WANTED = {
    "LOG_DEFAULT_LEVEL_DEBUG": True,
    "LOG_DEFAULT_LEVEL": 4,
    "FREERTOS_HZ": 1000,
    "BOOTLOADER_CUSTOM_RESERVE_RTC_SIZE": 16,
    "LWIP_LOCAL_HOSTNAME": 'ota "node" \\ 1',
    "ESP_HTTPS_OTA_ALLOW_HTTP": True,
}
_RELEASES = [
    ("v5.3.2", "esp32"),
    ("v5.3.2", "esp32c3"),
    ("v5.4.4", "esp32s3"),
    ("v5.4.4", "esp32c6"),
    ("v5.5.5", "esp32"),
    ("v5.5.5", "esp32c5"),
    ("v6.0.2", "esp32c3"),
    ("v6.0.2", "esp32c5"),
]


@pytest.fixture
def load(
    tmp_path: Path,
    idf_tree: Callable[[str], Path],
    kconfgen_env: Callable[[str], Path | None],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[Project | ConfigErrors, list[str]]]:
    def run(
        tag: str, target: str, *, common: str = _COMMON, factory: str = "", hello: str = ""
    ) -> tuple[Project | ConfigErrors, list[str]]:
        env = {"IDF_PATH": str(idf_tree(tag))}
        python_env = kconfgen_env(tag)
        if python_env is not None:
            env["IDF_PYTHON_ENV_PATH"] = str(python_env)
        text = _YAML.format(
            target=target, version=tag[1:4], common=common, factory=factory, hello=hello
        )
        warnings: list[str] = []
        project = loader.load(
            text, file="project.yaml", env=env, resolve_host=lambda host: host, project_dir=tmp_path
        )
        facts = {app.name: tmp_path / f"{app.name}.facts.json" for app in project.apps}
        try:
            kconfig_source.evaluate_apps(project, text, facts, env, warn=warnings.append)
        except ConfigErrors as errors:
            assert not [path for path in facts.values() if path.exists()]  # nothing half-written
            return errors, warnings
        found = tuple((name, kconfig_source.read(path).kconfig) for name, path in facts.items())
        assert all(kconfig is not None for _, kconfig in found)
        return dataclasses.replace(project, kconfig=found), warnings  # type: ignore[arg-type]

    return run


@pytest.mark.parametrize(("tag", "target"), _RELEASES)
def test_render__every_type_ends_with_the_wanted_value(
    load: Callable[..., tuple[Project | ConfigErrors, list[str]]], tag: str, target: str
) -> None:
    project, warnings = load(tag, target)
    assert isinstance(project, Project), str(project)
    assert warnings == [
        "project.yaml:17:3: sdkconfig.CONFIG_OTA_ALLOW_HTTP: CONFIG_OTA_ALLOW_HTTP was replaced "
        "with CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP; write CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP"
    ]
    for app in project.apps:
        kconfig = project.kconfig_of(app.name)
        assert kconfig is not None and kconfig.release == tag[1:]
        got = {name: kconfig.values.get(name) for name in _WANTED}
        assert got == _WANTED, app.name
        lines = dict(defaults.plan(project, app, partitions_csv=Path("p.csv")).groups)
        assert lines["project.yaml sdkconfig"] == (
            ("CONFIG_LOG_DEFAULT_LEVEL_DEBUG", "y"),
            ("CONFIG_FREERTOS_HZ", "1000"),
            ("CONFIG_BOOTLOADER_CUSTOM_RESERVE_RTC", "y"),
            ("CONFIG_BOOTLOADER_CUSTOM_RESERVE_RTC_SIZE", "0x10"),
            ("CONFIG_LWIP_LOCAL_HOSTNAME", '"ota \\"node\\" \\\\ 1"'),
            ("CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP", "y"),
        )


@pytest.mark.parametrize("tag", ["v5.3.2", "v6.0.2"])
def test_render__bad_options_are_one_line_each_before_any_build(
    load: Callable[..., tuple[Project | ConfigErrors, list[str]]], tag: str
) -> None:
    errors, _ = load(
        tag,
        "esp32",
        common="  CONFIG_FREERTOS_HZZ: 100\n  CONFIG_FREERTOS_HZ: 5000\n",
        factory=", sdkconfig: {CONFIG_EXAMPLE_USE_CERT_BUNDLE: true, "
        "CONFIG_MBEDTLS_CERTIFICATE_BUNDLE: false}",
        hello=", sdkconfig: {CONFIG_ESP_MAIN_TASK_STACK_SIZE: lots, "
        "CONFIG_LOG_DEFAULT_LEVEL_DEBUG: 1}",
    )
    assert isinstance(errors, ConfigErrors)
    release = f"ESP-IDF {tag[1:]}, target esp32"
    assert errors.lines == (
        "project.yaml:7:75: apps.factory.sdkconfig.CONFIG_EXAMPLE_USE_CERT_BUNDLE: "
        "CONFIG_EXAMPLE_USE_CERT_BUNDLE depends on MBEDTLS_CERTIFICATE_BUNDLE "
        "(MBEDTLS_CERTIFICATE_BUNDLE is n), so it is not set; set what it depends on too, or "
        "remove it",
        "project.yaml:8:124: apps.hello_world.sdkconfig.CONFIG_ESP_MAIN_TASK_STACK_SIZE: 'lots' "
        "is not a valid value for the int symbol ESP_MAIN_TASK_STACK_SIZE; write a whole number "
        "like 1000",
        "project.yaml:8:162: apps.hello_world.sdkconfig.CONFIG_LOG_DEFAULT_LEVEL_DEBUG: '1' is not "
        "a valid value for the bool symbol LOG_DEFAULT_LEVEL_DEBUG; write true or false",
        f"project.yaml:12:3: sdkconfig.CONFIG_FREERTOS_HZZ: CONFIG_FREERTOS_HZZ is an option of no "
        f"app ({release}); did you mean 'CONFIG_FREERTOS_HZ'?",
        "project.yaml:13:23: sdkconfig.CONFIG_FREERTOS_HZ: 5000 is out of range 1..1000 for "
        "CONFIG_FREERTOS_HZ; use a value from 1 to 1000",
    )


def test_render__an_option_only_one_app_has_goes_to_that_app(
    load: Callable[..., tuple[Project | ConfigErrors, list[str]]],
) -> None:
    # simple_ota_example's own option: hello_world has no such Kconfig symbol, so its
    # defaults leave it out instead of failing its build.
    project, _ = load("v5.3.2", "esp32", common="  CONFIG_EXAMPLE_SKIP_COMMON_NAME_CHECK: true\n")
    assert isinstance(project, Project), str(project)
    plans = {
        app.name: dict(defaults.plan(project, app, partitions_csv=Path("p.csv")).groups)
        for app in project.apps
    }
    assert plans["factory"]["project.yaml sdkconfig"] == (
        ("CONFIG_EXAMPLE_SKIP_COMMON_NAME_CHECK", "y"),
    )
    assert "project.yaml sdkconfig" not in plans["hello_world"]


def test_render__doit_list_answers_and_render_prints_the_line_writing_nothing(
    tmp_path: Path, idf_v53: Path
) -> None:
    """A bad CONFIG_ option is the kconfig task's finding: `doit list` starts no kconfgen and
    lists the tasks; `doit render` fails with the located line and writes no defaults."""
    (tmp_path / "dodo.py").write_text("from esp_ota_doit.graph import *  # noqa: F403\n")
    text = _YAML.format(
        target="esp32", version="5.3", common="  CONFIG_FREERTOS_HZ: fast\n", factory="", hello=""
    )
    (tmp_path / "project.yaml").write_text(text)
    env = {"PATH": "/usr/bin:/bin", "IDF_PATH": str(idf_v53), "OTA_HOST": "127.0.0.1"}
    listed = subprocess.run(
        [sys.executable, "-m", "doit", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert (listed.returncode, listed.stderr) == (0, "")
    assert "kconfig" in listed.stdout.split()
    assert not (tmp_path / "build").exists()
    done = subprocess.run(
        [sys.executable, "-m", "doit", "render"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1
    assert (
        "project.yaml:12:23: sdkconfig.CONFIG_FREERTOS_HZ: 'fast' is not a valid value for "
        "the int symbol FREERTOS_HZ; write a whole number like 1000\n"
    ) in done.stdout  # doit reports a failed task there, under "TaskFailed - taskid:kconfig"
    assert "Traceback" not in done.stdout + done.stderr
    assert not list((tmp_path / "build").glob("generated/*.sdkconfig.defaults"))
    assert not list((tmp_path / "build").glob("kconfig/*.facts.json"))


def _load_plain(text: str, idf_root: Path | None = None) -> Project | ConfigErrors:
    try:
        return loader.load(
            text,
            file="project.yaml",
            env={},
            resolve_host=lambda host: host,
            project_dir=Path("."),
            idf_root=idf_root,
        )
    except ConfigErrors as errors:
        return errors


@pytest.mark.parametrize(
    ("target", "version", "expected"),
    [
        ("esp32c5", "5.5", None),
        ("esp32c61", "6.0", None),
        (
            "esp32c5",
            "5.4",
            "project.yaml:2:9: target: esp32c5 is supported from ESP-IDF 5.5 (a preview target "
            'before); set idf.version: "5.5" or later',
        ),
        (
            "esp32",
            "5.2",
            "project.yaml:3:16: idf.version: ESP-IDF 5.2 is not a release this project builds "
            "with; use one of: 5.3, 5.4, 5.5, 6.0",
        ),
    ],
)
def test_idf_version__releases_and_their_targets(
    target: str, version: str, expected: str | None
) -> None:
    text = _YAML.format(target=target, version=version, common="", factory="", hello="")
    text = text.replace("sdkconfig:\n", "").replace("idf:examples", "idf:x")
    found = _load_plain(text)
    if expected is None:
        assert isinstance(found, Project), str(found)
    else:
        assert isinstance(found, ConfigErrors) and found.lines == (expected,)


def test_idf_version__defaults_to_the_esp_idf_found(idf_tree: Callable[[str], Path]) -> None:
    text = _YAML.format(target="esp32", version="5.3", common="", factory="", hello="")
    text = text.replace('idf: {version: "5.3"}\n', "").replace("sdkconfig:\n", "")
    found = _load_plain(text, idf_tree("v5.4.4"))
    assert isinstance(found, Project) and found.idf.version == "5.4"
    plain = _load_plain(text.replace("idf:examples", "idf:x"))
    assert isinstance(plain, Project) and plain.idf.version == "5.3"


def test_kconfig__a_kconfgen_failure_is_one_line_at_the_apps_path(
    tmp_path: Path,
    idf_tree: Callable[[str], Path],
    kconfgen_env: Callable[[str], Path | None],
) -> None:
    app = tmp_path / "app"
    (app / "main").mkdir(parents=True)
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\nproject(app)\n"
    )
    (app / "main" / "CMakeLists.txt").write_text('idf_component_register(SRCS "main.c")\n')
    # A menu that never ends: kconfgen refuses the whole tree.
    (app / "main" / "Kconfig.projbuild").write_text(
        'menu "Broken"\n    config BROKEN_OPTION\n        bool "no endmenu"\n'
    )
    text = (
        'name: demo\ntarget: esp32\nidf: {version: "5.3"}\nflash: {size: 4MB}\n'
        "apps:\n  factory: {path: app, version: 1.0.0}\nflash_app: factory\n"
    )
    env = {"IDF_PATH": str(idf_tree("v5.3.2"))}
    python_env = kconfgen_env("v5.3.2")
    if python_env is not None:
        env["IDF_PYTHON_ENV_PATH"] = str(python_env)
    project = loader.load(
        text, file="project.yaml", env=env, resolve_host=lambda host: host, project_dir=tmp_path
    )
    facts = {"factory": tmp_path / "factory.facts.json"}
    with pytest.raises(ConfigErrors) as raised:
        kconfig_source.evaluate_apps(project, text, facts, env, warn=lambda line: None)
    (line,) = str(raised.value).splitlines()
    assert line.startswith(
        "project.yaml:6:19: apps.factory.path: ESP-IDF 5.3.2's kconfgen failed for this app: "
    ), line
    assert "expected endmenu at end of " in line
    assert line.endswith("; fix the Kconfig files it names"), line
    assert not facts["factory"].exists()
