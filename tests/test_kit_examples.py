"""ESP-IDF v5.3.2's own OTA examples, with each CI variant ESP-IDF layers on them, and
get-started/hello_world, taken from the real kit's tree: `esp-ota-doit init` adopts each as
ESP-IDF's build would configure it (or refuses it in one line), render gives the settings
kconfgen gives over the same layered defaults and the table gen_esp32part.py makes, and what the
rehearsal plays is what the app's code does under that configuration.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from esp_ota_doit import cli
from esp_ota_doit.config import loader
from esp_ota_doit.firmware import kconfig_source
from esp_ota_doit.idf import app_code, app_folder
from esp_ota_doit.idf.kconfig import kconfgen
from esp_ota_doit.idf.partition import formats

from tests import idfkit
from tests.doitrun import run_with_output

pytestmark = pytest.mark.idf_kit

OTA = "examples/system/ota"
# Every app of v5.3.2's examples/system/ota with each of its sdkconfig.ci* variants (None: the
# app's sdkconfig.defaults alone), and hello_world; test_the_list_is_the_kits checks it.
CASES: list[tuple[str, str | None]] = [
    (f"{OTA}/advanced_https_ota", None),
    (f"{OTA}/advanced_https_ota", "sdkconfig.ci"),
    (f"{OTA}/advanced_https_ota", "sdkconfig.ci.anti_rollback"),
    (f"{OTA}/advanced_https_ota", "sdkconfig.ci.bluedroid"),
    (f"{OTA}/advanced_https_ota", "sdkconfig.ci.nimble"),
    (f"{OTA}/advanced_https_ota", "sdkconfig.ci.partial_download"),
    (f"{OTA}/native_ota_example", None),
    (f"{OTA}/native_ota_example", "sdkconfig.ci"),
    (f"{OTA}/otatool", None),
    (f"{OTA}/pre_encrypted_ota", None),
    (f"{OTA}/pre_encrypted_ota", "sdkconfig.ci"),
    (f"{OTA}/pre_encrypted_ota", "sdkconfig.ci.partial_download"),
    (f"{OTA}/simple_ota_example", None),
    (f"{OTA}/simple_ota_example", "sdkconfig.ci"),
    (f"{OTA}/simple_ota_example", "sdkconfig.ci.flash_enc_wifi"),
    (f"{OTA}/simple_ota_example", "sdkconfig.ci.on_update_no_sb_ecdsa"),
    (f"{OTA}/simple_ota_example", "sdkconfig.ci.on_update_no_sb_rsa"),
    (f"{OTA}/simple_ota_example", "sdkconfig.ci.spiram"),
    (f"{OTA}/simple_ota_example", "sdkconfig.ci.tls1_3"),
    ("examples/get-started/hello_world", None),
]
_IDS = [f"{path.rsplit('/', 1)[1]}{'+' + v if v else ''}" for path, v in CASES]

# What each app's code does under each configuration (the rehearsal plays exactly this):
# (compares versions, skips the name check, trusts the project's CA, partial download,
# confirms under rollback, network).
_CODE: dict[tuple[str, str | None], tuple[bool, bool, bool, bool, bool, tuple[str, ...]]] = {
    ("advanced_https_ota", None): (True, False, True, False, False, ("wifi",)),
    ("advanced_https_ota", "sdkconfig.ci"): (False, True, True, False, False, ("ethernet",)),
    ("advanced_https_ota", "sdkconfig.ci.anti_rollback"): (
        False,
        True,
        True,
        False,
        True,
        ("ethernet",),
    ),
    ("advanced_https_ota", "sdkconfig.ci.bluedroid"): (False, True, True, False, False, ("wifi",)),
    ("advanced_https_ota", "sdkconfig.ci.nimble"): (False, True, True, False, False, ("wifi",)),
    ("advanced_https_ota", "sdkconfig.ci.partial_download"): (
        False,
        True,
        True,
        True,
        False,
        ("ethernet",),
    ),
    ("native_ota_example", None): (True, False, True, False, True, ("wifi",)),
    # Its other memcmp is with the last image that failed to boot, not the running one.
    ("native_ota_example", "sdkconfig.ci"): (False, True, True, False, True, ("ethernet",)),
    # It decrypts (esp_encrypted_img): served pre-encrypted images under ota.encrypt.
    ("pre_encrypted_ota", None): (True, False, True, False, False, ("wifi",)),
    ("pre_encrypted_ota", "sdkconfig.ci"): (False, True, True, False, False, ("ethernet",)),
    ("pre_encrypted_ota", "sdkconfig.ci.partial_download"): (
        False,
        True,
        True,
        True,
        False,
        ("ethernet",),
    ),
    # The bundle holds the project's CA: CONFIG_MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH names
    # server_certs/ca_cert.pem, where the build places it.
    ("simple_ota_example", None): (False, False, True, False, False, ("wifi",)),
    ("simple_ota_example", "sdkconfig.ci"): (False, True, True, False, False, ("wifi",)),
    ("simple_ota_example", "sdkconfig.ci.flash_enc_wifi"): (
        False,
        True,
        True,
        False,
        False,
        ("wifi",),
    ),
    ("simple_ota_example", "sdkconfig.ci.on_update_no_sb_rsa"): (
        False,
        True,
        True,
        False,
        False,
        ("ethernet",),
    ),
    ("simple_ota_example", "sdkconfig.ci.spiram"): (False, True, True, False, False, ("ethernet",)),
    ("simple_ota_example", "sdkconfig.ci.tls1_3"): (False, True, True, False, False, ("ethernet",)),
}
# Adoption refused, in one line (the start of it).
_REFUSED = {
    "simple_ota_example+sdkconfig.ci.on_update_no_sb_ecdsa": (
        "esp-ota-doit init: sdkconfig.defaults, sdkconfig.ci.on_update_no_sb_ecdsa: "
        "CONFIG_SECURE_SIGNED_APPS_ECDSA_SCHEME signs for Secure Boot V1, which this project "
        "does not make; choose CONFIG_SECURE_SIGNED_APPS_RSA_SCHEME or "
        "CONFIG_SECURE_SIGNED_APPS_ECDSA_V2_SCHEME"
    ),
}


def _copy(example: str, tmp_path: Path) -> Path:
    source = idfkit.idf_path() / example
    folder = tmp_path / source.name
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("build", "sdkconfig"))
    return folder


def _init(
    folder: Path, variant: str | None, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, str, str]:
    for name, value in idfkit.kit_env().items():
        monkeypatch.setenv(name, value)
    args = ["--defaults", "sdkconfig.defaults", variant] if variant else []
    code = cli.main(["init", str(folder), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _load(folder: Path) -> Any:
    """project.yaml loaded, then each app's Kconfig as the kconfig task evaluates it."""
    env = {**idfkit.kit_env(), "WIFI_PASSWORD": "secret-pass"}
    text = (folder / "project.yaml").read_text()
    project = loader.load(
        text,
        file="project.yaml",
        env=env,
        resolve_host=lambda host: "192.0.2.7",
        project_dir=folder,
        idf_root=Path(env["IDF_PATH"]),
    )
    facts = {app.name: folder / "build" / f"{app.name}.facts.json" for app in project.apps}
    kconfig_source.evaluate_apps(project, text, facts, env, warn=lambda line: None)
    found = tuple((name, kconfig_source.read(path).kconfig) for name, path in facts.items())
    return dataclasses.replace(project, kconfig=found)


