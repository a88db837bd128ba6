"""Component Kconfig files of the virtual ESP-IDF tree (see idf_kconfig): ESP-IDF v5.3.2's menus
for the options this project, its security features, the examples and the sample apps set, in
our own words, with ESP-IDF's names, types, defaults, ranges and dependencies.
"""

from __future__ import annotations

__all__ = ["APP_FORMAT", "COMPONENTS"]

APP_FORMAT = """\
menu "Application manager"
    config APP_COMPILE_TIME_DATE
        bool "Use time/date stamp for app"
        default y
        depends on !APP_REPRODUCIBLE_BUILD

    config APP_EXCLUDE_PROJECT_VER_VAR
        bool "Exclude PROJECT_VER from firmware image"
        default n

    config APP_EXCLUDE_PROJECT_NAME_VAR
        bool "Exclude PROJECT_NAME from firmware image"
        default n

    config APP_PROJECT_VER_FROM_CONFIG
        bool "Get the project version from Kconfig"
        default n

    config APP_PROJECT_VER
        string "Project version"
        default "1"
        depends on APP_PROJECT_VER_FROM_CONFIG

    config APP_RETRIEVE_LEN_ELF_SHA
        int "The length of APP ELF SHA is stored in RAM(chars)"
        default 9
        range 8 64
endmenu # "Application manager"
"""

