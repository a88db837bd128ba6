"""What an app's code does about OTA, read under its configuration (idf/app_code.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from esp_ota_doit.idf import app_code, preprocessor
from esp_ota_doit.rehearsal.next_app import next_version


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("CONFIG_A", True),
        ("!CONFIG_B", True),
        ("CONFIG_A && !CONFIG_B", True),
        ("defined(CONFIG_B)", False),
        ("defined CONFIG_A || CONFIG_B", True),
        ("CONFIG_N >= 4 && CONFIG_N < 6", True),
        ("(CONFIG_A || CONFIG_B) && CONFIG_N == 5", True),
        ("CONFIG_UNKNOWN", False),  # an option the configuration lacks is not defined
        ("ESP_IDF_VERSION >= 5", None),  # not the configuration's to tell
        ("CONFIG_A &&", None),
    ],
)
def test_condition(expression: str, expected: bool | None) -> None:
    config = {"A": True, "B": False, "N": 5}
    assert preprocessor.condition(expression, config) is expected


_CLIENT = """
#include "esp_https_ota.h"
#ifndef SEED_H
#define SEED_H
#endif
void ota(void) {
    esp_http_client_config_t config = {
#ifdef CONFIG_USE_BUNDLE
        .crt_bundle_attach = esp_crt_bundle_attach,
#else
        .cert_pem = (char *)server_cert_pem_start,
#endif
    };
#if CONFIG_SKIP_CN
    config.skip_cert_common_name_check = true;
#elif CONFIG_OTHER
    config.skip_cert_common_name_check = skip_from_nvs();
#endif
    /* memcmp(a.version, b.version, 32) in a comment is no comparison */
#ifndef CONFIG_SKIP_VERSION
    if (memcmp(new_info.version, running.version, sizeof(new_info.version)) == 0) return;
#endif
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 0, 0)
    esp_ota_mark_app_valid_cancel_rollback();
