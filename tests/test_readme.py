"""The README is part of the product: its commands run, and its reference table is the schema's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from esp_ota_doit.config import reference

from tests.conftest import REPO

README = REPO / "README.md"


def command(marker: str) -> str:
    """The shell line in the fenced block right after `<!-- command:<marker> -->`."""
    found = re.search(rf"<!-- command:{marker} -->\n```sh\n(.+)\n```", README.read_text())
    assert found, f"README has no command:{marker} block"
    return found.group(1)


def test_readme__ci_runs_exactly_the_readme_commands() -> None:
    """.ci/run takes both commands from the README's markers and runs them as they are."""
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "run"), "--print-commands"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [command("main"), command("test")]
    script = (REPO / ".ci" / "run").read_text()
    assert 'bash -c "$MAIN"' in script and 'bash -c "$TEST"' in script


def test_readme__main_command_sets_up_then_renders() -> None:
    setup, _, job = command("main").rpartition(" && ")
    assert setup.startswith("python3 -m venv .venv") and "pip install -e '.[rehearse]'" in setup
    assert job.startswith("doit ")


@pytest.mark.e2e
def test_readme__main_job_runs_on_the_example(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = command("main").rpartition(" && ")[2].split()
    doit = shutil.which("doit", path=str(Path(sys.executable).parent)) or "doit"
    # A fresh machine: no ESP-IDF anywhere.
    folders = os.environ["PATH"].split(os.pathsep)
    path = os.pathsep.join(f for f in folders if not (Path(f) / "idf.py").exists())
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": path}
    env.pop("IDF_PATH", None)
    result = subprocess.run(
        [doit, *job[1:]], cwd=project_dir, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "booted ota_0: hello_world 1.0.1" in result.stdout
    assert (project_dir / "build" / "generated" / "partition-table.bin").stat().st_size == 3072
    assert (project_dir / "certs" / "server_cert.pem").exists()


def test_readme__reference_table_is_the_schema(request: pytest.FixtureRequest) -> None:
    text = README.read_text()
    start, end = "<!-- reference:start -->\n", "<!-- reference:end -->"
    before, rest = text.split(start)
    table, after = rest.split(end)
    if request.config.getoption("--update-golden"):
        README.write_text(before + start + reference.reference_table() + end + after)
        return
    assert table == reference.reference_table(), "run pytest --update-golden to refresh the README"


def test_readme__ci_container_is_the_release_project_yaml_names() -> None:
    import yaml
    from esp_ota_doit.idf import releases

    version = yaml.safe_load((REPO / "project.yaml").read_text())["idf"]["version"]
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "firmware.yml").read_text())
    assert workflow["jobs"]["build"]["container"] == releases.RELEASES[version].container
