"""kill -9 at every write inside render, certs and build: the next run must leave correct outputs.

tests/killhook/sitecustomize.py kills doit right after its Nth rename (the moment a target has
just been replaced but doit's database has not recorded it), in a real `python -m doit` process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from esp_ota_doit.paths import cert_files
from esp_ota_doit.tls import certs
from esp_ota_doit.tls.x509 import load_pair

from tests.conftest import REPO
from tests.doitrun import doit_process

HOOK = Path(__file__).resolve().parent / "killhook"


def doit(folder: Path, *args: str, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HOOK), str(REPO)])}
    if kill_at:
        env["KILL_AT_REPLACE"] = str(kill_at)
    return doit_process(folder, *args, env=env)


def outputs(folder: Path, *parts: str) -> dict[str, bytes]:
    """Every file under folder/parts by relative path, temp leftovers included."""
    root = folder.joinpath(*parts)
    return {
        p.relative_to(folder).as_posix(): p.read_bytes().replace(os.fsencode(folder), b"<dir>")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / "project.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """The example project rendered once, cleanly: what every recovered run must produce."""
    folder = tmp_path / "reference"
    folder.mkdir()
    for name in ("project.yaml", "dodo.py"):
        shutil.copy(REPO / name, folder / name)
    assert doit(folder, "render").returncode == 0
    return folder


def test_kill__render_then_revert_is_never_taken_as_current(
    reference: Path, tmp_path: Path
) -> None:
    want = outputs(reference, "build", "generated")
    points = 0
    for kill_at in range(1, 20):
        folder = tmp_path / f"run{kill_at}"
        shutil.copytree(reference, folder)
        edit(folder, "table_offset: 0x8000", "table_offset: 0x9000")
        killed = doit(folder, "render", kill_at=kill_at)
        if killed.returncode != -signal.SIGKILL:
            break  # fewer writes than kill_at: every point was covered
        points += 1
        edit(folder, "table_offset: 0x9000", "table_offset: 0x8000")
        again = doit(folder, "render")
        assert again.returncode == 0, again.stderr
        assert outputs(folder, "build", "generated") == want, f"killed at write {kill_at}"
    assert points >= 3


def test_kill__certs_at_every_write_then_a_whole_pair(tmp_path: Path) -> None:
    points = 0
    for kill_at in range(1, 20):
        folder = tmp_path / f"run{kill_at}"
        folder.mkdir()
        for name in ("project.yaml", "dodo.py"):
            shutil.copy(REPO / name, folder / name)
        killed = doit(folder, "certs", kill_at=kill_at)
        if killed.returncode != -signal.SIGKILL:
            break
        points += 1
        again = doit(folder, "certs")
        assert again.returncode == 0, again.stdout + again.stderr
        where = cert_files(folder / "certs")
        load_pair(where.ca_cert, where.ca_key, "ca", "key")  # a matching CA pair
        certs.check_leaf(
            where.server_cert.read_bytes(),
            where.server_key.read_bytes(),
            where.ca_cert.read_bytes(),
            "127.0.0.1",
        )
        assert not list((folder / "certs").glob("*.tmp")), "temp files left behind"
        assert doit(folder, "certs").stdout.startswith("-- certs")  # now current
    assert points >= 4


def test_kill__build_then_revert(reference: Path, tmp_path: Path, idf: Path) -> None:
    shutil.rmtree(reference / "build")
    assert doit(reference, "build").returncode == 0
    want = outputs(reference, "build", "hello_world")
    # One folder for every kill point: each round ends where it began (built at 1.0.1, checked
    # byte for byte), so the next round starts from the state a fresh copy would be in.
    folder = tmp_path / "run"
    shutil.copytree(reference, folder, ignore=shutil.ignore_patterns("build"))
    assert doit(folder, "build").returncode == 0
    points = 0
    for kill_at in range(1, 40):
        edit(folder, "version: 1.0.1", "version: 1.0.2")
        killed = doit(folder, "build", kill_at=kill_at)
        edit(folder, "version: 1.0.2", "version: 1.0.1")
        again = doit(folder, "build")
        assert again.returncode == 0, again.stdout + again.stderr
        got = outputs(folder, "build", "hello_world")
        assert not [name for name in got if name.endswith(".tmp")], "temp files left behind"
        app = "build/hello_world/app.json"
        assert got[app] == want[app], f"killed at write {kill_at}"
        if killed.returncode != -signal.SIGKILL:
            break
        points += 1
    assert points >= 3


def test_lock__second_run_waits_and_says_so(reference: Path) -> None:
    import fcntl

    handle = os.open(reference, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX)  # as a running doit build would hold it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    waiting = subprocess.Popen(
        [sys.executable, "-m", "doit", "render"],
        cwd=reference,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.stderr is not None
        line = waiting.stderr.readline()  # blocks until the second run reports that it waits
        assert line == f"warning: waiting for another doit run in {reference} to finish\n"
        assert waiting.poll() is None
    finally:
        os.close(handle)
    waiting.communicate(timeout=60)
    assert waiting.returncode == 0
