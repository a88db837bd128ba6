"""The virtual ESP-IDF tree's Kconfig for what ESP-IDF v5.3.2's OTA examples and their CI
variants switch on (see idf_kconfig): the security features (signed apps, flash encryption, the
insecure options), Bluetooth, PSRAM and the HTTPS server, in our own words, with ESP-IDF's names,
types, defaults, ranges and dependencies.
"""

from __future__ import annotations

__all__ = ["FEATURES", "SECURITY"]

# components/bootloader/Kconfig.projbuild's "Security features" menu.
SECURITY = """\
menu "Security features"
    config SECURE_BOOT_V1_SUPPORTED
        bool
        default y
        depends on SOC_SECURE_BOOT_V1

    config SECURE_BOOT_V2_RSA_SUPPORTED
        bool
        default y
        depends on SOC_SECURE_BOOT_V2_RSA && (!IDF_TARGET_ESP32 || ESP32_REV_MIN_FULL >= 300)

    config SECURE_BOOT_V2_ECC_SUPPORTED
        bool
        default y
        depends on SOC_SECURE_BOOT_V2_ECC

    config SECURE_SIGNED_APPS
        bool
        default y
        depends on SECURE_SIGNED_APPS_NO_SECURE_BOOT

    config SECURE_SIGNED_APPS_NO_SECURE_BOOT
        bool "Require signed app images"

    choice SECURE_SIGNED_APPS_SCHEME
        bool "App Signing Scheme"
        depends on SECURE_SIGNED_APPS_NO_SECURE_BOOT
        default SECURE_SIGNED_APPS_RSA_SCHEME if SECURE_BOOT_V2_RSA_SUPPORTED
        default SECURE_SIGNED_APPS_ECDSA_V2_SCHEME if SECURE_BOOT_V2_ECC_SUPPORTED
        config SECURE_SIGNED_APPS_ECDSA_SCHEME
            bool "ECDSA"
            depends on SECURE_BOOT_V1_SUPPORTED
        config SECURE_SIGNED_APPS_RSA_SCHEME
            bool "RSA"
            depends on SECURE_BOOT_V2_RSA_SUPPORTED
        config SECURE_SIGNED_APPS_ECDSA_V2_SCHEME
            bool "ECDSA (V2)"
            depends on SECURE_BOOT_V2_ECC_SUPPORTED
    endchoice

    choice SECURE_BOOT_ECDSA_KEY_LEN_SIZE
        bool "ECDSA key size"
        depends on SECURE_SIGNED_APPS_ECDSA_V2_SCHEME
        default SECURE_BOOT_ECDSA_KEY_LEN_256_BITS
        config SECURE_BOOT_ECDSA_KEY_LEN_192_BITS
            bool "Using ECC curve NISTP192"
        config SECURE_BOOT_ECDSA_KEY_LEN_256_BITS
            bool "Using ECC curve NISTP256 (Recommended)"
    endchoice

    config SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT
        bool "Verify app signature on update"
        default y
        depends on SECURE_SIGNED_APPS_NO_SECURE_BOOT

    config SECURE_BOOT_BUILD_SIGNED_BINARIES
        bool "Sign binaries during build"
        depends on SECURE_SIGNED_APPS
        default y

    config SECURE_BOOT_SIGNING_KEY
        string "Secure boot private signing key"
        depends on SECURE_BOOT_BUILD_SIGNED_BINARIES
        default "secure_boot_signing_key.pem"

    config SECURE_FLASH_ENC_ENABLED
        bool "Enable flash encryption on boot (READ DOCS FIRST)"
        default n

    choice SECURE_FLASH_ENCRYPTION_MODE
        bool "Enable usage mode"
        depends on SECURE_FLASH_ENC_ENABLED
        default SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT
        config SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT
            bool "Development (NOT SECURE)"
            select SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC
        config SECURE_FLASH_ENCRYPTION_MODE_RELEASE
            bool "Release"
    endchoice

    menu "Potentially insecure options"
        visible if SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT || \\
            SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT

        config SECURE_BOOT_ALLOW_ROM_BASIC
            bool "Leave ROM BASIC Interpreter available on reset"
            depends on SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT && IDF_TARGET_ESP32
            default n

        config SECURE_BOOT_ALLOW_JTAG
            bool "Allow JTAG Debugging"
            depends on SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT
            default n

        config SECURE_BOOT_ALLOW_SHORT_APP_PARTITION
            bool "Allow app partition length not 64KB aligned"
            depends on SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT

        config SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC
            bool "Leave UART bootloader encryption enabled"
            depends on SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT
            default n

        config SECURE_FLASH_UART_BOOTLOADER_ALLOW_DEC
            bool "Leave UART bootloader decryption enabled"
            depends on SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT && IDF_TARGET_ESP32
            default n

        config SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE
            bool "Leave UART bootloader flash cache enabled"
            depends on SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT && \\
                (IDF_TARGET_ESP32 || SOC_EFUSE_DIS_DOWNLOAD_ICACHE)
            default n

        config SECURE_FLASH_REQUIRE_ALREADY_ENABLED
            bool "Require flash encryption to be already enabled"
            depends on SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT
            default n
    endmenu
endmenu  # Security features
"""

