"""The doit graph, run in-process the way doit's own tests do: what executes, what is skipped."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from esp_ota_doit import graph
from esp_ota_doit.tls import certs

from tests.conftest import REPO
from tests.doitrun import edit, executed, run

ALL_RENDER = {"render:partitions", "render:sdkconfig-factory", "render:sdkconfig-hello_world"}


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

    from esp_ota_doit.idf.partition import formats

    run(project_dir, "render")
    generated = project_dir / "build/generated"
    table = formats.from_csv((generated / "partitions.csv").read_text())
    assert formats.to_bin(table) == (generated / "partition-table.bin").read_bytes()
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


# --- certs ---------------------------------------------------------------------------------


def test_certs__second_run_executes_nothing(project_dir: Path) -> None:
    code, first = run(project_dir, "certs")
    assert code == 0 and first == {"certs": "success"}
    code, second = run(project_dir, "certs")
    assert code == 0 and second == {"certs": "up-to-date"}


def test_certs__host_change_reissues_only_the_server_cert(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project_dir, "certs")
    folder = project_dir / "certs"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    monkeypatch.setenv("OTA_HOST", "10.9.8.7")
    _, results = run(project_dir, "certs")
    assert results == {"certs": "success"}
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert after["ca_cert.pem"] == before["ca_cert.pem"]
    assert after["ca_key.pem"] == before["ca_key.pem"]
    assert after["server_cert.pem"][0] != before["server_cert.pem"][0]
    leaf = x509.load_pem_x509_certificate(after["server_cert.pem"][0])
    assert certs.covers_host(leaf, "10.9.8.7")


def test_certs__a_cert_near_expiry_is_reissued(project_dir: Path) -> None:
    run(project_dir, "certs")
    plan = certs.plan(
        project="ota-demo",
        host="127.0.0.1",
        key="ec-p256",
        days=825,
        certs_dir=project_dir / "certs",
        env={},
    )
    (project_dir / "certs" / "server_cert.pem").unlink()
    certs.issue(plan, now=datetime.now(UTC) - timedelta(days=820))
    assert certs.pending(plan) is not None
    _, results = run(project_dir, "certs")
    assert results == {"certs": "success"}
    assert certs.pending(plan) is None


def test_certs__no_private_key_under_build(project_dir: Path) -> None:
    run(project_dir, "render")
    run(project_dir, "certs")
    for path in (project_dir / "build").rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    assert "/certs/" in (REPO / ".gitignore").read_text()


def test_certs__clean_keeps_the_ca(project_dir: Path) -> None:
    run(project_dir, "certs")
    assert not DoitMain(ModuleTaskLoader(graph)).run(["clean", "certs"])  # doit clean returns None
    assert sorted(p.name for p in (project_dir / "certs").iterdir()) == [
        "ca_cert.pem",
        "ca_key.pem",
    ]


def test_certs__half_a_ci_ca_is_one_error_line(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTA_CA_CERT", str(project_dir / "ca.pem"))
    code = DoitMain(ModuleTaskLoader(graph)).run(["list"])
    assert code == 3
    assert capsys.readouterr().err == (
        "ERROR: OTA_CA_CERT is set but OTA_CA_KEY is not; set both or neither\n"
    )


def test_info__never_shows_the_wifi_password(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WIFI_PASSWORD", "SuperSecret123")
    for task in ("render:sdkconfig-factory", "build:factory"):
        # doit info exits 1 for a task that is not up to date; the text is what matters.
        assert DoitMain(ModuleTaskLoader(graph)).run(["info", task]) in (0, 1)
    out = capsys.readouterr().out
    assert "CONFIG_EXAMPLE_WIFI_PASSWORD" in out
    assert "SuperSecret123" not in out
