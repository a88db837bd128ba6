"""The README is part of the product: its commands run, and its reference table is the schema's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from esp_ota_doit.config import reference
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO
from tests.doitrun import doit_process

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


def _extra(name: str) -> list[str]:
    """The requirements of one optional extra, as this checkout's pyproject.toml declares them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][name]]


def _installed_closure(requirements: list[str]) -> set[str]:
    """The distributions `requirements` pull in, followed through what is installed here."""
    found: set[str] = set()
    todo = [Requirement(line) for line in requirements]
    while todo:
        req = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in req.extras or {""}):
            continue
        if canonicalize_name(req.name) in found:
            continue
        found.add(canonicalize_name(req.name))
        deps = [Requirement(line) for line in metadata.requires(req.name) or []]
        todo += [dep for dep in deps if not dep.marker or dep.marker.evaluate({"extra": ""})]
    return found


def _modules_outside(extra: str) -> list[str]:
    """Top-level modules installed here by distributions that `pip install -e '.[extra]'` would
    not install (pytest, mypy, ... and whatever the extra forgot)."""
    wanted = {canonicalize_name("esp-ota-doit")} | _installed_closure(_extra(extra))
    return sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(dist) in wanted for dist in dists)
    )


def test_readme__extras_only_blocks_what_the_extra_lacks() -> None:
    """The guard below can fail: kconfgen, which the stand-in runs, comes only with the extra."""
    assert "kconfgen" not in _modules_outside("rehearse")
    assert {"pytest", "mypy", "hypothesis"} <= set(_modules_outside("rehearse"))


@pytest.mark.e2e
def test_readme__main_job_runs_on_the_example(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = command("main").rpartition(" && ")[2].split()
    extra = re.search(r"pip install -e '\.\[(\w+)\]'", command("main"))
    assert extra, command("main")
    doit = shutil.which("doit", path=str(Path(sys.executable).parent)) or "doit"
    # A fresh machine: no ESP-IDF anywhere, and only what the README's extra installs (a module
    # of any other distribution installed here cannot be imported, in doit or its children).
    folders = os.environ["PATH"].split(os.pathsep)
    path = os.pathsep.join(f for f in folders if not (Path(f) / "idf.py").exists())
    hook = Path(__file__).parent / "extras_only"
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{REPO}", "PATH": path}
    env["EXTRAS_ONLY_BLOCK"] = ",".join(_modules_outside(extra[1]))
    env.pop("IDF_PATH", None)
    result = subprocess.run(
        [doit, *job[1:]], cwd=project_dir, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "booted ota_0: hello_world 1.0.1" in result.stdout
    # The stand-in's imitation of idf.py goes to each build.log, not to the terminal.
    for imitation in ("idf.py flash", "Project build complete", "-- Configuring", "ninja", "$ "):
        assert imitation not in result.stdout
    assert result.stdout.count("synthetic images: no ESP-IDF here") == 1
    assert (project_dir / "build" / "generated" / "partition-table.bin").stat().st_size == 3072
    assert (project_dir / "certs" / "server_cert.pem").exists()


# doit's own commands, which the README may name beside the project's tasks.
_DOIT_COMMANDS = {"list", "clean", "info", "help", "forget", "ignore", "auto", "dumpdb", "strace"}


@pytest.mark.parametrize("ota", ["", "  sign: rsa3072\n"], ids=["example", "signed"])
def test_readme__every_task_it_names_is_one_doit_lists(project_dir: Path, ota: str) -> None:
    """`doit NAME` in the README is a name `doit list --all` prints, signing or not."""
    text = (project_dir / "project.yaml").read_text()
    (project_dir / "project.yaml").write_text(text.replace("ota:\n", f"ota:\n{ota}", 1))
    named = set(re.findall(r"(?:`|^)doit ([a-z][\w-]*)", README.read_text(), re.M))
    listed = doit_process(project_dir, "list", "--all", env={**os.environ, "OTA_HOST": "127.0.0.1"})
    assert listed.returncode == 0, listed.stderr
    tasks = {line.split()[0].partition(":")[0] for line in listed.stdout.splitlines() if line}
    assert {"signing-key", "rotate-signing-key", "rehearse"} <= tasks
    assert named - _DOIT_COMMANDS <= tasks, sorted(named - _DOIT_COMMANDS - tasks)


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
