"""Benchmark: esp_delta_ota patch size against the full image, on real builds of ESP-IDF's
hello_world (esp32c3, the ESP-IDF kit of ../shared/esp-idf-build), through `doit release`:

  (a) a version-only change, (b) a one-line code change, (c) an ESP-IDF option change.

Each is released with ota.delta; the patch from the release before is read from release.json.
The peer, measured in the same run, is the full image under gzip -9 (what compression alone
saves). Goal: (a) <= 3 %, (b) <= 10 % of the full image. Not a test: `python bench/delta.py`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO.parent / "shared" / "esp-idf-build" / "setup.sh"

PROJECT = """\
name: delta-bench
target: esp32c3
idf: {{version: "5.3"}}
flash: {{size: 4MB}}
partitions: {{layout: two_ota}}
apps:
  hello_world: {{path: hello_world, version: {version}{sdkconfig}}}
flash_app: hello_world
ota:
  url: https://127.0.0.1:8070/hello_world.bin
  image: hello_world
  delta: true
"""
# (name, version, one-line code change?, option)
STEPS = [
    ("base", "1.0.0", False, ""),
    ("(a) version only", "1.0.1", False, ""),
    ("(b) one-line code change", "1.0.2", True, ""),
    ("(c) ESP-IDF option change", "1.0.3", True, ", sdkconfig: {CONFIG_FREERTOS_HZ: 1000}"),
]
GOALS = {"(a) version only": 3.0, "(b) one-line code change": 10.0}


def kit_env() -> Path:
    if not SETUP.is_file():
        sys.exit(f"the ESP-IDF kit is not here ({SETUP} is missing): this bench needs it")
    done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def release(folder: Path, env_sh: Path) -> None:
    command = f'. "{env_sh}" >/dev/null && exec "{sys.executable}" -m doit release'
    done = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"doit release failed in {folder}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def run(folder: Path) -> list[tuple[str, int, int, int]]:
    env_sh = kit_env()
    idf_path = Path(env_sh).parent / "esp-idf"
    shutil.copytree(idf_path / "examples/get-started/hello_world", folder / "hello_world")
    (folder / "dodo.py").write_text("from esp_ota_doit.graph import *  # noqa: F403\n")
    source = folder / "hello_world" / "main" / "hello_world_main.c"
    rows = []
    for name, version, code_change, option in STEPS:
        if code_change and "Hello world, again!" not in source.read_text():
            text = source.read_text()
            source.write_text(
                text.replace('printf("Hello world!\\n");', 'printf("Hello world, again!\\n");', 1)
            )
        (folder / "project.yaml").write_text(PROJECT.format(version=version, sdkconfig=option))
        print(f"{name}: doit release of hello_world {version} ...", flush=True)
        release(folder, env_sh)
        record = json.loads(
            (folder / "releases/hello_world" / version / "release.json").read_text()
        )
        if not record["patches"]:
            continue
        patch = record["patches"][0]
        image = (folder / "releases/hello_world" / version / "hello_world.bin").read_bytes()
        rows.append((name, record["size"], patch["size"], len(gzip.compress(image, 9))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="delta-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        rows = run(folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        f"\n{'change':<28} {'image':>8} {'patch':>8} {'patch/full':>10} {'gzip -9/full':>12}  goal"
    )
    for name, full, patch, gzipped in rows:
        ratio = 100 * patch / full
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"<= {goal:.0f} % {'met' if ratio <= goal else 'MISSED'}"
        squeezed = 100 * gzipped / full
        print(f"{name:<28} {full:>8} {patch:>8} {ratio:>9.1f}% {squeezed:>11.1f}%  {verdict}")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