#endif
    esp_https_ota_config_t ota = {.http_config = &config, .partial_http_download = true,
                                  .max_http_request_size = CONFIG_REQUEST_SIZE};
    esp_https_ota(&ota);
}
"""


def _facts(config: dict[str, Any], **overrides: Any) -> app_code.AppCode:
    return app_code.facts(
        [_CLIENT],
        config,
        examples_common=False,
        app="seed",
        overrides=app_code.Overrides(**overrides),
    )


def test_facts__under_the_default_configuration() -> None:
    code = _facts({"REQUEST_SIZE": 16384})
    assert code.ota_client and code.compares_version
    assert (code.skips_host_check, code.trusts, code.payload) == (False, ("embedded_ca",), "plain")
    assert (code.partial, code.request_size) == (True, 16384)
    # The confirmation sits under a macro the configuration does not decide: said, with a key.
    assert code.confirms_update
    assert code.assumed == (
        "confirms itself (esp_ota_mark_app_valid_cancel_rollback): assumed yes (only under a "
        "macro the configuration does not decide); state it with apps.seed.confirms_update",
    )


def test_facts__options_turn_the_code_paths() -> None:
    code = _facts({"USE_BUNDLE": True, "SKIP_CN": True, "SKIP_VERSION": True})
    assert (code.compares_version, code.skips_host_check) == (False, True)
    assert code.trusts == ("bundle",) and code.bundle_only


def test_facts__a_computed_value_is_an_assumption_a_key_retires() -> None:
    code = _facts({"OTHER": True})
    assert not code.skips_host_check
    assert any(
        line.startswith("skip_cert_common_name_check: set from a value") for line in code.assumed
    )
    stated = _facts({"OTHER": True}, skips_host_check=True, confirms_update=False)
    assert stated.skips_host_check and not stated.confirms_update
    assert stated.assumed == ()


def test_facts__a_bundle_built_from_the_apps_ca_holds_it() -> None:
    config = {
        "USE_BUNDLE": True,
        "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE": True,
        "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH": "server_certs/ca_cert.pem",
    }
    code = app_code.facts(
        [_CLIENT], config, examples_common=False, ca_cert="./server_certs/ca_cert.pem"
    )
    assert code.trusts_project_ca and not code.bundle_only


def test_facts__its_own_tls_client_attaching_the_bundle_trusts_it() -> None:
    # No esp_http_client: the app sets up mbedtls itself and hands it ESP-IDF's bundle.
    own_tls = (
        "mbedtls_ssl_config_init(&conf);\n"
        "if (esp_crt_bundle_attach(&conf) < 0) { abort(); }\n"
        "esp_ota_begin(part, OTA_WITH_SEQUENTIAL_WRITES, &handle);\n"
    )
    code = app_code.facts([own_tls], {}, examples_common=False, app="seed")
    assert code.trusts == ("bundle",) and code.bundle_only
    assert not any(line.startswith("trust:") for line in code.assumed)


def test_with_old_names__as_sdkconfig_h_defines_the_deprecated_names() -> None:
    renames = {
        "CONFIG_APP_ROLLBACK_ENABLE": "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE",
        "CONFIG_OLD_ON": "!CONFIG_NEW_OFF",
        "CONFIG_OLD_SIZE": "CONFIG_NEW_SIZE",
        "CONFIG_GONE": "CONFIG_ABSENT",
    }
    config = {"BOOTLOADER_APP_ROLLBACK_ENABLE": True, "NEW_OFF": False, "NEW_SIZE": 4096}
    assert app_code.with_old_names(config, renames) == {
        **config,
        "APP_ROLLBACK_ENABLE": True,
        "OLD_ON": True,
        "OLD_SIZE": 4096,
    }
    confirm = "#ifdef CONFIG_APP_ROLLBACK_ENABLE\nesp_ota_mark_app_valid_cancel_rollback();\n#endif"
    code = app_code.facts(
        [confirm], app_code.with_old_names(config, renames), examples_common=False
    )
    assert code.confirms_update and code.assumed == ()


def test_facts__a_version_read_into_numbers_is_an_assumed_comparison() -> None:
    # The versions parsed as major.minor.patch and compared as numbers: no memcmp/strcmp.
    semver = (
        "esp_https_ota_begin(&cfg, &handle);\n"
        'sscanf(running->version, "%lu.%lu.%lu", &major, &minor, &patch);\n'
        'sscanf(incoming->version, "%lu.%lu.%lu", &new_major, &new_minor, &new_patch);\n'
        "if (major == new_major && minor == new_minor && patch == new_patch) { return ESP_FAIL; }\n"
    )
    code = app_code.facts([semver], {}, examples_common=False, app="seed")
    assert code.compares_version
    assert (
        "compares versions before writing: assumed yes (its code reads the version with "
        "sscanf(), a comparison this reading cannot follow); state it with "
        "apps.seed.compares_version"
    ) in code.assumed
    stated = app_code.facts(
        [semver],
        {},
        examples_common=False,
        app="seed",
        overrides=app_code.Overrides(compares_version=False),
    )
    assert not stated.compares_version
    assert not any(line.startswith("compares versions") for line in stated.assumed)


def test_sources__components_the_build_takes_not_a_copy_of_esp_idfs(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "app.c").write_text("void app_main(void) {}\n")
    own = tmp_path / "components" / "updater"
    own.mkdir(parents=True)
    (own / "CMakeLists.txt").write_text('idf_component_register(SRCS "src/updater.c")\n')
    (own / "src").mkdir()
    (own / "src" / "updater.c").write_text("esp_https_ota(&cfg);\n")
    # A vendored copy of ESP-IDF's components one level down: no CMakeLists.txt at its top, so
    # ESP-IDF's build takes none of it, and its esp_https_ota.c is not the app's code.
    vendored = tmp_path / "components" / "components" / "esp_https_ota"
    (vendored / "src").mkdir(parents=True)
    (vendored / "CMakeLists.txt").write_text("idf_component_register()\n")
    (vendored / "src" / "esp_https_ota.c").write_text("skip_cert_common_name_check = true;\n")
    found = [path.relative_to(tmp_path).as_posix() for path in app_code.sources(tmp_path)]
    assert found == ["main/app.c", "components/updater/src/updater.c"]


def test_facts__payload_and_network() -> None:
    encrypted = app_code.facts(
        ["esp_https_ota_begin(&c, &h); esp_encrypted_img_decrypt_start(&cfg);"],
        {},
        examples_common=False,
    )
    assert encrypted.payload == "pre-encrypted"
    assert app_code.payload_refusal(encrypted) == (
        "its code takes pre-encrypted updates: it needs images encrypted for it with "
        "esp_encrypted_img (its RSA key) (ota.encrypt: rsa3072)"
    )
    assert app_code.payload_refusal(encrypted, encrypt=True) is None
    assert app_code.payload_refusal(encrypted, delta=True) is not None
    delta = app_code.facts(["esp_delta_ota_init(&cfg);"], {}, examples_common=False)
    assert delta.payload == "delta"
    assert app_code.payload_refusal(delta, delta=True) is None
    assert app_code.payload_refusal(delta) == (
        "its code takes delta updates: it needs delta images made with esp_delta_ota against "
        "the version it runs (ota.delta: true)"
    )
    # protocol_examples_common's choice decides; the app's own calls otherwise.
    ethernet = {"EXAMPLE_CONNECT_WIFI": False, "EXAMPLE_CONNECT_ETHERNET": True}
    assert app_code.facts([""], ethernet, examples_common=True).network == ("ethernet",)
    assert app_code.facts(["esp_wifi_start();"], {}, examples_common=False).network == ("wifi",)


def test_warnings__at_build_and_serve() -> None:
    code = _facts({"USE_BUNDLE": True, "SKIP_CN": True, "BOOTLOADER_APP_ROLLBACK_ENABLE": True})
    notes = app_code.warnings(code, app="seed", client=True)
    assert any("skips the server name check" in note for note in notes)
    assert any("trusts only ESP-IDF's certificate bundle" in note for note in notes)
    hello = app_code.facts(
        ["void app_main(void) {}"], {"BOOTLOADER_APP_ROLLBACK_ENABLE": True}, examples_common=False
    )
    assert app_code.warnings(hello, app="hello_world", client=False) == [
        "app 'hello_world' never calls esp_ota_mark_app_valid_cancel_rollback(): with app "
        "rollback on, a board boots it pending verify and goes back to the previous app at its "
        "next reset; call it once the app is known good (or set "
        "apps.hello_world.confirms_update: true where it does so out of sight)"
    ]


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.0.0", "1.0.1"), ("7", "8"), ("2.1-rc1", "2.1-rc2"), ("v1.9", "v1.10"), ("dev", "dev.1")],
)
def test_next_version(version: str, expected: str) -> None:
    assert next_version(version) == expected
