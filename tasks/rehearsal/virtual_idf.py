"""A synthetic ESP-IDF tree for machines without ESP-IDF: skeletons of the example projects that
project.yaml names with `idf:`, which the idf.py stand-in (tasks/standin.py) can build.

Each skeleton keeps what the build contract depends on: the CMake project name, the embedded
server_certs/ca_cert.pem, the example's own Kconfig options and sdkconfig.defaults
(docs/esp-idf.md §1).
"""

from __future__ import annotations

from pathlib import Path

from ..files import write_if_changed
from . import idf_kconfig

__all__ = ["EXAMPLES", "write"]

_PROJECT = (
    "cmake_minimum_required(VERSION 3.16)\n"
    "include($ENV{{IDF_PATH}}/tools/cmake/project.cmake)\n"
    "project({name})\n"
)
# The ESP-IDF OTA examples' placeholder CA; the build replaces it with this project's CA.
_EXAMPLE_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "(the OTA examples' self-signed test certificate, CN=ESP; replaced at build time)\n"
    "-----END CERTIFICATE-----\n"
)
# Every OTA example's own sdkconfig.defaults (docs/esp-idf.md §1.0).
_OTA_DEFAULTS = "CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y\nCONFIG_PARTITION_TABLE_TWO_OTA=y\n"
_HELLO_COMPONENT = 'idf_component_register(SRCS "hello_world_main.c" INCLUDE_DIRS "")\n'
_OTA_KCONFIG = (
    'menu "Example Configuration"\n'
    "    config EXAMPLE_FIRMWARE_UPGRADE_URL\n"
    '        string "firmware upgrade url endpoint"\n'
    '        default "https://192.168.0.3:8070/hello_world.bin"\n'
    "    config EXAMPLE_SKIP_COMMON_NAME_CHECK\n"
    '        bool "Skip server certificate CN fieldcheck"\n'
    "        default n\n"
    "    config EXAMPLE_SKIP_VERSION_CHECK\n"
    '        bool "Skip firmware version check"\n'
    "        default n\n"
    "endmenu\n"
)


# What each example's code does about OTA, as its real source does it (the calls and the
# #ifdefs around them; app_code reads them): the stand-in compiles none of it.
_CODE = {
    "simple_ota": (
        "esp_http_client_config_t config = {\n"
        "#ifdef CONFIG_EXAMPLE_USE_CERT_BUNDLE\n"
        "    .crt_bundle_attach = esp_crt_bundle_attach,\n"
        "#else\n"
        "    .cert_pem = (char *)server_cert_pem_start,\n"
        "#endif\n"
        "};\n"
        "#ifdef CONFIG_EXAMPLE_SKIP_COMMON_NAME_CHECK\n"
        "config.skip_cert_common_name_check = true;\n"
        "#endif\n"
        "esp_https_ota(&ota_config);\n"
    ),
    "advanced_https_ota": (
        "#ifndef CONFIG_EXAMPLE_SKIP_VERSION_CHECK\n"
        "memcmp(new_app_info->version, running_app_info.version, sizeof(new_app_info->version));\n"
        "#endif\n"
        "esp_http_client_config_t config = { .cert_pem = (char *)server_cert_pem_start };\n"
        "#ifdef CONFIG_EXAMPLE_SKIP_COMMON_NAME_CHECK\n"
        "config.skip_cert_common_name_check = true;\n"
        "#endif\n"
        "esp_https_ota_begin(&ota_config, &https_ota_handle);\n"
        "#if defined(CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE)\n"
        "esp_ota_mark_app_valid_cancel_rollback();\n"
        "#endif\n"
    ),
    "pre_encrypted_ota": (
        "#ifndef CONFIG_EXAMPLE_SKIP_VERSION_CHECK\n"
        "memcmp(new_app_info->version, running_app_info.version, sizeof(new_app_info->version));\n"
        "#endif\n"
        "esp_decrypt_handle_t decrypt_handle = esp_encrypted_img_decrypt_start(&cfg);\n"
        "esp_http_client_config_t config = { .cert_pem = server_cert_pem_start };\n"
        "#ifdef CONFIG_EXAMPLE_SKIP_COMMON_NAME_CHECK\n"
        "config.skip_cert_common_name_check = true;\n"
        "#endif\n"
        "esp_https_ota_config_t ota_config = { .http_config = &config,\n"
        "#ifdef CONFIG_EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD\n"
        "    .partial_http_download = true,\n"
        "#endif\n"
        "    .decrypt_cb = _decrypt_cb };\n"
        "esp_https_ota_begin(&ota_config, &https_ota_handle);\n"
    ),
}


