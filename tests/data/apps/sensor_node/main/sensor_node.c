#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

void sensor_ota_start(void);

void app_main(void)
{
    sensor_ota_start();
    for (;;) {
        ESP_LOGI("sensor", "sample");
        vTaskDelay(pdMS_TO_TICKS(CONFIG_SENSOR_SAMPLE_PERIOD_MS));
    }
}
