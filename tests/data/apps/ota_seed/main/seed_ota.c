#include "esp_https_ota.h"
#include "esp_system.h"
#include "protocol_examples_common.h"

extern const char server_cert_pem_start[] asm("_binary_ca_cert_pem_start");

void app_main(void)
{
    ESP_ERROR_CHECK(example_connect());
    esp_http_client_config_t http = {
        .url = CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL,
        .cert_pem = server_cert_pem_start,
    };
    esp_https_ota_config_t ota = {.http_config = &http};
    if (esp_https_ota(&ota) == ESP_OK) {
        esp_restart();
    }
}