def _ota_example(name: str, source: str) -> dict[str, str]:
    return {
        "CMakeLists.txt": _PROJECT.format(name=name),
        "main/CMakeLists.txt": (
            "idf_build_get_property(project_dir PROJECT_DIR)\n"
            f'idf_component_register(SRCS "{source}" INCLUDE_DIRS "."\n'
            "                       EMBED_TXTFILES ${project_dir}/server_certs/ca_cert.pem)\n"
        ),
        f"main/{source}": "/* synthetic: the stand-in builds no code */\n"
        f"void app_main(void)\n{{\n{_CODE[name]}}}\n",
        "main/Kconfig.projbuild": _OTA_KCONFIG,
        "main/idf_component.yml": (
            "dependencies:\n  protocol_examples_common:\n"
            "    path: ${IDF_PATH}/examples/common_components/protocol_examples_common\n"
        ),
        "server_certs/ca_cert.pem": _EXAMPLE_CA,
        "sdkconfig.defaults": _OTA_DEFAULTS,
    }


def _pre_encrypted_example() -> dict[str, str]:
    """pre_encrypted_ota: an OTA client that decrypts (esp_encrypted_img) with the private key
    it embeds from rsa_key/private.pem."""
    files = _ota_example("pre_encrypted_ota", "pre_encrypted_ota.c")
    files["main/CMakeLists.txt"] = (
        "idf_build_get_property(project_dir PROJECT_DIR)\n"
        'idf_component_register(SRCS "pre_encrypted_ota.c" INCLUDE_DIRS "."\n'
        "                       EMBED_TXTFILES ${project_dir}/server_certs/ca_cert.pem\n"
        "                                      ${project_dir}/rsa_key/private.pem)\n"
    )
    files["main/idf_component.yml"] = (
        'dependencies:\n  espressif/esp_encrypted_img: "^2.0.1"\n  protocol_examples_common:\n'
        "    path: ${IDF_PATH}/examples/common_components/protocol_examples_common\n"
    )
    files["rsa_key/private.pem"] = "(the example's own test key; replaced at build time)\n"
    return files


EXAMPLES: dict[str, dict[str, str]] = {
    "examples/system/ota/pre_encrypted_ota": _pre_encrypted_example(),
    "examples/system/ota/simple_ota_example": _ota_example("simple_ota", "simple_ota_example.c"),
    "examples/system/ota/advanced_https_ota": _ota_example(
        "advanced_https_ota", "advanced_https_ota_example.c"
    ),
    "examples/get-started/hello_world": {
        "CMakeLists.txt": _PROJECT.format(name="hello_world"),
        "main/CMakeLists.txt": _HELLO_COMPONENT,
        "main/hello_world_main.c": "/* synthetic: the stand-in builds no code */\n"
        "void app_main(void) {}\n",
    },
}


def write(root: Path) -> None:
    """Write the skeletons and the Kconfig set under `root` (an IDF_PATH); unchanged files keep
    their mtime."""
    for name, text in idf_kconfig.files().items():
        write_if_changed(root / name, text)
    for folder, files in EXAMPLES.items():
        for name, text in files.items():
            write_if_changed(root / folder / name, text)
