/* The RP2040's on-chip temperature sensor on ADC input 4 (RP2040 datasheet, "Temperature
 * sensor"), through the Pico SDK: T = 27 - (V - 0.706) / 0.001721 with V = raw * 3.3 / 4096
 * (the datasheet's typical slope and offset; calibrate per board for accuracy). Units: degC. */
#include "hardware/adc.h"
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

int sensor_driver_init(void)
{
    adc_init();
    adc_set_temp_sensor_enabled(true);
    adc_select_input(4);
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    if (max_frames == 0)
        return 0;
    float volts = (float)adc_read() * (3.3f / 4096.0f);
    frames[0] = 27.0f - (volts - 0.706f) / 0.001721f;
    return 1;
}

const char *sensor_driver_error(void)
{
    return TINYML_SENSOR_NAME ": ADC read failed";
}