def test_the_list_is_the_kits() -> None:
    root = idfkit.idf_path()
    found = [
        (f"{OTA}/{app.name}", variant)
        for app in sorted((root / OTA).iterdir())
        if (app / "CMakeLists.txt").is_file()
        for variant in [None, *sorted(p.name for p in app.glob("sdkconfig.ci*"))]
    ]
    assert [case for case in CASES if case[0].startswith(OTA)] == found


def _app_only(folder: Path, project: Any, app: Any) -> dict[str, Any]:
    """kconfgen over the app's own layered defaults alone: what ESP-IDF builds from them."""
    files = app_folder.read_app(folder)
    tree = kconfgen.tree(
        idfkit.idf_path(), project.target, folder, examples_common=files.uses_examples_common
    )
    command = kconfgen.kconfgen(idfkit.kit_env())
    assert command is not None
    layers = [folder / name for name in app.defaults_files if (folder / name).is_file()]
    return kconfgen.evaluate(tree, defaults=layers, command=command).values


# What project.yaml decides on purpose, each for a reason the README gives.
_OURS = (
    "PARTITION_TABLE_",  # the rendered table (same rows and offset, checked against gen_esp32part)
    "APP_PROJECT_VER",  # apps.<name>.version
    "APP_REPRODUCIBLE_BUILD",  # reproducible builds: no compile date in the images
    "APP_COMPILE_TIME_DATE",
    "BOOTLOADER_COMPILE_TIME_DATE",
    "EXAMPLE_FIRMWARE_UPGRADE_URL",  # ota.url (FROM_STDIN becomes the served URL)
    "EXAMPLE_FIRMWARE_UPG_URL",
    "EXAMPLE_WIFI_",  # wifi.ssid / wifi.password
    "SECURE_BOOT_BUILD_SIGNED_BINARIES",  # ota.sign signs after the build with espsecure
    "SECURE_BOOT_SIGNING_KEY",  # ... with the app's key, through $OTA_SIGNING_KEY
    "ESPTOOLPY_FLASHSIZE",  # flash.size: the same, or 4MB where two_ota replaces a single table
    "ESPTOOLPY_FLASHFREQ",  # flash.freq: the same value, set explicitly
    "ESPTOOLPY_FLASHMODE",
)


