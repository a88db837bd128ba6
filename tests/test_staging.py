"""The staged copy idf.py builds from: only sources, modes kept, private, never out of the app."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from esp_ota_doit.errors import ToolError
from esp_ota_doit.firmware import staging


def _app(root: Path) -> Path:
    (root / "main").mkdir(parents=True)
    (root / "CMakeLists.txt").write_text(
        "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\nproject(sensor)\n"
    )
    (root / "main" / "CMakeLists.txt").write_text('idf_component_register(SRCS "main.c")\n')
    (root / "main" / "main.c").write_text("void app_main(void) {}\n")
    return root


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_stage__keeps_component_manager_lock_and_deep_build_folders(tmp_path: Path) -> None:
    source, copy = _app(tmp_path / "src"), tmp_path / "copy"
    (source / "components" / "buildinfo").mkdir(parents=True)
    (source / "components" / "buildinfo" / "x.c").write_text("int x;\n")
    (source / "build").mkdir()
    (source / "build" / "junk.o").write_text("")
    (source / "dangling").symlink_to(tmp_path / "nowhere")
    staging.stage(source, copy)
    (copy / "dependencies.lock").write_text("lock\n")
    staging.stage(source, copy)
    assert (copy / "components" / "buildinfo" / "x.c").read_text() == "int x;\n"
    assert not (copy / "build").exists()
    assert (copy / "dependencies.lock").exists()


def test_stage__keeps_modes_never_wider_and_the_tree_is_private(tmp_path: Path) -> None:
    source, copy = _app(tmp_path / "src"), tmp_path / "copy"
    key = source / "secure_boot_signing_key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    script = source / "main" / "gen.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    staging.stage(source, copy)
    assert _mode(copy / key.name) == 0o600
    assert _mode(copy / "main" / "gen.sh") == 0o750
    assert _mode(copy) == 0o700
    assert _mode(copy / "main") == 0o700


def test_stage__refuses_a_folder_that_is_not_an_app_before_copying(tmp_path: Path) -> None:
    source, copy = tmp_path / "etc", tmp_path / "copy"
    source.mkdir()
    (source / "passwd").write_text("root:x:0:0\n")
    with pytest.raises(ToolError, match=r"is not an ESP-IDF app \(no CMakeLists.txt that calls "):
        staging.stage(source, copy)
    assert not copy.exists()


def test_app_sources__link_cycles_end_and_links_out_of_the_app_are_not_followed(
    tmp_path: Path,
) -> None:
    source = _app(tmp_path / "src")
    (source / "main" / "up").symlink_to("..")
    (source / "up2").symlink_to(".")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no\n")
    (source / "main" / "out").symlink_to(outside)
    (source / "main" / "out.txt").symlink_to(outside / "secret.txt")
    found = staging.app_sources(source)  # returns: the cycles are walked once
    names = sorted(str(path.relative_to(source)) for path in found)
    assert names == ["CMakeLists.txt", "main/CMakeLists.txt", "main/main.c"]


def test_app_sources__project_yaml_in_the_app_leaves_out_this_tools_own_files(
    tmp_path: Path,
) -> None:
    source = _app(tmp_path / "app")
    for name in ("project.yaml", "dodo.py", ".doit.db", "sdkconfig", "sdkconfig.old"):
        (source / name).write_text("x\n")
    for folder in ("certs", "keys", "build", ".git", ".venv", "venv"):
        (source / folder).mkdir()
        (source / folder / "f").write_text("x\n")
    for ours in (
        "certs/ca_key.pem",
        "certs/server_key.pem",
        "certs/ca_cert.pem.20260101T000000Z.old",
        "certs/ca_key.pem.20260101T000000Z.unissued",
        "keys/signing_key.pem",
    ):
        (source / ours).write_text("secret\n")
    (source / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (source / "partitions.csv").write_text("nvs, data, nvs, , 0x6000,\n")
    own = staging.app_sources(source, project_dir=source)
    assert sorted(str(path.relative_to(source)) for path in own) == [
        "CMakeLists.txt",
        "certs/f",  # the app's own files there are still its sources
        "keys/f",
        "main/CMakeLists.txt",
        "main/main.c",
        "partitions.csv",
    ]
    # An app elsewhere keeps all of certs/ and keys/: they are its sources, not ours.
    other = {str(path.relative_to(source)) for path in staging.app_sources(source)}
    assert {"certs/f", "certs/ca_key.pem", "keys/signing_key.pem", "project.yaml"} <= other
    assert os.path.exists(source / "sdkconfig")  # never touched