COMPONENTS: dict[str, dict[str, str]] = {
    "esp_system": {
        "Kconfig": """\
menu "ESP System Settings"
    config ESP_MAIN_TASK_STACK_SIZE
        int "Main task stack size"
        default 3584

    config ESP_CONSOLE_UART_BAUDRATE
        int "UART console baud rate"
        range 1200 4000000
        default 115200
endmenu # ESP System Settings
"""
    },
    "log": {
        "Kconfig": """\
menu "Log output"
    choice LOG_DEFAULT_LEVEL
        bool "Default log verbosity"
        default LOG_DEFAULT_LEVEL_INFO
        config LOG_DEFAULT_LEVEL_NONE
            bool "No output"
        config LOG_DEFAULT_LEVEL_ERROR
            bool "Error"
        config LOG_DEFAULT_LEVEL_WARN
            bool "Warning"
        config LOG_DEFAULT_LEVEL_INFO
            bool "Info"
        config LOG_DEFAULT_LEVEL_DEBUG
            bool "Debug"
        config LOG_DEFAULT_LEVEL_VERBOSE
            bool "Verbose"
    endchoice

    config LOG_DEFAULT_LEVEL
        int
        default 0 if LOG_DEFAULT_LEVEL_NONE
        default 1 if LOG_DEFAULT_LEVEL_ERROR
        default 2 if LOG_DEFAULT_LEVEL_WARN
        default 3 if LOG_DEFAULT_LEVEL_INFO
        default 4 if LOG_DEFAULT_LEVEL_DEBUG
        default 5 if LOG_DEFAULT_LEVEL_VERBOSE

    config LOG_COLORS
        bool "Use ANSI terminal colors in log output"
        default y
endmenu
"""
    },
    "freertos": {
        "Kconfig": """\
menu "FreeRTOS"
    config FREERTOS_UNICORE
        bool "Run FreeRTOS only on first core"
        default "y" if IDF_TARGET_ESP32S2 || IDF_TARGET_ESP32C3 || IDF_TARGET_ESP32C2
        default "y" if IDF_TARGET_ESP32C6 || IDF_TARGET_ESP32H2 || IDF_TARGET_ESP32C61
        default "n"

    config FREERTOS_HZ
        int "configTICK_RATE_HZ"
        range 1 1000
        default 100
endmenu
"""
    },
    "lwip": {
        "Kconfig": """\
menu "LWIP"
    config LWIP_LOCAL_HOSTNAME
        string "Local netif hostname"
        default 'espressif'

    config LWIP_IPV4
        bool "Enable IPv4"
        default y

    config LWIP_IPV6
        bool "Enable IPv6"
        default y

    config LWIP_CHECK_THREAD_SAFETY
        bool "Checks that lwip API runs in expected context"
        default n
endmenu
"""
    },
    "mbedtls": {
        "Kconfig": """\
menu "mbedTLS"
    config MBEDTLS_CERTIFICATE_BUNDLE
        bool "Enable trusted root certificate bundle"
        default y

    choice MBEDTLS_DEFAULT_CERTIFICATE_BUNDLE
        bool "Default certificate bundle options"
        depends on MBEDTLS_CERTIFICATE_BUNDLE
        default MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_FULL
        config MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_FULL
            bool "Use the full default certificate bundle"
        config MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_CMN
            bool "Use only the most common certificates from the default bundles"
        config MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_NONE
            bool "Do not use the default certificate bundle"
    endchoice

    config MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE
        bool "Add custom certificates to the default bundle"
        depends on MBEDTLS_CERTIFICATE_BUNDLE
        default n

    config MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE_PATH
        string "Custom certificate bundle path"
        depends on MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE

    config MBEDTLS_CERTIFICATE_BUNDLE_MAX_CERTS
        int "Maximum no of certificates allowed in certificate bundle"
        default 200
        depends on MBEDTLS_CERTIFICATE_BUNDLE

    config MBEDTLS_ASYMMETRIC_CONTENT_LEN
        bool "Asymmetric in/out fragment length"
        default y

    config MBEDTLS_SSL_IN_CONTENT_LEN
        int "TLS maximum incoming fragment length"
        default 16384
        range 512 16384
        depends on MBEDTLS_ASYMMETRIC_CONTENT_LEN

    config MBEDTLS_SSL_OUT_CONTENT_LEN
        int "TLS maximum outgoing fragment length"
        default 4096
        range 512 16384
        depends on MBEDTLS_ASYMMETRIC_CONTENT_LEN

    config MBEDTLS_SSL_MAX_CONTENT_LEN
        int "TLS maximum message content length"
        default 16384
        range 512 16384
        depends on !MBEDTLS_ASYMMETRIC_CONTENT_LEN

    choice MBEDTLS_TLS_MODE
        bool "TLS Protocol Role"
        default MBEDTLS_TLS_SERVER_AND_CLIENT
        config MBEDTLS_TLS_SERVER_AND_CLIENT
            bool "Server & Client"
            select MBEDTLS_TLS_SERVER
            select MBEDTLS_TLS_CLIENT
        config MBEDTLS_TLS_SERVER_ONLY
            bool "Server"
            select MBEDTLS_TLS_SERVER
        config MBEDTLS_TLS_CLIENT_ONLY
            bool "Client"
            select MBEDTLS_TLS_CLIENT
        config MBEDTLS_TLS_DISABLED
            bool "None"
    endchoice

    config MBEDTLS_TLS_SERVER
        bool
        select MBEDTLS_TLS_ENABLED
    config MBEDTLS_TLS_CLIENT
        bool
        select MBEDTLS_TLS_ENABLED
    config MBEDTLS_TLS_ENABLED
        bool

    config MBEDTLS_SSL_PROTO_TLS1_2
        bool "Support TLS 1.2 protocol"
        default y

    config MBEDTLS_SSL_PROTO_TLS1_3
        bool "Support TLS 1.3 protocol"
        default n
endmenu  # mbedTLS
"""
    },
    "esp-tls": {
        "Kconfig": """\
menu "ESP-TLS"
    config ESP_TLS_INSECURE
        bool "Allow potentially insecure options"

    config ESP_TLS_SKIP_SERVER_CERT_VERIFY
        bool "Skip server certificate verification by default (WARNING: ONLY FOR TESTING)"
        depends on ESP_TLS_INSECURE
endmenu
"""
    },
    "esp_http_client": {
        "Kconfig": """\
menu "ESP HTTP client"
    config ESP_HTTP_CLIENT_ENABLE_HTTPS
        bool "Enable https"
        default y

    config ESP_HTTP_CLIENT_ENABLE_BASIC_AUTH
        bool "Enable HTTP Basic Authentication"
        default n
endmenu
"""
    },
    "esp_https_ota": {
        "Kconfig": """\
menu "ESP HTTPS OTA"
    config ESP_HTTPS_OTA_DECRYPT_CB
        bool "Provide decryption callback"
        default n

    config ESP_HTTPS_OTA_ALLOW_HTTP
        bool "Allow HTTP for OTA (WARNING: ONLY FOR TESTING PURPOSE, READ HELP)"
        default n
endmenu
""",
        "sdkconfig.rename": "CONFIG_OTA_ALLOW_HTTP        CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP\n",
    },
    "esp_wifi": {
        "Kconfig": """\
menu "Wi-Fi"
    visible if SOC_WIFI_SUPPORTED

    config ESP_WIFI_AMPDU_RX_ENABLED
        bool "WiFi AMPDU RX"
        depends on SOC_WIFI_SUPPORTED
        default y

    config ESP_WIFI_RX_BA_WIN
        int "WiFi AMPDU RX BA window size"
        depends on ESP_WIFI_AMPDU_RX_ENABLED
        range 2 32
        default 6
endmenu # Wi-Fi
""",
        "sdkconfig.rename": (
            "CONFIG_ESP32_WIFI_AMPDU_RX_ENABLED      CONFIG_ESP_WIFI_AMPDU_RX_ENABLED\n"
            "CONFIG_ESP32_WIFI_RX_BA_WIN             CONFIG_ESP_WIFI_RX_BA_WIN\n"
        ),
    },
    "espcoredump": {
        "Kconfig": """\
menu "Core dump"
    choice ESP_COREDUMP_TO_FLASH_OR_UART
        prompt "Data destination"
        default ESP_COREDUMP_ENABLE_TO_NONE
        config ESP_COREDUMP_ENABLE_TO_FLASH
            bool "Flash"
        config ESP_COREDUMP_ENABLE_TO_UART
            bool "UART"
        config ESP_COREDUMP_ENABLE_TO_NONE
            bool "None"
    endchoice
endmenu
"""
    },
    "esp_hw_support": {
        "Kconfig": """\
menu "Hardware Settings"
    orsource "./port/$IDF_TARGET/Kconfig.hw_support"
endmenu
""",
        "port/esp32/Kconfig.hw_support": """\
choice ESP32_REV_MIN
    prompt "Minimum Supported ESP32 Revision"
    default ESP32_REV_MIN_0
    config ESP32_REV_MIN_0
        bool "Rev v0.0 (ECO0)"
    config ESP32_REV_MIN_1
        bool "Rev v1.0 (ECO1)"
    config ESP32_REV_MIN_1_1
        bool "Rev v1.1 (ECO1.1)"
    config ESP32_REV_MIN_2
        bool "Rev v2.0 (ECO2)"
    config ESP32_REV_MIN_3
        bool "Rev v3.0 (ECO3)"
    config ESP32_REV_MIN_3_1
        bool "Rev v3.1 (ECO4)"
endchoice

config ESP32_REV_MIN
    int
    default 0 if ESP32_REV_MIN_0
    default 1 if ESP32_REV_MIN_1 || ESP32_REV_MIN_1_1
    default 2 if ESP32_REV_MIN_2
    default 3 if ESP32_REV_MIN_3 || ESP32_REV_MIN_3_1

config ESP32_REV_MIN_FULL
    int
    default 0 if ESP32_REV_MIN_0
    default 100 if ESP32_REV_MIN_1
    default 101 if ESP32_REV_MIN_1_1
    default 200 if ESP32_REV_MIN_2
    default 300 if ESP32_REV_MIN_3
    default 301 if ESP32_REV_MIN_3_1
""",
    },
}
