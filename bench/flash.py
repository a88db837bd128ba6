"""Benchmark: a first `doit flash` against an unchanged reflash, on the virtual board.

Builds the example project with the idf.py stand-in in a temporary folder, then flashes it
twice through the real esptool into the emulated ROM loader, printing bytes written and time.
Not a test: run `python bench/flash.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from esp_ota_doit.device import flash
from esp_ota_doit.rehearsal import virtual_board, virtual_idf

REPO = Path(__file__).resolve().parents[1]


def build(folder: Path, app_size: int) -> None:
    for name in ("project.yaml", "dodo.py"):
        shutil.copy(REPO / name, folder / name)
    idf_path = folder / "esp-idf"
    virtual_idf.write(idf_path)
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "idf.py"
    fake = REPO / "tests" / "fakes" / "idf.py"  # STANDIN_APP_SIZE is a test switch: it lives there
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} {fake} "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "IDF_PATH": str(idf_path),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "OTA_HOST": "127.0.0.1",
        "STANDIN_APP_SIZE": str(app_size),
    }
    subprocess.run(
        [sys.executable, "-m", "doit", "build"],
        cwd=folder,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="unchanged reflashes to time")
    parser.add_argument(
        "--app-size", type=int, default=900_000, help="app image size in bytes (a real app's)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        build(folder, args.app_size)
        plan = flash.FlashPlan(
            app="factory",
            target="esp32",
            flash_size="4MB",
            table_offset=0x8000,
            app_summary=folder / "build" / "factory" / "app.json",
            boards_dir=folder / "build" / "boards",
            port=None,
            baud=460800,
        )
        with virtual_board.VirtualBoard(
            folder / "flash.bin", target="esp32", flash_size=4 << 20
        ) as board:
            results = []
            for _ in range(1 + args.rounds):
                started = time.perf_counter()
                written = flash.write(plan, port=board.port)
                results.append((written, time.perf_counter() - started))
    first_bytes, first_time = results[0]
    again = results[1:]
    mean = sum(t for _, t in again) / len(again)
    print(f"\nfirst flash:        {first_bytes:8d} bytes written in {first_time:6.2f} s")
    for index, (written, seconds) in enumerate(again, 1):
        print(f"unchanged reflash {index}: {written:6d} bytes written in {seconds:6.2f} s")
    print(f"reflash / first flash time: {mean / first_time:.2f}")


if __name__ == "__main__":
    main()
