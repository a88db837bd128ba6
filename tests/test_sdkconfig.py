"""sdkconfig.defaults per app: option names, formatting, order, and the rendered files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import kconfiglib.core
import pytest
from esp_ota_doit.config import loader
from esp_ota_doit.config.model import Project
from esp_ota_doit.firmware import defaults, render
from esp_ota_doit.idf.kconfig import sdkconfig
from esp_ota_doit.idf.kconfig.symbols import HexInt
from hypothesis import given
from hypothesis import strategies as st

from tests import idfkit
from tests.conftest import REPO

GOLDEN = Path(__file__).resolve().parent / "golden" / "render"
CSV = Path("/project/build/generated/partitions.csv")


def load(text: str, env: dict[str, str] | None = None) -> Project:
    return loader.load(
        text,
        file="project.yaml",
        env=env or {},
        resolve_host=lambda host: "192.168.1.20" if host == "auto" else host,
        project_dir=REPO,
    )


def example(env: dict[str, str] | None = None, **replacements: str) -> Project:
    text = (REPO / "project.yaml").read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    return load(text, env)


def options(project: Project, app: str) -> dict[str, str]:
    plan = defaults.plan(project, project.app(app), partitions_csv=CSV)
    return {name: value for _, items in plan.groups for name, value in items}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "y"), (False, "n"), (3, "3"), (HexInt(0x9000), "0x9000"), ('a"b\\c', '"a\\"b\\\\c"')],
)
def test_format_value__kconfig_spelling(value: bool | int | str, expected: str) -> None:
    assert sdkconfig.format_value(value) == expected


@given(st.text())
def test_quote_unquote__kconfiglib_escaping(text: str) -> None:
    """One owner of sdkconfig strings, spelled as kconfgen's kconfiglib spells them."""
    quoted = sdkconfig.quote(text)
    assert quoted == f'"{kconfiglib.core.escape(text)}"'
    assert sdkconfig.unquote(quoted) == text == kconfiglib.core.unescape(quoted[1:-1])
    assert sdkconfig.json_value(quoted) == text


@pytest.mark.parametrize(
    ("written", "typed"),
    [("y", True), ("n", False), ("0x8000", 0x8000), ("010", 10), ("-3", -3), ("m", "m")],
)
def test_json_value__as_sdkconfig_json_types_it(written: str, typed: bool | int | str) -> None:
    assert sdkconfig.json_value(written) == typed


def test_plan__ota_client_gets_url_and_wifi() -> None:
    project = example({"WIFI_PASSWORD": "hunter2hunter2"})
    factory = options(project, "factory")
    assert (
        factory["CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL"]
        == '"https://192.168.1.20:8070/hello_world.bin"'
    )
    assert factory["CONFIG_EXAMPLE_WIFI_SSID"] == '"myssid"'
    assert factory["CONFIG_EXAMPLE_WIFI_PASSWORD"] == '"hunter2hunter2"'
    assert factory["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"] == f'"{CSV}"'
    assert factory["CONFIG_PARTITION_TABLE_OFFSET"] == "0x8000"
    assert factory["CONFIG_APP_PROJECT_VER"] == '"1.0.0"'


def test_plan__other_apps_get_no_url_or_wifi() -> None:
    hello = options(example({"WIFI_PASSWORD": "hunter2hunter2"}), "hello_world")
    assert not any("EXAMPLE" in name for name in hello)
    assert hello["CONFIG_APP_PROJECT_VER"] == '"1.0.1"'


@pytest.mark.idf_kit
def test_plan__the_url_option_comes_from_the_apps_kconfig() -> None:
    # native_ota_example spells it ..._UPG_URL in its Kconfig.projbuild: found there, by no name.
    text = (REPO / "project.yaml").read_text().replace("simple_ota_example", "native_ota_example")
    project = loader.load(
        text,
        file="project.yaml",
        env={},
        resolve_host=lambda host: "192.168.1.20",
        project_dir=REPO,
        idf_root=idfkit.idf_path(),
    )
    assert "CONFIG_EXAMPLE_FIRMWARE_UPG_URL" in options(project, "factory")


