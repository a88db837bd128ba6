"""The virtual ESP-IDF tree's example components (see idf_kconfig): ESP-IDF v5.3.2's
protocol_examples_common menu (Wi-Fi and Ethernet) and env_caps (each target's usable GPIO
range, which the examples' pin options take as their range), in our own words, with ESP-IDF's
names, types, defaults, ranges and dependencies.
"""

from __future__ import annotations

__all__ = ["EXAMPLES_COMMON", "env_caps"]

# examples/common_components/env_caps/<target>: (highest GPIO, highest output GPIO); the pins the
# examples' console UART holds are left out, as ESP-IDF does.
_GPIO_MAX = {
    "esp32": (39, 33),
    "esp32s2": (46, 45),
    "esp32s3": (48, 48),
    "esp32c2": (18, 18),
    "esp32c3": (19, 19),
    "esp32c6": (30, 30),
    "esp32h2": (27, 27),
    "esp32p4": (56, 56),
    "esp32c5": (30, 30),
    "esp32c61": (21, 21),
}


def env_caps(target: str) -> str:
    """Kconfig.env_caps of one target."""
    highest, output = _GPIO_MAX.get(target, (0, 0))
    out_default = output if output != highest else "ENV_GPIO_RANGE_MAX"
    return (
        "config ENV_GPIO_RANGE_MIN\n    int\n    default 0\n\n"
        f"config ENV_GPIO_RANGE_MAX\n    int\n    default {highest}\n\n"
        "config ENV_GPIO_IN_RANGE_MAX\n    int\n    default ENV_GPIO_RANGE_MAX\n\n"
        f"config ENV_GPIO_OUT_RANGE_MAX\n    int\n    default {out_default}\n"
    )


_ETHERNET = """\
    config EXAMPLE_CONNECT_ETHERNET
        bool "connect using Ethernet interface"
        default y if !EXAMPLE_CONNECT_WIFI

    if EXAMPLE_CONNECT_ETHERNET
        config EXAMPLE_ETHERNET_EMAC_TASK_STACK_SIZE
            int "emac_rx task stack size"
            default 2048

        config EXAMPLE_USE_SPI_ETHERNET
            bool

        choice EXAMPLE_ETHERNET_TYPE
            prompt "Ethernet Type"
            default EXAMPLE_USE_INTERNAL_ETHERNET if SOC_EMAC_SUPPORTED
            default EXAMPLE_USE_W5500
            config EXAMPLE_USE_INTERNAL_ETHERNET
                depends on SOC_EMAC_SUPPORTED
                bool "Internal EMAC"
            config EXAMPLE_USE_DM9051
                bool "DM9051 Module"
                select EXAMPLE_USE_SPI_ETHERNET
            config EXAMPLE_USE_W5500
                bool "W5500 Module"
                select EXAMPLE_USE_SPI_ETHERNET
            config EXAMPLE_USE_OPENETH
                bool "OpenCores Ethernet MAC (EXPERIMENTAL)"
        endchoice

        if EXAMPLE_USE_INTERNAL_ETHERNET
            choice EXAMPLE_ETH_PHY_MODEL
                prompt "Ethernet PHY Device"
                default EXAMPLE_ETH_PHY_IP101
                config EXAMPLE_ETH_PHY_IP101
                    bool "IP101"
                config EXAMPLE_ETH_PHY_RTL8201
                    bool "RTL8201/SR8201"
                config EXAMPLE_ETH_PHY_LAN87XX
                    bool "LAN87xx"
                config EXAMPLE_ETH_PHY_DP83848
                    bool "DP83848"
                config EXAMPLE_ETH_PHY_KSZ80XX
                    bool "KSZ80xx"
            endchoice

            config EXAMPLE_ETH_MDC_GPIO
                int "SMI MDC GPIO number"
                range ENV_GPIO_RANGE_MIN ENV_GPIO_OUT_RANGE_MAX
                default 23 if IDF_TARGET_ESP32
                default 31 if IDF_TARGET_ESP32P4

            config EXAMPLE_ETH_MDIO_GPIO
                int "SMI MDIO GPIO number"
                range ENV_GPIO_RANGE_MIN ENV_GPIO_OUT_RANGE_MAX
                default 18 if IDF_TARGET_ESP32
                default 52 if IDF_TARGET_ESP32P4
        endif

        if EXAMPLE_USE_SPI_ETHERNET
            config EXAMPLE_ETH_SPI_HOST
                int "SPI Host Number"
                range 0 2
                default 1

            config EXAMPLE_ETH_SPI_SCLK_GPIO
                int "SPI SCLK GPIO number"
                range ENV_GPIO_RANGE_MIN ENV_GPIO_OUT_RANGE_MAX
                default 14

            config EXAMPLE_ETH_SPI_MOSI_GPIO
                int "SPI MOSI GPIO number"
                range ENV_GPIO_RANGE_MIN ENV_GPIO_OUT_RANGE_MAX
                default 13

            config EXAMPLE_ETH_SPI_MISO_GPIO
                int "SPI MISO GPIO number"
                range ENV_GPIO_RANGE_MIN ENV_GPIO_IN_RANGE_MAX
                default 12

            config EXAMPLE_ETH_SPI_CS_GPIO
                int "SPI CS GPIO number"
                range ENV_GPIO_RANGE_MIN ENV_GPIO_OUT_RANGE_MAX
                default 15

            config EXAMPLE_ETH_SPI_CLOCK_MHZ
                int "SPI clock speed (MHz)"
                range 5 80
                default 36

            config EXAMPLE_ETH_SPI_INT_GPIO
                int "Interrupt GPIO number"
                range ENV_GPIO_RANGE_MIN ENV_GPIO_IN_RANGE_MAX
                default 4
        endif

        config EXAMPLE_ETH_PHY_RST_GPIO
            int "PHY Reset GPIO number"
            range -1 ENV_GPIO_OUT_RANGE_MAX
            default 51 if IDF_TARGET_ESP32P4
            default 5

        config EXAMPLE_ETH_PHY_ADDR
            int "PHY Address"
            range 0 31 if EXAMPLE_USE_INTERNAL_ETHERNET
            default 1
    endif
"""

EXAMPLES_COMMON = (
    """\
menu "Example Connection Configuration"

    orsource "$IDF_PATH/examples/common_components/env_caps/$IDF_TARGET/Kconfig.env_caps"

    config EXAMPLE_CONNECT_WIFI
        bool "connect using WiFi interface"
        depends on SOC_WIFI_SUPPORTED
        default y if SOC_WIFI_SUPPORTED

    if EXAMPLE_CONNECT_WIFI
        config EXAMPLE_WIFI_SSID_PWD_FROM_STDIN
            bool "Get ssid and password from stdin"
            default n

        config EXAMPLE_WIFI_SSID
            depends on !EXAMPLE_WIFI_SSID_PWD_FROM_STDIN
            string "WiFi SSID"
            default "myssid"

        config EXAMPLE_WIFI_PASSWORD
            depends on !EXAMPLE_WIFI_SSID_PWD_FROM_STDIN
            string "WiFi Password"
            default "mypassword"

        config EXAMPLE_WIFI_CONN_MAX_RETRY
            int "Maximum retry"
            default 6
    endif

"""
    + _ETHERNET
    + """
    config EXAMPLE_CONNECT_IPV4
        bool
        depends on LWIP_IPV4
        default y

    config EXAMPLE_CONNECT_IPV6
        depends on EXAMPLE_CONNECT_WIFI || EXAMPLE_CONNECT_ETHERNET
        bool "Obtain IPv6 address"
        default y
        select LWIP_IPV6
endmenu
"""
)
