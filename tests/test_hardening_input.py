"""Hostile values that pass YAML but must never reach firmware, certificates or a message whole."""

from __future__ import annotations

import pytest
from esp_ota_doit.config import hosts, schema, yamlsource
from esp_ota_doit.errors import ConfigError, ConfigErrors, clip
from esp_ota_doit.idf.kconfig import sdkconfig


@pytest.mark.parametrize(
    "host",
    ["evil.example/path?x", "a b", "fe80::1%eth0", "a" * 64 + ".example", "-x.example", "x" * 254],
)
def test_ota_host__refused_like_a_url_host(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        hosts.resolve_host("auto", {"OTA_HOST": host}, lan=lambda: "10.0.0.2")
    assert caught.value.path == ("ota", "url")
    assert "OTA_HOST" in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize("host", ["ota.example.com", "10.0.0.7", "[fd00::7]", "a" * 63 + ".lan"])
def test_ota_host__names_and_literals_pass(host: str) -> None:
    resolved, warning = hosts.resolve_host("auto", {"OTA_HOST": host}, lan=lambda: None)
    assert resolved == host.strip("[]").lower() and warning is None


def test_url__port_zero_refused_and_default_kept() -> None:
    with pytest.raises(ConfigError, match="port 0"):
        schema.url("https://h.example:0/a.bin", ("ota", "url"))
    assert schema.url("https://h.example/a.bin", ("ota", "url")).port == 443
    with pytest.raises(ConfigError, match="not a valid URL"):
        schema.url("https://h.example:65536/a.bin", ("ota", "url"))


def test_sdkconfig_strings__quotes_escaped_as_kconfiglib_does() -> None:
    assert sdkconfig.format_value('my"ssid\\x') == '"my\\"ssid\\\\x"'


@pytest.mark.parametrize("value", ["a\nCONFIG_B=y", "a\rb", "a\x00b"])
def test_sdkconfig_strings__control_characters_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="control character"):
        schema.ssid(value, ("wifi", "ssid"))
    with pytest.raises(ConfigError) as caught:
        schema.wifi_password("password" + value, ("wifi", "password"))
    assert "password" not in caught.value.message  # a secret is never echoed


def test_clip__long_values_and_control_characters() -> None:
    assert clip("x" * 10) == "x" * 10
    text = clip("y" * 50_000_000)
    assert len(text) < 120 and text.endswith("(50000000 characters)")
    assert clip("a\nb") == "a\\nb"


def test_yaml__alias_bomb_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(ConfigErrors, match="aliases expanding"):
        yamlsource.parse("\n".join(lines), file="project.yaml", env={})


def test_yaml__small_aliases_still_work() -> None:
    data, _ = yamlsource.parse("a: &x [1, 2]\nb: *x\n", file="p.yaml", env={})
    assert data == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: " + "[" * 5000 + "]" * 5000, "nested more than"),
        ("a: {<<: {b: 1}}", "merge keys"),
        ("a: " + "1" * 5000, "a number of 5000 characters"),
        ("a: 1." + "1" * 500, "a number of 502 characters"),
    ],
)
def test_yaml__limits_are_one_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        yamlsource.parse(text, file="project.yaml", env={})
    assert len(caught.value.lines) == 1 and problem in caught.value.lines[0]
    assert caught.value.lines[0].startswith("project.yaml:1:")