def test_plan__url_option_can_be_named() -> None:
    project = example(**{"ota_client: true}": "ota_client: true, url_option: CONFIG_MY_URL}"})
    factory = options(project, "factory")
    assert factory["CONFIG_MY_URL"].startswith('"https://')
    assert "CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL" not in factory


def test_plan__per_app_wins_over_project_wide_and_appears_once() -> None:
    project = example(
        **{
            "sdkconfig: {}": "sdkconfig: {CONFIG_LOG_DEFAULT_LEVEL_DEBUG: true, CONFIG_X: 1}",
            "version: 1.0.1}": (
                "version: 1.0.1, sdkconfig: {CONFIG_X: 2, CONFIG_APP_REPRODUCIBLE_BUILD: false}}"
            ),
        }
    )
    plan = defaults.plan(project, project.app("hello_world"), partitions_csv=CSV)
    names = [name for _, items in plan.groups for name, _ in items]
    assert len(names) == len(set(names))
    hello = options(project, "hello_world")
    assert hello["CONFIG_X"] == "2"
    assert hello["CONFIG_APP_REPRODUCIBLE_BUILD"] == "n"
    assert options(project, "factory")["CONFIG_X"] == "1"


def test_plan__flash_freq_defaults_per_target() -> None:
    project = example(**{"target: esp32": "target: esp32c3", ", freq: 40m": ""})
    assert options(project, "factory")["CONFIG_ESPTOOLPY_FLASHFREQ_80M"] == "y"


def test_plan__secret_only_when_a_password_is_rendered() -> None:
    with_password = example({"WIFI_PASSWORD": "hunter2hunter2"})
    assert defaults.plan(
        with_password, with_password.app("factory"), partitions_csv=CSV
    ).holds_secret
    assert not defaults.plan(
        with_password, with_password.app("hello_world"), partitions_csv=CSV
    ).holds_secret
    open_network = example()
    assert not defaults.plan(
        open_network, open_network.app("factory"), partitions_csv=CSV
    ).holds_secret


@pytest.mark.parametrize("app", ["factory", "hello_world"])
def test_render__sdkconfig_defaults_golden(
    app: str, tmp_path: Path, golden: Callable[[Path, bytes], None]
) -> None:
    project = example({"WIFI_PASSWORD": "golden-password"})
    target = tmp_path / f"{app}.sdkconfig.defaults"
    render.write_sdkconfig(defaults.plan(project, project.app(app), partitions_csv=CSV), target)
    golden(GOLDEN / f"{app}.sdkconfig.defaults", target.read_bytes())


def test_render__partitions_golden(tmp_path: Path, golden: Callable[[Path, bytes], None]) -> None:
    project = example()
    csv, binary = tmp_path / "partitions.csv", tmp_path / "partition-table.bin"
    render.write_partition_table(project.table, csv, binary)
    golden(GOLDEN / "partitions.csv", csv.read_bytes())
    golden(GOLDEN / "partition-table.bin", binary.read_bytes())


def test_render__partition_table_equals_esp_idf_tool_output(tmp_path: Path, shared: Path) -> None:
    project = example()
    csv, binary = tmp_path / "partitions.csv", tmp_path / "partition-table.bin"
    render.write_partition_table(project.table, csv, binary)
    assert binary.read_bytes() == (shared / "esp-idf/golden/two_ota@0x8000.bin").read_bytes()


def test_app_kconfig__v6_matches_names_case_insensitively() -> None:
    from esp_ota_doit.idf.kconfig.symbols import app_kconfig

    menus = [{"name": "MyNode_Url", "type": "string", "title": "URL", "depends_on": None}]
    for release, found in (("5.5.5", False), ("6.0.2", True)):
        kconfig = app_kconfig(release=release, target="esp32", menus=menus, values={}, renames={})
        assert (kconfig.symbol("CONFIG_MYNODE_URL") is not None) is found
        assert kconfig.symbol("CONFIG_MyNode_Url") is not None
