"""The doit graph, run in-process the way doit's own tests do: what executes, what is skipped."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from tasks import graph


def run(project_dir: Path, *args: str) -> tuple[int, dict[str, str]]:
    """Run doit with the JSON reporter; returns the exit code and {task: result}."""
    report = project_dir / "report.json"
    code = DoitMain(ModuleTaskLoader(graph)).run(
        ["run", "--reporter", "json", "--output-file", str(report), *args]
    )
    tasks = json.loads(report.read_text())["tasks"]
    # Group tasks (a bare basename) have no action of their own; only sub-tasks do work.
    results = {t["name"]: t["result"] for t in tasks if ":" in t["name"]}
    return code, results


def executed(results: dict[str, str]) -> set[str]:
    return {name for name, result in results.items() if result == "success"}


ALL_RENDER = {"render:partitions", "render:sdkconfig-factory", "render:sdkconfig-hello_world"}


def edit(project_dir: Path, old: str, new: str) -> None:
    path = project_dir / "project.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_render__second_run_executes_nothing(project_dir: Path) -> None:
    code, first = run(project_dir, "render")
    assert code == 0
    assert executed(first) == ALL_RENDER
    mtimes = {p: p.stat().st_mtime_ns for p in (project_dir / "build/generated").iterdir()}
    code, second = run(project_dir, "render")
    assert code == 0
    assert executed(second) == set()
    assert set(second.values()) == {"up-to-date"}
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_render__is_the_default_task(project_dir: Path) -> None:
    code, results = run(project_dir)
    assert code == 0
    assert executed(results) == ALL_RENDER


@pytest.mark.parametrize(
    ("old", "new", "reruns"),
    [
        ("version: 1.0.1", "version: 1.0.2", {"render:sdkconfig-hello_world"}),
        ("ssid: myssid", "ssid: other", {"render:sdkconfig-factory"}),
        ("table_offset: 0x8000", "table_offset: 0x9000", ALL_RENDER),
        ("size: 4MB", "size: 8MB", {"render:sdkconfig-factory", "render:sdkconfig-hello_world"}),
        ("# The password", "# A comment changed; the password", set()),
    ],
    ids=["app-version", "wifi-ssid", "table-offset", "flash-size", "comment"],
)
def test_render__one_key_reruns_only_its_outputs(
    project_dir: Path, old: str, new: str, reruns: set[str]
) -> None:
    run(project_dir, "render")
    edit(project_dir, old, new)
    code, results = run(project_dir, "render")
    assert code == 0
    assert executed(results) == reruns


def test_render__outputs_with_the_password_are_private(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIFI_PASSWORD", "correct horse battery")
    code, _ = run(project_dir, "render")
    assert code == 0
    generated = project_dir / "build/generated"
    factory = generated / "factory.sdkconfig.defaults"
    assert 'CONFIG_EXAMPLE_WIFI_PASSWORD="correct horse battery"' in factory.read_text()
    assert stat.S_IMODE(factory.stat().st_mode) == 0o600
    assert stat.S_IMODE((generated / "hello_world.sdkconfig.defaults").stat().st_mode) == 0o644
    # The tracked file keeps the reference, never the value.
    assert "correct horse" not in (project_dir / "project.yaml").read_text()


def test_render__a_changed_password_rerenders_only_the_client(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIFI_PASSWORD", "first password")
    run(project_dir, "render")
    monkeypatch.setenv("WIFI_PASSWORD", "second password")
    _, results = run(project_dir, "render")
    assert executed(results) == {"render:sdkconfig-factory"}


def test_render__a_deleted_output_is_rendered_again(project_dir: Path) -> None:
    run(project_dir, "render")
    (project_dir / "build/generated/partition-table.bin").unlink()
    _, results = run(project_dir, "render")
    assert executed(results) == {"render:partitions"}


def test_render__outputs_match_the_table(project_dir: Path) -> None:
    from tasks import partitions

    run(project_dir, "render")
    generated = project_dir / "build/generated"
    table = partitions.from_csv((generated / "partitions.csv").read_text())
    assert partitions.to_bin(table) == (generated / "partition-table.bin").read_bytes()
    assert [p.name for p in table.partitions] == [
        "nvs",
        "otadata",
        "phy_init",
        "factory",
        "ota_0",
        "ota_1",
    ]


def test_list__a_bad_project_is_one_error_line(
    project_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project_dir, "target: esp32", "target: esp32-c3")
    code = DoitMain(ModuleTaskLoader(graph)).run(["list"])
    assert code == 3
    err = capsys.readouterr().err
    assert err.startswith("ERROR: project.yaml:5:9: target: 'esp32-c3' is not one of")
    assert err.count("\n") == 1


def test_list__no_project_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = DoitMain(ModuleTaskLoader(graph)).run(["list"])
    assert code == 3
    assert "project.yaml: not found in" in capsys.readouterr().err


def test_list__every_task_has_a_doc(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = DoitMain(ModuleTaskLoader(graph)).run(["list", "--all"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines
    for line in lines:
        name, _, doc = line.partition(" ")
        assert doc.strip(), f"task {name} has no doc"
