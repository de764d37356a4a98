#ifndef DRIVER_TEMPERATURE_SENSOR_H
#define DRIVER_TEMPERATURE_SENSOR_H
#include "esp_err.h"
typedef struct temperature_sensor_obj_t *temperature_sensor_handle_t;
typedef struct {
    int range_min;
    int range_max;
    int clk_src;
} temperature_sensor_config_t;
#define TEMPERATURE_SENSOR_CONFIG_DEFAULT(min, max) { .range_min = (min), .range_max = (max), .clk_src = 0 }
esp_err_t temperature_sensor_install(const temperature_sensor_config_t *tsens_config,
                                     temperature_sensor_handle_t *ret_tsens);
esp_err_t temperature_sensor_enable(temperature_sensor_handle_t tsens);
esp_err_t temperature_sensor_get_celsius(temperature_sensor_handle_t tsens, float *out_celsius);
#endif
