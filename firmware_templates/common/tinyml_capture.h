/* Capture in run mode (docs/protocol.md, SAMPLES and CAPTURE): a ring of the last raw sensor
 * windows, and streaming them to the host as SAMPLES frames, for `tinyml capture` and the
 * gateway's evidence windows. */
#ifndef TINYML_CAPTURE_H
#define TINYML_CAPTURE_H

#include <stdint.h>

#include "tinyml_config.h"

/* Windows kept for CAPTURE mode 2 (each TINYML_WINDOW_VALUES floats of RAM); 0 turns capture off. */
#ifndef TINYML_CAPTURE_WINDOWS
#define TINYML_CAPTURE_WINDOWS 4u
#endif
#ifndef TINYML_SENSOR_NAME
#define TINYML_SENSOR_NAME "hook" /* the sensor hook in tinyml_sensor.c */
#endif

/* A window was read (window x channels values, channel-interleaved): keep it in the ring, and
 * send it when a stream is on. `window` is the seq of the RESULT computed from it. */
void tinyml_capture_window(const float *samples, uint32_t boot_id, uint32_t window, uint32_t timestamp_ms);

/* Serve a CAPTURE request: ACK, then SAMPLES of the kept windows for mode 2; ERROR 3 for an
 * unknown mode, ERROR 4 when capture is compiled out. */
void tinyml_capture_request(uint8_t mode, uint16_t count);

#endif
