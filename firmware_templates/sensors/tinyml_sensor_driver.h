/* What one sensor driver (firmware_templates/sensors/<driver>.c) provides to the sampler
 * (tinyml_sensor.c). A driver speaks to its chip through tinyml_bus.h only; its constants
 * (address, register codes for the chosen rate and range, scale) come from
 * tinyml_sensor_config.h, which tinyml writes from the sensor's data file and the model. */
#ifndef TINYML_SENSOR_DRIVER_H
#define TINYML_SENSOR_DRIVER_H

#include <stdint.h>

/* Sensor status: 0 fine, else why not (HEARTBEAT's sensor_status, docs/protocol.md). */
enum tinyml_sensor_status {
    TINYML_SENSOR_OK = 0,
    TINYML_SENSOR_NO_ANSWER = 1, /* NACK: nothing at the address */
    TINYML_SENSOR_WRONG_ID = 2,  /* a device answered, its identity register does not match */
    TINYML_SENSOR_BAD_RATE = 3,  /* the chip refused the configured rate or range */
    TINYML_SENSOR_OVERRUN = 4,   /* the FIFO overflowed: samples were lost, the window restarts */
    TINYML_SENSOR_BUS_ERROR = 5, /* bus fault during a transfer */
    TINYML_SENSOR_NOT_READY = 6  /* no data yet (replay: the host has not sent the window) */
};

/* Probe the identity and configure rate, range and FIFO; returns enum tinyml_sensor_status. */
int sensor_driver_init(void);

/* Read up to `max_frames` frames that are ready (each TINYML_SENSOR_NATIVE_CHANNELS values in
 * the sensor's native channel order and unit, see its data file). Returns the number of frames
 * read (0: none ready yet) or minus an enum tinyml_sensor_status. Polled sensors
 * (TINYML_SENSOR_POLLED) are called once per sample period with max_frames 1. */
int sensor_driver_read(float *frames, unsigned max_frames);

/* A human-readable reason for the last failure, for the ERROR frame. */
const char *sensor_driver_error(void);

/* Write head, `value` as 0x and `digits` hex digits (none for 0), then tail into buf (no printf):
 * for identity mismatches in sensor_driver_error(). */
void tinyml_sensor_describe(char *buf, unsigned cap, const char *head, uint32_t value, unsigned digits,
                            const char *tail);

#endif