@pytest.mark.parametrize(("example", "variant"), CASES, ids=_IDS)
def test_init_and_render(
    example: str,
    variant: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _copy(example, tmp_path)
    code, out, err = _init(folder, variant, monkeypatch, capsys)
    case = f"{folder.name}{'+' + variant if variant else ''}"
    refused = _REFUSED.get(case) or _REFUSED.get(folder.name)
    if refused is not None:
        assert (code, err.strip(), out) == (1, refused, "")
        return
    assert (code, err) == (0, ""), out
    assert "configuration: " in out and "evaluated by kconfgen of ESP-IDF 5.3.2" in out
    data = yaml.safe_load((folder / "project.yaml").read_text())
    project = _load(folder)
    app = project.app(project.flash_app)
    assert app.defaults_files == (
        ("sdkconfig.defaults", variant) if variant else ("sdkconfig.defaults",)
    )
    # The settings: kconfgen over the app's layered defaults plus ours keeps every choice of
    # the app's own files but those project.yaml decides on purpose.
    alone = _app_only(folder, project, app)
    applied = project.kconfig_of(app.name).values
    changed = sorted(
        name
        for name in set(alone) | set(applied)
        if alone.get(name) != applied.get(name) and not name.startswith(_OURS)
    )
    assert changed == [], changed
    _table_is_gen_esp32parts(folder, project, alone)
    # Rollback and anti-rollback the app configures are project.yaml keys.
    assert (project.ota is not None and project.ota.rollback) == (
        alone.get("BOOTLOADER_APP_ROLLBACK_ENABLE") is True
    )
    if alone.get("SECURE_BOOT_BUILD_SIGNED_BINARIES") is True:
        key = folder / str(alone["SECURE_BOOT_SIGNING_KEY"])
        assert project.ota is not None and project.ota.sign == "rsa3072"
        assert f"export OTA_SIGNING_KEY={key.resolve()}" in out
    if alone.get("BOOTLOADER_APP_ANTI_ROLLBACK") is True:
        assert app.secure_version == alone["BOOTLOADER_APP_SECURE_VERSION"]
    # An app whose code decrypts (esp_encrypted_img) is served pre-encrypted images, with the
    # RSA key it embeds, which its boards already hold.
    if app_code.decrypts(folder):
        assert project.ota is not None and project.ota.encrypt == "rsa3072"
        assert app.decrypt_key == "rsa_key/private.pem"
        key = (folder / "rsa_key" / "private.pem").resolve()
        assert f"export OTA_ENCRYPTION_KEY={key}" in out
    else:
        assert project.ota is None or project.ota.encrypt is None
    # Wi-Fi settings only for an app that joins Wi-Fi; ${WIFI_PASSWORD} has no default.
    network = _CODE.get((folder.name, variant), (False,) * 5 + ((),))[5]
    assert ("wifi" in data) == ("wifi" in network)
    if "wifi" in data:
        assert data["wifi"]["password"] == "${WIFI_PASSWORD}"
    if "ethernet" in network:
        assert "CONFIG_EXAMPLE_CONNECT_WIFI" not in (folder / "project.yaml").read_text()


def _table_is_gen_esp32parts(folder: Path, project: Any, alone: dict[str, Any]) -> None:
    """The rendered table, byte for byte what ESP-IDF's gen_esp32part.py makes of the CSV its
    build would use (the app's custom one, or the preset's, two_ota for a single-app table)."""
    idf = idfkit.idf_path()
    if alone.get("PARTITION_TABLE_CUSTOM") is True:
        csv = folder / str(alone["PARTITION_TABLE_CUSTOM_FILENAME"])
    else:
        name = str(alone["PARTITION_TABLE_FILENAME"])
        csv = idf / "components" / "partition_table" / name
        if "singleapp" in name:
            csv = idf / "components" / "partition_table" / "partitions_two_ota.csv"
    out = folder / "expected.bin"
    done = subprocess.run(
        [
            sys.executable,
            str(idf / "components" / "partition_table" / "gen_esp32part.py"),
            "-q",
            "--offset",
            hex(project.partitions.table_offset),
            "--flash-size",
            project.flash.size_text,
            str(csv),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert formats.to_bin(project.table) == out.read_bytes()


@pytest.mark.parametrize(("example", "variant"), list(_CODE), ids=[f"{e}+{v}" for e, v in _CODE])
def test_what_the_rehearsal_plays_is_the_apps_code(example: str, variant: str | None) -> None:
    folder = idfkit.idf_path() / OTA / example
    files = app_folder.read_app(folder)
    command = kconfgen.kconfgen(idfkit.kit_env())
    assert command is not None
    tree = kconfgen.tree(idfkit.idf_path(), "esp32c3", folder, examples_common=True)
    layers = [folder / "sdkconfig.defaults", *([folder / variant] if variant else [])]
    config = kconfgen.evaluate(tree, defaults=layers, command=command).values
    code = app_code.scan(
        folder,
        config,
        examples_common=files.uses_examples_common,
        ca_cert="server_certs/ca_cert.pem",
    )
    found = (
        code.compares_version,
        code.skips_host_check,
        code.trusts_project_ca,
        code.partial,
        code.confirms_update,
        code.network,
    )
    assert found == _CODE[(example, variant)]
    assert code.assumed == ()


# The rehearsal of each adopted app through the idf.py stand-in (no ESP-IDF on the path; init
# read the app with the kit's kconfgen): the next version, then the same one, as its code plays
# them. (ending of `doit rehearse`, ending of `doit rehearse --fail same-version`)
_STORIES = {
    ("simple_ota_example", None): (
        "booted ota_0: simple_ota 2",
        "app 'simple_ota' does not compare versions before writing",
    ),
    ("advanced_https_ota", None): (
        "booted ota_0: advanced_https_ota 2",
        "the update was refused: Current running version is the same as a new. We will not "
        "continue the update.",
    ),
    ("advanced_https_ota", "sdkconfig.ci.anti_rollback"): (
        "booted ota_1: advanced_https_ota 2",
        "app 'advanced_https_ota' does not compare versions before writing",
    ),
    ("native_ota_example", None): (
        "booted ota_0: native_ota 2",
        "the update was refused: Current running version is the same as a new. We will not "
        "continue the update.",
    ),
    ("native_ota_example", "sdkconfig.ci"): (
        "booted ota_0: native_ota 2",
        "app 'native_ota' does not compare versions before writing",
    ),
    ("advanced_https_ota", "sdkconfig.ci.partial_download"): (
        "booted ota_0: advanced_https_ota 2",
        "app 'advanced_https_ota' does not compare versions before writing",
    ),
    ("pre_encrypted_ota", None): (
        "booted ota_0: pre_encrypted_ota 2",
        "the update was refused: Current running version is the same as a new. We will not "
        "continue the update.",
    ),
}


def _without_idf(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDF_PATH", "IDF_PYTHON_ENV_PATH"):
        monkeypatch.delenv(name, raising=False)
    folders = os.environ["PATH"].split(os.pathsep)
    monkeypatch.setenv(
        "PATH", os.pathsep.join(f for f in folders if not (Path(f) / "idf.py").exists())
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("example", "variant"), list(_STORIES), ids=[f"{e}+{v}" for e, v in _STORIES]
)
def test_rehearse_the_adopted_app(
    example: str,
    variant: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _copy(f"{OTA}/{example}", tmp_path)
    code, out, _ = _init(folder, variant, monkeypatch, capsys)
    assert code == 0, out
    _without_idf(monkeypatch)
    monkeypatch.setenv("WIFI_PASSWORD", "secret-pass")
    monkeypatch.chdir(folder)
    next_ending, same_ending = _STORIES[(example, variant)]
    code, _, text = run_with_output(folder, "rehearse")
    assert code == 0, text
    assert f"\n{next_ending}\n" in text + "\n"
    code, _, text = run_with_output(folder, "rehearse", "--fail", "same-version")
    assert code == 0, text
    assert same_ending in text


@pytest.mark.parametrize("example", ["examples/get-started/hello_world", f"{OTA}/otatool"])
def test_rehearse_an_app_that_fetches_no_update(
    example: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _copy(example, tmp_path)
    code, out, _ = _init(folder, None, monkeypatch, capsys)
    assert code == 0 and "OTA client: no; its code calls no esp_https_ota" in out
    _without_idf(monkeypatch)
    monkeypatch.chdir(folder)
    code, _, text = run_with_output(folder, "rehearse")
    assert code == 1
    assert (
        "its code calls no esp_https_ota, esp_https_ota_begin or esp_ota_begin, so a board " in text
    )


def test_anti_rollback_beside_a_factory_partition_is_refused_in_esp_idfs_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CI variant's anti-rollback, layered in, with ESP-IDF's two_ota table (a factory slot).
    folder = _copy(f"{OTA}/advanced_https_ota", tmp_path)
    code, out, _ = _init(folder, "sdkconfig.ci.anti_rollback", monkeypatch, capsys)
    assert code == 0, out
    text = (folder / "project.yaml").read_text()
    start = text.index("partitions:")
    end = text.index("apps:")
    text = text[:start] + "partitions: {table_offset: 0xd000, layout: two_ota}\n\n" + text[end:]
    (folder / "project.yaml").write_text(text.replace("    secure_version: 1", ""))
    with pytest.raises(loader.ConfigErrors) as raised:
        _load(folder)
    assert raised.value.lines[0].endswith(
        "partitions.layout: Anti-rollback option is enabled. Partition table should consist of "
        "two ota app without factory or test partitions.; use a layout of otadata, ota_0 and "
        "ota_1 only (apps.<name>.secure_version turns anti-rollback on)"
    )


def test_render_warns_what_the_code_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(f"{OTA}/advanced_https_ota", tmp_path)
    code, out, _ = _init(folder, "sdkconfig.ci", monkeypatch, capsys)
    assert code == 0, out
    monkeypatch.chdir(folder)
    code, _, text = run_with_output(folder, "render")
    assert code == 0, text
    assert (
        "warning: app 'advanced_https_ota' skips the server name check "
        "(skip_cert_common_name_check): it accepts any certificate its CA signed, for any host, "
        "which undoes the certificate's purpose; turn off the option or the code that sets it"
    ) in text