FEATURES: dict[str, dict[str, str]] = {
    "esp_https_server": {
        "Kconfig": """\
menu "ESP HTTPS server"
    config ESP_HTTPS_SERVER_ENABLE
        bool "Enable ESP_HTTPS_SERVER component"
        depends on MBEDTLS_TLS_SERVER
endmenu
"""
    },
    "esp_psram": {
        "Kconfig": """\
menu "ESP PSRAM"
    config SPIRAM
        bool "Support for external, SPI-connected RAM"
        depends on SOC_SPIRAM_SUPPORTED
        default n

    config SPIRAM_ALLOW_BSS_SEG_EXTERNAL_MEMORY
        bool "Allow .bss segment placed in external memory"
        default n
        depends on SPIRAM
endmenu
"""
    },
    "bt": {
        "Kconfig": """\
menu "Bluetooth"
    config BT_ENABLED
        bool "Bluetooth"
        depends on SOC_BT_SUPPORTED

    choice BT_HOST
        prompt "Host"
        depends on BT_ENABLED
        default BT_BLUEDROID_ENABLED
        config BT_BLUEDROID_ENABLED
            bool "Bluedroid - Dual-mode"
        config BT_NIMBLE_ENABLED
            bool "NimBLE - BLE only"
        config BT_CONTROLLER_ONLY
            bool "Disabled"
    endchoice

    choice BTDM_CTRL_MODE
        prompt "Bluetooth controller mode (BR/EDR/BLE/DUALMODE)"
        depends on BT_ENABLED && IDF_TARGET_ESP32
        config BTDM_CTRL_MODE_BLE_ONLY
            bool "BLE Only"
        config BTDM_CTRL_MODE_BR_EDR_ONLY
            bool "BR/EDR Only"
        config BTDM_CTRL_MODE_BTDM
            bool "Bluetooth Dual Mode"
    endchoice

    config BT_BTU_TASK_STACK_SIZE
        int "Bluetooth Bluedroid Host Stack task stack size"
        depends on BT_BLUEDROID_ENABLED
        default 4352

    choice BT_GATTS_SEND_SERVICE_CHANGE_MODE
        prompt "GATTS Service Change Mode"
        default BT_GATTS_SEND_SERVICE_CHANGE_AUTO
        depends on BT_BLUEDROID_ENABLED
        config BT_GATTS_SEND_SERVICE_CHANGE_MANUAL
            bool "GATTS manually send service change indication"
        config BT_GATTS_SEND_SERVICE_CHANGE_AUTO
            bool "GATTS automatically send service change indication"
    endchoice

    config BT_STACK_NO_LOG
        bool "Disable BT debug logs (minimize bin size)"
        depends on BT_BLUEDROID_ENABLED
        default n

    config BT_BLE_42_FEATURES_SUPPORTED
        bool "Enable BLE 4.2 features"
        depends on BT_BLUEDROID_ENABLED
        default n
endmenu
"""
    },
}
