/* The on-chip temperature sensor of the ESP32-S2/S3/C3 and later, through ESP-IDF's
 * temperature_sensor driver (ESP-IDF 5.0+), installed for -10..80 degC. Units: degC. */
#include "driver/temperature_sensor.h"
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

static temperature_sensor_handle_t sensor;
static const char *message = TINYML_SENSOR_NAME ": no error";

int sensor_driver_init(void)
{
    if (sensor)
        return TINYML_SENSOR_OK;
    temperature_sensor_config_t config = TEMPERATURE_SENSOR_CONFIG_DEFAULT(-10, 80);
    if (temperature_sensor_install(&config, &sensor) != ESP_OK || temperature_sensor_enable(sensor) != ESP_OK) {
        message = TINYML_SENSOR_NAME ": temperature_sensor_install or enable failed";
        sensor = 0;
        return TINYML_SENSOR_BUS_ERROR;
    }
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    if (max_frames == 0)
        return 0;
    if (temperature_sensor_get_celsius(sensor, &frames[0]) != ESP_OK) {
        message = TINYML_SENSOR_NAME ": temperature_sensor_get_celsius failed";
        return -TINYML_SENSOR_BUS_ERROR;
    }
    return 1;
}

const char *sensor_driver_error(void)
{
    return message;
}
