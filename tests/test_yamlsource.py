"""YAML to data plus source positions; ${VAR} expansion; duplicate keys."""

from __future__ import annotations

import pytest
from esp_ota_doit.config.yamlsource import parse
from esp_ota_doit.errors import ConfigErrors, Location
from esp_ota_doit.idf.kconfig.symbols import HexInt


def test_parse__positions_are_one_based() -> None:
    data, source = parse("a:\n  b: [1, 2]\n", file="p.yaml", env={})
    assert data == {"a": {"b": [1, 2]}}
    assert source.values[("a", "b", 1)] == Location("p.yaml", 2, 10)
    assert source.keys[("a", "b")] == Location("p.yaml", 2, 3)


def test_parse__hex_stays_hex() -> None:
    data, _ = parse("x: 0x9000\ny: 36864\n", file="p.yaml", env={})
    assert isinstance(data, dict)
    assert isinstance(data["x"], HexInt) and data["x"] == 0x9000
    assert not isinstance(data["y"], HexInt)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("v: ${A}", {"A": "1"}, "1"),
        ("v: x${A}y", {"A": "-"}, "x-y"),
        ("v: ${A:-dflt}", {}, "dflt"),
        ("v: ${A:-dflt}", {"A": ""}, "dflt"),
        ("v: ${A:-}", {}, ""),
        ("v: ${A}", {"A": ""}, ""),
        ("v: $${A}", {"A": "1"}, "${A}"),
        ("v: cost $5", {}, "cost $5"),
    ],
)
def test_parse__expands_variables(text: str, env: dict[str, str], expected: str) -> None:
    data, _ = parse(text, file="p.yaml", env=env)
    assert data == {"v": expected}


def test_parse__remembers_what_was_written_for_expanded_values() -> None:
    _, source = parse('w: {password: "${PW}"}\n', file="p.yaml", env={"PW": "s3cret"})
    assert source.expanded[("w", "password")] == "${PW}"


def test_parse__unset_variable_names_it_and_not_any_value() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse("a: 1\nw: ${WIFI_PASSWORD}\n", file="p.yaml", env={"OTHER": "s3cret"})
    assert caught.value.lines == (
        "p.yaml:2:4: w: environment variable WIFI_PASSWORD is not set; "
        "export WIFI_PASSWORD=... or write ${WIFI_PASSWORD:-default}",
    )


def test_parse__errors_come_in_file_order() -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse("a: ${X}\nb: 1\nb: 2\nc: ${Y}\n", file="p.yaml", env={})
    assert [line.split(": ", 1)[0] for line in caught.value.lines] == [
        "p.yaml:1:4",
        "p.yaml:3:1",
        "p.yaml:4:4",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: [1\n",
            "p.yaml:1:4: invalid YAML: the '[' opened here is never closed (expected ',' or ']', "
            "but got '<stream end>')",
        ),
        ("a: b: c\n", "p.yaml:1:5: invalid YAML: mapping values are not allowed here"),
        (
            "# only a comment\n",
            "p.yaml:1:1: the file is empty; start from the example project.yaml",
        ),
        ("a: 1\na: 2\n", "p.yaml:2:1: a: duplicate key 'a' (first at line 1)"),
    ],
)
def test_parse__bad_documents(text: str, expected: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse(text, file="p.yaml", env={})
    assert caught.value.lines == (expected,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\ntarget esp32\nflash: {size: 4MB}\n",
            "project.yaml:2:1: invalid YAML: the key on this line has no ':' (could not find "
            "expected ':')",
        ),
        (
            "name: x\nflash: {size: 4MB\ntarget: esp32\n",
            "project.yaml:2:8: invalid YAML: the '{' opened here is never closed (expected ',' or "
            "'}', but got ':')",
        ),
        (
            'name: "x\ntarget: esp32\n',
            "project.yaml:1:7: invalid YAML: the quote opened here is never closed (found "
            "unexpected end of stream)",
        ),
        (
            "name: x\napps:\n  a: 1\n b: 2\n",
            "project.yaml:4:2: invalid YAML: expected <block end>, but found '<block mapping "
            "start>'",
        ),
    ],
)
def test_parse__syntax_errors_point_at_the_mistake(text: str, expected: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse(text, file="project.yaml", env={})
    assert caught.value.lines == (expected,)
