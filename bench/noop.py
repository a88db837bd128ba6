"""Benchmark a no-op `doit build` (everything up to date) against doit's own floor, `doit list`
in a folder whose dodo.py is empty, both measured in this run.

    python bench/noop.py --rounds 9

The project is the repository's example (project.yaml, dodo.py) built once with the logging
idf.py stand-in of tests/fakes over a synthetic ESP-IDF tree, as tests/test_build.py builds it,
so no ESP-IDF is needed. Prints each median wall time and the ratio; the goal is <= 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_IDF = REPO / "tests" / "fakes" / "idf.py"
GOAL = 2.0


def built_project(root: Path) -> dict[str, str]:
    """The example project under `root`, built once; the environment its runs use."""
    from esp_ota_doit.rehearsal import virtual_idf

    project = root / "project"
    project.mkdir()
    for name in ("project.yaml", "dodo.py"):
        shutil.copy(REPO / name, project / name)
    virtual_idf.write(root / "esp-idf")
    launcher = root / "bin" / "idf.py"
    launcher.parent.mkdir()
    launcher.write_text(
        f"#!{sys.executable}\nimport runpy\n"
        f"runpy.run_path({str(FAKE_IDF)!r}, run_name='__main__')\n"
    )
    launcher.chmod(0o755)
    # As on a user's machine, Python keeps the compiled modules (a no-op run must not time the
    # compiler): the first build writes them.
    kept = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env = {
        **kept,
        "IDF_PATH": str(root / "esp-idf"),
        "PATH": f"{launcher.parent}{os.pathsep}{os.environ['PATH']}",
        "FAKE_IDF_LOG": str(root / "idf-calls.jsonl"),
        "OTA_HOST": "127.0.0.1",
    }
    for args in (["build"], ["--reporter", "executed-only", "build"]):
        done = doit(project, env, *args)
        if done.returncode != 0:
            sys.exit(f"doit {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    if done.stdout.strip():
        sys.exit(f"the second doit build was not a no-op; it ran:\n{done.stdout}")
    return env


def doit(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "doit", *args], cwd=folder, env=env, capture_output=True, text=True
    )


def wall(folder: Path, env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = doit(folder, env, *args)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"doit {' '.join(args)} failed in {folder}:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="runs of each; the median counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esp-ota-noop-") as folder:
        root = Path(folder)
        env = built_project(root)
        empty = root / "empty"
        empty.mkdir()
        (empty / "dodo.py").write_text("")
        wall(empty, env, "list")  # its compiled modules too
        ours: list[float] = []
        floor: list[float] = []
        for _ in range(args.rounds):  # interleaved: a busy moment costs both alike
            ours.append(wall(root / "project", env, "build"))
            floor.append(wall(empty, env, "list"))
    mine, theirs = statistics.median(ours), statistics.median(floor)
    print(f"no-op doit build vs doit list of an empty dodo.py (median of {args.rounds})")
    print(f"  doit build (up to date)   {mine * 1000:7.0f} ms")
    print(f"  doit list (empty dodo.py) {theirs * 1000:7.0f} ms")
    ratio = mine / theirs
    print(f"  ratio: {ratio:.2f} (goal <= {GOAL:.0f}){'' if ratio <= GOAL else ' MISSED'}")


if __name__ == "__main__":
    main()
