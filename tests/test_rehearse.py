"""`doit rehearse` end to end with no ESP-IDF and no board: the stand-in builds, esptool
flashes the emulated ROM loader, the real server serves, the virtual device updates over TLS.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from esp_ota_doit.device.esplink import Link
from esp_ota_doit.firmware import outputs
from esp_ota_doit.idf import otadata
from esp_ota_doit.idf.partition import formats

from tests.doitrun import edit, executed, run_with_output

pytest.importorskip(
    "esp32_mock_bootloader", reason="esp32-mock-bootloader not installed (pip install -e '.[test]')"
)


def test_rehearse__the_whole_story(rehearsal: Path) -> None:
    code, results, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    # The graph's own tasks made what the rehearsal reads; the stand-in built under build/virtual/.
    assert executed(results) >= {
        "render:partitions",
        "certs",
        "rehearse-build:esp-idf",
        "rehearse-build:factory",
        "rehearse-build:hello_world",
        "rehearse",
    }
    # What is synthetic is said once; the stand-in's imitation of idf.py goes to its log (and
    # to the terminal only when a build fails: tests/test_readme.py runs doit as a user does).
    assert text.count("synthetic images: no ESP-IDF here") == 1
    log = (rehearsal / "build/virtual/factory/build.log").read_text()
    assert "Project build complete" in log
    assert "boot: Loaded app from partition at offset 0x10000" in text
    assert text.rstrip().endswith("booted ota_0: hello_world 1.0.1")
    # The flash file holds a valid otadata entry selecting ota_0, and the served image there.
    flash_file = (rehearsal / "build/virtual/esp32-flash.bin").read_bytes()
    table = formats.from_bin(flash_file[0x8000 : 0x8000 + 0xC00])
    assert table.otadata is not None
    entries = otadata.decode(flash_file[table.otadata.offset : table.otadata.offset + 0x2000])
    active = max((e for e in entries if e.valid), key=lambda e: e.seq)
    assert active.crc == otadata.crc(active.seq)
    assert table.ota_slots[(active.seq - 1) % len(table.ota_slots)].name == "ota_0"
    served = outputs.read(rehearsal / "build/virtual/hello_world/app.json")
    image = served.app_file.read_bytes()
    ota_0 = table.ota_slots[0].offset
    assert flash_file[ota_0 : ota_0 + len(image)] == image
    # Synthetic images stay under build/virtual/: what flash, release and serve read is elsewhere.
    assert not (rehearsal / "build" / "factory").exists()
    assert not (rehearsal / "releases").exists()
    # So `doit flash` never writes them to a port: it needs a real build, which needs ESP-IDF.
    board_file = rehearsal / "build/virtual/esp32-flash.bin"
    before = board_file.read_bytes()
    for task in ("flash", "release"):
        code, results, text = run_with_output(
            rehearsal, task, *(["--port", "/dev/ttyUSB0"] * (task == "flash"))
        )
        assert code == 1, text
        assert "ESP-IDF not found: no idf.py on PATH and no $IDF_PATH/tools/idf.py" in text
        assert "Traceback" not in text
        assert task not in executed(results)
    # build:<app>:config may have recorded its inputs; no image was made or copied there.
    assert not list((rehearsal / "build").glob("factory/**/*.bin"))
    assert not (rehearsal / "build" / "factory" / "app.json").exists()
    assert not (rehearsal / "releases").exists()
    assert board_file.read_bytes() == before
    # The second run builds nothing: the first already had every input, the example's own
    # sdkconfig.defaults included (the synthetic tree is written after planning).
    code, results, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    assert executed(results) == {"rehearse"}
    assert text.rstrip().endswith("booted ota_0: hello_world 1.0.1")


def test_rehearse__a_fresh_tree_builds_with_the_examples_own_defaults(rehearsal: Path) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse-build:factory")
    assert code == 0, text
    command = (rehearsal / "build/virtual/factory/build.log").read_text().splitlines()[0]
    own = rehearsal / "build/virtual/src/factory/sdkconfig.defaults"
    generated = rehearsal / "build/generated/factory.sdkconfig.defaults"
    assert f"SDKCONFIG_DEFAULTS={own};{generated}" in command


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        ("cut", "Complete data was not received."),
        ("chip", "Mismatch chip id, expected 0, found 5"),
        ("corrupt", "Image validation failed, image is corrupted"),
        ("host", "esp-tls: Failed to verify peer certificate (IP address mismatch"),
    ],
)
def test_rehearse__failures_keep_the_factory_app(rehearsal: Path, failure: str, cause: str) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", failure)
    assert code == 0, text
    assert "booted factory: simple_ota 1.0.0" in text
    assert f"the board still boots factory; the update was refused: {cause}" in text


@pytest.mark.parametrize(
    ("example", "project_name", "ending"),
    [
        # simple_ota_example calls esp_https_ota() and compares no versions: it installs it.
        (
            "simple_ota_example",
            "simple_ota",
            "booted ota_0: simple_ota 1.0.0\napp 'factory' does not compare versions before "
            "writing (its code reads no esp_app_desc_t.version, or its option to skip that is "
            "on), so it installed 1.0.0 again",
        ),
        (
            "advanced_https_ota",
            "advanced_https_ota",
            "booted factory: advanced_https_ota 1.0.0\nthe board still boots factory; the update "
            "was refused: Current running version is the same as a new. We will not continue "
            "the update.",
        ),
    ],
)
def test_rehearse__same_version_as_the_configured_example_does(
    rehearsal: Path, example: str, project_name: str, ending: str
) -> None:
    edit(rehearsal, "ota/simple_ota_example", f"ota/{example}")
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "same-version")
    assert code == 0, text
    assert text.rstrip().endswith(ending)


def test_rehearse__same_version_with_the_apps_skip_option_on(rehearsal: Path) -> None:
    # The option turns the comparison off in the app's code (#ifndef): the board installs it.
    edit(rehearsal, "ota/simple_ota_example", "ota/advanced_https_ota")
    edit(
        rehearsal,
        "ota_client: true}",
        "ota_client: true, sdkconfig: {CONFIG_EXAMPLE_SKIP_VERSION_CHECK: true}}",
    )
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "same-version")
    assert code == 0, text
    assert "booted ota_0: advanced_https_ota 1.0.0\napp 'factory' does not compare" in text


def test_rehearse__host_accepted_where_the_app_skips_the_name_check(rehearsal: Path) -> None:
    edit(
        rehearsal,
        "ota_client: true}",
        "ota_client: true, sdkconfig: {CONFIG_EXAMPLE_SKIP_COMMON_NAME_CHECK: true}}",
    )
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "host")
    assert code == 0, text
    assert "warning: app 'factory' skips the server name check" in text
    assert text.rstrip().endswith(
        "booted ota_0: hello_world 1.0.1\napp 'factory' skips the server name check "
        "(skip_cert_common_name_check), so it took a certificate made for another host: a real "
        "board would too"
    )


def test_rehearse__an_app_trusting_only_the_bundle_refuses_the_handshake(
    rehearsal: Path,
) -> None:
    # simple_ota_example's code takes crt_bundle_attach under CONFIG_EXAMPLE_USE_CERT_BUNDLE;
    # stated here, as the stand-in's Kconfig has no bundle options.
    edit(rehearsal, "ota_client: true}", "ota_client: true, trusts: bundle}")
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 1, text
    assert "warning: app 'factory' trusts only ESP-IDF's certificate bundle" in text
    assert "ota: Firmware upgrade failed: esp-tls: Failed to verify peer certificate" in text
    assert "\nbooted factory: simple_ota 1.0.0\n" in text
    assert (
        "app 'factory' trusts only ESP-IDF's certificate bundle, which does not hold this "
        "project's CA: embed the CA (cert_pem), or serve with a certificate a public CA signed"
    ) in text


def test_rehearse__partial_download(rehearsal: Path) -> None:
    code, _, text = run_with_output(rehearsal, "rehearse", "--partial")
    assert code == 0, text
    # The image (about 11 KiB) fits one request of esp_https_ota's default 64 KiB: a plain GET.
    assert "ota: HEAD: Content-Length " in text
    assert "; one GET (the request size is 65536)" in text
    assert "Range" not in text
    assert text.rstrip().endswith("booted ota_0: hello_world 1.0.1")


def test_rehearse__without_the_emulator_says_how_to_install_it(
    rehearsal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "esp32_mock_bootloader.server", None)
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 1
    assert (
        "the virtual board needs the ROM loader emulator (esp32-mock-bootloader); "
        "pip install 'esp-ota-doit[rehearse]'"
    ) in text


@pytest.mark.parametrize(
    ("port", "resettable", "fixed_baud"),
    [
        ("/dev/ttyUSB0", True, False),
        ("rfc2217://host:4000", True, False),  # RFC 2217 carries DTR/RTS and the baud rate
        ("socket://192.168.1.5:3333", False, True),  # raw TCP carries neither
    ],
)
def test_link__what_a_named_port_can_do(port: str, resettable: bool, fixed_baud: bool) -> None:
    link = Link.of(port)
    assert (link.resettable, link.fixed_baud) == (resettable, fixed_baud)


@pytest.mark.parametrize("megabytes", [2, 8])
def test_link__the_virtual_board_answers_like_a_chip_of_its_size(
    tmp_path: Path, megabytes: int
) -> None:
    from esp_ota_doit.device.esplink import connect
    from esp_ota_doit.rehearsal.virtual_board import VirtualBoard
    from esptool.cmds import detect_flash_size

    size = megabytes << 20
    with VirtualBoard(tmp_path / "flash.bin", target="esp32", flash_size=size) as board:
        link = board.link
        with connect(link, 115200, "esp32") as esp:
            found = detect_flash_size(esp)
    assert not link.resettable and link.fixed_baud
    assert link.port.startswith("socket://127.0.0.1:")
    assert found == f"{megabytes}MB"


def test_rehearse__a_flash_app_that_is_no_ota_client(rehearsal: Path) -> None:
    edit(rehearsal, "version: 1.0.0, ota_client: true}", "version: 1.0.0}")
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 1
    assert (
        "flash_app 'factory' is not an OTA client, so there is no update to rehearse; "
        "set apps.factory.ota_client: true"
    ) in text
