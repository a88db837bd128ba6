#include "esp_crt_bundle.h"
#include "esp_https_ota.h"
#include "sdkconfig.h"

extern const char ota_ca_pem_start[] asm("_binary_ota_ca_pem_start");

void sensor_ota_start(void)
{
    esp_http_client_config_t http = {
        .url = CONFIG_SENSOR_OTA_URL,
        .cert_pem = ota_ca_pem_start,
    };
    esp_https_ota_config_t ota = {.http_config = &http};
    if (esp_https_ota(&ota) == ESP_OK) {
        esp_restart();
    }
}
