/* Run mode: sensor window -> model input, with the preprocessing the model was trained with. */
#ifndef TINYML_RUN_H
#define TINYML_RUN_H

#include <stdint.h>

/* Fill `samples` (window x channels, channel-interleaved) with the next window of raw sensor
 * readings; return 0 when a window is ready, non-zero when not yet. Implemented in tinyml_sensor.c. */
int tinyml_sensor_read(float *samples, unsigned window, unsigned channels);

/* Standardise (computing the features first for feature models) and quantize one window of
 * raw samples into the model input. */
void tinyml_preprocess(const float *samples, int8_t *input);

/* Read a window from the sensor and preprocess it into `input`; 0 when an input is ready. */
int tinyml_run_prepare_input(int8_t *input);

/* The raw window the last successful tinyml_run_prepare_input() read (for capture). */
const float *tinyml_run_window(void);

#endif
