"""ESP-IDF's own gen_esp32part.py of a release, run in-process from the extracted Kconfig subset
(shared/esp-idf/kconfig/), and the golden cases it is compared with for each release."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

DATA = Path(__file__).resolve().parent / "data" / "partitions"
GOLDEN = Path(__file__).resolve().parent / "golden" / "partitions"
RELEASE_OF_TAG = {"v5.3.2": "5.3", "v5.4.4": "5.4", "v5.5.5": "5.5", "v6.0.2": "6.0"}
# --offset and the --primary-bootloader-offset the build passes with it (v5.5+ needs one):
# 0x8000 with esp32's bootloader at 0x1000, 0xd000 with esp32c3's at 0x0.
OFFSETS = {0x8000: 0x1000, 0xD000: 0x0}
FLASH = "4MB"
_loaded: dict[Path, ModuleType] = {}


def csv_cases(shared: Path) -> dict[str, Path]:
    """Every case: ESP-IDF's v5.3 presets (shared/) and this folder's CSVs."""
    cases = {p.stem: p for p in sorted((shared / "esp-idf" / "partitions").glob("*.csv"))}
    cases |= {p.stem: p for p in sorted(DATA.glob("*.csv"))}
    return cases


def _module(tree: Path) -> ModuleType:
    script = tree / "components" / "partition_table" / "gen_esp32part.py"
    if script not in _loaded:
        name = f"gen_esp32part_{abs(hash(script))}"
        spec = importlib.util.spec_from_file_location(name, script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[script] = module
    return _loaded[script]


def run(tree: Path, csv: Path, table_offset: int, out: Path) -> tuple[str, bytes]:
    """("bin", bytes) or ("txt", the InputError text) as `gen_esp32part.py` prints it."""
    module = _module(tree)
    argv = ["gen_esp32part.py", "--quiet", "--offset", hex(table_offset), "--flash-size", FLASH]
    if hasattr(module, "primary_bootloader_offset"):
        module.primary_bootloader_offset = None
        module.recovery_bootloader_offset = None
        argv += ["--primary-bootloader-offset", hex(OFFSETS[table_offset])]
    saved = sys.argv
    sys.argv = [*argv, str(csv), str(out)]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            module.main()
    except module.InputError as error:
        return "txt", str(error).encode()
    finally:
        sys.argv = saved
    return "bin", out.read_bytes()
