/* The nRF52 die temperature sensor (nRF52840 product specification v1.7, "TEMP"): START a
 * measurement, wait for EVENTS_DATARDY (about 36 us), read TEMP (signed, 0.25 degC steps).
 * No identity to check: the peripheral is part of every nRF52. Units: degC. */
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

#ifndef TINYML_MMIO /* host tests route the registers to a model of the peripheral */
#define TINYML_MMIO(addr) (*(volatile uint32_t *)(addr))
#endif
#define TEMP(off) TINYML_MMIO(TINYML_SENSOR_BASE + (off))
enum { TASKS_START = 0x000, TASKS_STOP = 0x004, EVENTS_DATARDY = 0x100, TEMP_VALUE = 0x508 };
#define LIMIT 100000u

int sensor_driver_init(void)
{
    TEMP(TASKS_STOP) = 1u;
    TEMP(EVENTS_DATARDY) = 0u;
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    if (max_frames == 0)
        return 0;
    TEMP(TASKS_START) = 1u;
    for (uint32_t i = 0; !TEMP(EVENTS_DATARDY); i++)
        if (i > LIMIT)
            return -TINYML_SENSOR_BUS_ERROR;
    TEMP(EVENTS_DATARDY) = 0u;
    frames[0] = (float)(int32_t)TEMP(TEMP_VALUE) * 0.25f;
    TEMP(TASKS_STOP) = 1u;
    return 1;
}

const char *sensor_driver_error(void)
{
    return TINYML_SENSOR_NAME ": the TEMP peripheral did not finish a measurement";
}
