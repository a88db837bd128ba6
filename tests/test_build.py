"""`doit build`, `doit reproduce` and `doit menuconfig` against the idf.py stand-in.

A fake ESP-IDF tree (two example projects) sits in tmp_path; tests/fakes/idf.py is first on
PATH and logs every call, so a test can count idf.py processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from esp_ota_doit import graph
from esp_ota_doit.config import loader, model
from esp_ota_doit.errors import ToolError
from esp_ota_doit.idf import esp_image, idftool
from esp_ota_doit.paths import Paths
from esp_ota_doit.rehearsal import virtual_idf

from tests.doitrun import edit, executed, run, run_with_output


def load_example(project_dir: Path) -> model.Project:
    return loader.load(
        (project_dir / "project.yaml").read_text(),
        file="project.yaml",
        env={},
        resolve_host=lambda host: "127.0.0.1",
        project_dir=project_dir,
    )


def idf_calls(idf: Path, action: str = "build") -> list[list[str]]:
    log = idf.parent / "idf-calls.jsonl"
    if not log.exists():
        return []
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    return [argv for argv in calls if argv and argv[-1] == action]


# --- finding ESP-IDF ----------------------------------------------------------------------------


def test_find_idf__missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ToolError) as caught:
        idftool.find_idf({"PATH": str(tmp_path)}, "5.3")
    assert str(caught.value).startswith(
        "ESP-IDF not found: no idf.py on PATH and no $IDF_PATH/tools/idf.py; install ESP-IDF v5.3"
    )
    assert "espressif/idf:v5.3" in str(caught.value)


def test_find_idf__version_mismatch(idf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_IDF_VERSION", "v5.1.4")
    with pytest.raises(ToolError) as caught:
        idftool.find_idf(os.environ, "5.3")
    assert str(caught.value).startswith(
        "idf.py is ESP-IDF v5.1.4 but project.yaml asks for 5.3 (idf.version)"
    )


def test_find_idf__matching_patch_release(idf: Path) -> None:
    tool = idftool.find_idf(os.environ, "5.3")
    assert tool.version.startswith("5.3")


def test_build__without_esp_idf_is_one_clear_failure(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("IDF_PATH", raising=False)
    code, results = run(project_dir, "build:hello_world")
    assert code == 1
    assert results["build:hello_world:idf"] == "fail"


# --- doit build ---------------------------------------------------------------------------------


def test_build__builds_every_app_and_the_manifest(built: Path, idf: Path) -> None:
    assert len(idf_calls(idf)) == 2
    manifest = json.loads((built / "build" / "manifest.json").read_text())
    assert manifest["project"] == "ota-demo"
    factory, hello = manifest["apps"]["factory"], manifest["apps"]["hello_world"]
    assert factory["version"] == "1.0.0" and hello["version"] == "1.0.1"
    assert factory["ota_url"] == "https://127.0.0.1:8070/hello_world.bin"
    assert "ota_url" not in hello
    assert factory["target"] == "esp32"
    roles = [image["role"] for image in factory["images"]]
    assert roles == ["bootloader", "partition-table", "otadata", "app"]
    ca = (built / "certs" / "ca_cert.pem").read_bytes()
    import hashlib

    assert factory["ca_sha256"] == hashlib.sha256(ca).hexdigest()
    for image in factory["images"]:
        data = (built / image["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
        assert len(data) == image["size"]


def test_build__second_run_starts_no_idf_py(built: Path, idf: Path) -> None:
    before = len(idf_calls(idf))
    code, results = run(built, "build")
    assert code == 0
    assert {"build:hello_world:idf", "build:hello_world", "build:manifest"} <= set(results)
    assert set(results.values()) == {"up-to-date"}, results  # no step of any app ran
    assert len(idf_calls(idf)) == before


def test_build__one_source_file_rebuilds_only_its_app(built: Path, idf: Path) -> None:
    source = idf / "examples/get-started/hello_world/main/hello_world_main.c"
    source.write_text("void app_main(void) { /* changed */ }\n")
    _, results = run(built, "build")
    assert executed(results) == {
        "build:hello_world:idf",
        "build:hello_world:checks",
        "build:hello_world:merge",
        "build:hello_world",
        "build:manifest",
    }


def test_build__wifi_change_rebuilds_but_keeps_certs(built: Path, idf: Path) -> None:
    edit(built, "ssid: myssid", "ssid: othernet")
    _, results = run(built, "build")
    assert "build:factory" in executed(results)
    assert results["certs"] == "up-to-date"


def test_build__the_ca_is_embedded_and_esp_idf_untouched(built: Path, idf: Path) -> None:
    ca = (built / "certs" / "ca_cert.pem").read_bytes()
    staged = built / "build" / "src" / "factory" / "server_certs" / "ca_cert.pem"
    assert staged.read_bytes() == ca
    folder = "examples/system/ota/simple_ota_example"
    original = idf / folder / "server_certs/ca_cert.pem"
    assert original.read_text() == virtual_idf.EXAMPLES[folder]["server_certs/ca_cert.pem"]
    app = next((built / "build" / "factory").glob("simple_ota.bin"))
    assert ca.strip() in app.read_bytes()


def test_build__sdkconfig_is_private(built: Path) -> None:
    sdkconfig = built / "build" / "factory" / "sdkconfig"
    assert stat.S_IMODE(sdkconfig.stat().st_mode) & 0o077 == 0


def test_build__an_unknown_option_stops_at_render_with_its_name(
    project_dir: Path, idf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The virtual tree has a root Kconfig: the kconfig task checks project.yaml before any build.
    edit(project_dir, "version: 1.0.1}", "version: 1.0.1, sdkconfig: {CONFIG_NOT_AN_OPTION: true}}")
    code, results, text = run_with_output(project_dir, "build:hello_world")
    assert (code, results["kconfig"]) == (1, "fail")
    assert (
        "project.yaml:15:91: apps.hello_world.sdkconfig.CONFIG_NOT_AN_OPTION: "
        "CONFIG_NOT_AN_OPTION is not an option of app 'hello_world' (ESP-IDF 5.3.2, target "
        "esp32)" in text
    )
    assert "Traceback" not in text
    assert not (project_dir / "build" / "hello_world").exists()


def test_build__an_ota_client_without_a_url_option_stops_at_render(
    project_dir: Path, idf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # hello_world's Kconfig has no string option defaulting to an https:// URL.
    edit(project_dir, "version: 1.0.1}", "version: 1.0.1, ota_client: true}")
    assert DoitMain(ModuleTaskLoader(graph)).run(["build:hello_world"]) == 3
    assert (
        "apps.hello_world.ota_client: no string option of the app's Kconfig.projbuild defaults "
        "to an https:// URL; set apps.hello_world.url_option to the option the app reads the "
        "firmware URL from" in capsys.readouterr().err
    )


def test_build__changed_defaults_regenerate_the_sdkconfig(built: Path, idf: Path) -> None:
    edit(
        built,
        "version: 1.0.1}",
        "version: 1.0.1, sdkconfig: {CONFIG_LOG_DEFAULT_LEVEL_DEBUG: true}}",
    )
    code, results = run(built, "build")
    assert code == 0
    config = json.loads((built / "build/hello_world/config/sdkconfig.json").read_text())
    assert config["LOG_DEFAULT_LEVEL_DEBUG"] is True
    # The kconfig task ran again; only the app whose Kconfig facts changed is rebuilt.
    assert results["kconfig"] == "success"
    assert (results["build:hello_world"], results["build:factory"]) == ("success", "up-to-date")


def test_build__failure_shows_the_tail_and_the_log(
    project_dir: Path,
    idf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STANDIN_FAIL", "compile")
    code, _, text = run_with_output(project_dir, "build:hello_world")
    assert code == 1
    assert "idf.py build of app 'hello_world' failed (exit 2)" in text
    assert f"full log: {project_dir / 'build' / 'hello_world' / 'build.log'}" in text
    assert "error:" in (project_dir / "build/hello_world/build.log").read_text()


def test_build__image_too_big_for_its_slot(
    project_dir: Path, idf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It fits factory, so ESP-IDF's check_sizes.py only warns; the served image needs ota_0/1.
    rows = [
        "{name: nvs, type: data, subtype: nvs, size: 0x4000}",
        "{name: otadata, type: data, subtype: ota, size: 0x2000}",
        "{name: phy_init, type: data, subtype: phy, size: 0x1000}",
        "{name: factory, type: app, subtype: factory, size: 1536K}",
        "{name: ota_0, type: app, subtype: ota_0, size: 1M}",
        "{name: ota_1, type: app, subtype: ota_1, size: 1M}",
    ]
    layout = "layout:\n" + "".join(f"    - {row}\n" for row in rows)
    edit(project_dir, "layout: two_ota ", layout + "  # ")
    monkeypatch.setenv("STANDIN_APP_SIZE", str(0x110000))
    code, _, text = run_with_output(project_dir, "build:hello_world")
    assert code == 1
    assert (
        "hello_world.bin binary size 0x110000 does not fit app partition 'ota_0' @ 0x190000 "
        "size 0x100000 (overflow 0x10000); 'ota_1' @ 0x290000 size 0x100000 (overflow 0x10000)"
    ) in text


def test_build__an_app_bigger_than_every_partition_fails_in_esp_idf(
    project_dir: Path, idf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_APP_SIZE", str(0x110000))
    code, _, text = run_with_output(project_dir, "build:hello_world")
    assert code == 1
    assert "idf.py build of app 'hello_world' failed (exit 2)" in text


# --- doit reproduce -----------------------------------------------------------------------------


def test_reproduce__passes_with_reproducible_builds(project_dir: Path, idf: Path) -> None:
    code, _, out = run_with_output(project_dir, "reproduce")
    assert code == 0, out
    assert "every image and ELF is byte-identical across both builds" in out
    assert "DIFFERENT" not in out


def test_reproduce__keeps_the_component_managers_files(built: Path) -> None:
    # What the component manager left in `doit build`'s staged copy (v6.0's ethernet_init).
    staged = built / "build" / "src" / "factory"
    (staged / "dependencies.lock").write_text("dependencies: {espressif/ethernet_init: 1.4.1}\n")
    managed = staged / "managed_components" / "espressif__ethernet_init" / "idf_component.yml"
    managed.parent.mkdir(parents=True)
    managed.write_text("version: 1.4.1\n")
    assert run(built, "reproduce")[0] == 0
    copies = [
        built / "build" / "reproduce" / "factory" / name / "src" for name in ("a", "second-path")
    ]
    for copy in copies:
        assert (copy / "dependencies.lock").read_bytes() == (
            staged / "dependencies.lock"
        ).read_bytes()
        assert (copy / managed.relative_to(staged)).read_text() == "version: 1.4.1\n"
    before = (copies[0] / managed.relative_to(staged)).stat().st_mtime_ns
    assert run(built, "reproduce")[0] == 0  # kept between runs, not fetched again
    assert (copies[0] / managed.relative_to(staged)).stat().st_mtime_ns == before


def test_reproduce__fails_naming_the_image_when_time_is_stamped(
    project_dir: Path,
    idf: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STANDIN_STAMP_TIME", "1")
    code, _, text = run_with_output(project_dir, "reproduce")
    assert code == 1
    assert "builds are not reproducible: " in text
    # The time sits in esp_app_desc_t, the start of the app's first (DROM) segment.
    assert "factory app (simple_ota.bin) differs at segment 0 (DROM" in text


# --- images ------------------------------------------------------------------------------------


def test_images__blink_fixture_verifies(shared: Path) -> None:
    blink = shared / "fixtures" / "esp_idf_blink_esp32s2.bin"
    if not blink.exists():
        pytest.skip("shared/fixtures/esp_idf_blink_esp32s2.bin absent")
    app = esp_image.read_app(blink.read_bytes(), "esp32s2")
    assert (app.project_name, app.version) == ("blink", "qa-test-v5.0-20220830-4-g4532e6")
    flipped = bytearray(blink.read_bytes())
    flipped[0x1000] ^= 0xFF
    with pytest.raises(esp_image.ImageError):
        esp_image.read_app(bytes(flipped), "esp32s2")


def test_images__real_bootloader_verifies_and_a_flipped_byte_does_not(shared: Path) -> None:
    data = (shared / "fixtures" / "bootloader_esp32.bin").read_bytes()
    assert esp_image.read_bootloader(data, "esp32").sha256.startswith("914a9797")
    flipped = bytearray(data)
    flipped[100] ^= 0x01
    with pytest.raises(esp_image.ImageError, match=r"Checksum failed\. Calculated 0x82 read 0x83"):
        esp_image.read_bootloader(bytes(flipped), "esp32")
    with pytest.raises(esp_image.ImageError, match="Mismatch chip id, expected 5, found 0"):
        esp_image.read_bootloader(data, "esp32c3")


def test_images__not_an_image() -> None:
    with pytest.raises(esp_image.ImageError, match="invalid magic byte"):
        esp_image.read_app(b"\x00" * 64, "esp32")


# --- doit menuconfig -----------------------------------------------------------------------------


def test_menuconfig__prints_the_lines_to_keep_a_change(
    built: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "STANDIN_MENUCONFIG_SET",
        "CONFIG_LOG_DEFAULT_LEVEL_DEBUG=y;CONFIG_ESPTOOLPY_FLASHMODE_QIO=y",
    )
    capsys.readouterr()
    code = DoitMain(ModuleTaskLoader(graph)).run(["menuconfig", "--app", "hello_world"])
    assert code == 0
    out = capsys.readouterr().out
    assert "apps:\n  hello_world:\n    sdkconfig:\n" in out
    assert "      CONFIG_LOG_DEFAULT_LEVEL_DEBUG: true\n" in out
    assert "      # CONFIG_ESPTOOLPY_FLASHMODE_QIO: set flash.mode instead" in out


def test_build__the_placed_ca_keeps_its_mtime_across_rebuilds(built: Path, idf: Path) -> None:
    staged_ca = built / "build" / "src" / "factory" / "server_certs" / "ca_cert.pem"
    before = staged_ca.stat().st_mtime_ns
    source = idf / "examples/system/ota/simple_ota_example/main/simple_ota_example.c"
    source.write_text("void app_main(void) { /* changed */ }\n")
    _, results = run(built, "build")
    assert "build:factory" in executed(results)
    assert staged_ca.stat().st_mtime_ns == before


def test_build__menuconfig_changes_are_built(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MENUCONFIG_SET", "CONFIG_LOG_DEFAULT_LEVEL_DEBUG=y")
    assert DoitMain(ModuleTaskLoader(graph)).run(["menuconfig", "--app", "hello_world"]) == 0
    _, results = run(built, "build")
    assert "build:hello_world" in executed(results)
    config = json.loads((built / "build/hello_world/config/sdkconfig.json").read_text())
    assert config["LOG_DEFAULT_LEVEL_DEBUG"] is True


def test_unmet_options__a_renamed_option_counts_under_its_old_name(built: Path) -> None:
    from esp_ota_doit.firmware import build

    plan = next(
        p
        for p in build.plans(load_example(built), paths=Paths(built), idf_root=None)
        if p.app == "hello_world"
    )
    plan = dataclasses.replace(plan, options=(("CONFIG_OTA_ALLOW_HTTP", "y", "test"),))
    assert build.unmet_options(plan, {}, {"CONFIG_OTA_ALLOW_HTTP": "y"}) == []
    assert build.unmet_options(plan, {}, {}) == [
        "CONFIG_OTA_ALLOW_HTTP (from test) is not an option of this app"
    ]


def test_unmet_options__name_the_cause_from_the_builds_kconfig(built: Path) -> None:
    from esp_ota_doit.firmware import build
    from esp_ota_doit.idf.kconfig import kconfgen

    plan = next(
        p
        for p in build.plans(load_example(built), paths=Paths(built), idf_root=None)
        if p.app == "hello_world"
    )
    out = built / "build" / "hello_world"
    config = json.loads((out / "config" / "sdkconfig.json").read_text())
    menus = json.loads((out / "config" / "kconfig_menus.json").read_text())
    renames = kconfgen.build_renames(out)
    assert renames is not None and renames["CONFIG_OTA_ALLOW_HTTP"] == (
        "CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP"
    )
    options = (
        ("CONFIG_FREERTOS_HZZ", "100", "test"),
        ("CONFIG_FREERTOS_HZ", "5000", "test"),
        ("CONFIG_BOOTLOADER_APP_SECURE_VERSION", "3", "test"),
        ("CONFIG_ESPTOOLPY_MONITOR_BAUD", "9600", "test"),
        ("CONFIG_OTA_ALLOW_HTTP", "y", "test"),
        ("CONFIG_NO_SUCH_THING_AT_ALL", "y", "test"),
    )
    plan = dataclasses.replace(plan, options=options)
    assert build.unmet_options(plan, config, {}, menus, renames) == [
        "CONFIG_FREERTOS_HZZ (from test) is not an option of this app; did you mean "
        "'CONFIG_FREERTOS_HZ'?",
        "CONFIG_FREERTOS_HZ (from test) does not fit: 5000 is out of range 1..1000 for "
        "CONFIG_FREERTOS_HZ",
        "CONFIG_BOOTLOADER_APP_SECURE_VERSION (from test) depends on "
        "BOOTLOADER_APP_ANTI_ROLLBACK (BOOTLOADER_APP_ANTI_ROLLBACK is n), so it is not set",
        "CONFIG_ESPTOOLPY_MONITOR_BAUD (from test) has no prompt: Kconfig computes it and "
        "ignores assignments",
        "CONFIG_OTA_ALLOW_HTTP (from test), renamed CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP, stays n: "
        "another option selects or overrides it",
        "CONFIG_NO_SUCH_THING_AT_ALL (from test) is not an option of this app; check the name in "
        "idf.py menuconfig (press / to search)",
    ]


def test_unmet_options__a_minimal_build_app_skips_project_wide_options_it_lacks(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from esp_ota_doit.firmware import build

    plan = next(
        p
        for p in build.plans(load_example(built), paths=Paths(built), idf_root=None)
        if p.app == "hello_world"
    )
    out = built / "build" / "hello_world" / "config"
    config = json.loads((out / "sdkconfig.json").read_text())
    menus = json.loads((out / "kconfig_menus.json").read_text())
    plan = dataclasses.replace(
        plan, options=(("CONFIG_LWIP_NOT_HERE", "y", "project.yaml sdkconfig"),)
    )
    assert build.unmet_options(plan, config, {}, menus, minimal_build=True) == []
    assert "CONFIG_LWIP_NOT_HERE (from project.yaml sdkconfig) is not an option of this " in (
        capsys.readouterr().err
    )
    assert build.unmet_options(plan, config, {}, menus)[0].startswith("CONFIG_LWIP_NOT_HERE")


def test_build__a_per_target_defaults_file_drops_the_sdkconfig(built: Path, idf: Path) -> None:
    # ESP-IDF layers F.<target> right after each defaults file F (docs/esp-idf.md §5.4).
    extra = built / "build" / "generated" / "hello_world.sdkconfig.defaults.esp32"
    extra.write_text("CONFIG_LOG_DEFAULT_LEVEL_DEBUG=y\n")
    _, results = run(built, "build")
    assert {"build:hello_world:config", "build:hello_world:idf"} <= executed(results)
    assert not any(name.startswith("build:factory") for name in executed(results))
    config = json.loads((built / "build/hello_world/config/sdkconfig.json").read_text())
    assert config["LOG_DEFAULT_LEVEL_DEBUG"] is True


def test_images__an_esp_idf_elf_through_esptool_elf2image(shared: Path, tmp_path: Path) -> None:
    from esptool.cmds import elf2image

    elf = shared / "fixtures" / "esp32-app-template.elf"
    if not elf.exists():
        pytest.skip("shared/fixtures/esp32-app-template.elf absent")
    output = tmp_path / "app-template.bin"
    elf2image(str(elf), "esp32", output=str(output))
    app = esp_image.read_app(output.read_bytes(), "esp32")
    assert (app.project_name, app.version) == ("app-template", "1cd5752")
    assert app.idf_version == "v4.0-dev-30-g31ca6e399"
    with pytest.raises(esp_image.ImageError, match="Mismatch chip id, expected 9, found 0"):
        esp_image.read_app(output.read_bytes(), "esp32s3")


def test_manifest__names_the_commit_the_build_was_made_from(built: Path, idf: Path) -> None:
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(built), *args], check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    manifest = built / "build" / "manifest.json"
    assert json.loads(manifest.read_text())["git_commit"] is None  # not a git checkout yet
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    _, results = run(built, "build")
    assert executed(results) == set()  # a commit that changes no input builds nothing
    source = idf / "examples/get-started/hello_world/main/hello_world_main.c"
    source.write_text("void app_main(void) { /* changed */ }\n")
    _, results = run(built, "build")
    assert "build:manifest" in executed(results)
    assert json.loads(manifest.read_text())["git_commit"] == git("rev-parse", "HEAD")


def test_menuconfig__an_unknown_app(built: Path) -> None:
    code, _, text = run_with_output(built, "menuconfig", "--app", "nope")
    assert code == 1
    assert "--app: no app 'nope' in project.yaml; apps: factory, hello_world" in text


def _set_idf_version(idf: Path, version: str) -> None:
    major, minor, patch = version.split(".")
    cmake = idf / "tools" / "cmake" / "version.cmake"
    cmake.parent.mkdir(parents=True, exist_ok=True)
    cmake.write_text(
        f"set(IDF_VERSION_MAJOR {major})\nset(IDF_VERSION_MINOR {minor})\n"
        f"set(IDF_VERSION_PATCH {patch})\n"
    )


def test_build__another_esp_idf_rebuilds_and_says_why(project_dir: Path, idf: Path) -> None:
    _set_idf_version(idf, "5.3.1")
    code, _ = run(project_dir, "build:hello_world")
    assert code == 0
    code, results = run(project_dir, "build:hello_world")
    assert code == 0 and executed(results) == set()
    _set_idf_version(idf, "5.3.2")  # a patch upgrade in place: built again
    code, results = run(project_dir, "build:hello_world")
    assert code == 0 and "build:hello_world:idf" in executed(results)
    moved = idf.parent / "esp-idf-2"  # the same release at another IDF_PATH: from scratch
    idf.rename(moved)
    os.environ["IDF_PATH"] = str(moved)  # the idf fixture's monkeypatch restores it
    code, results, text = run_with_output(project_dir, "build:hello_world")
    assert code == 0 and "build:hello_world:idf" in executed(results)
    assert (
        f"app 'hello_world': rebuilding, ESP-IDF changed: {idf.resolve()} -> "
        f"ESP-IDF 5.3.2 at {moved.resolve()}"
    ) in text
