/* Run mode: sensor window -> model input, with the preprocessing the model was trained with. */
#ifndef TINYML_RUN_H
#define TINYML_RUN_H

#include <stdint.h>

/* Fill `samples` (window x channels, channel-interleaved) with the next `window` frames of raw sensor
 * readings; return 0 when they are all there, 1 when not yet, and -1 when frames were lost (a sensor
 * failure or FIFO overrun: the ones read so far are dropped). `window` is the model's window, the hop
 * for a run that slides its window, or at most a window of samples to discard for a run whose hop is
 * longer (tinyml_run_read_window). Implemented in tinyml_sensor.c. */
int tinyml_sensor_read(float *samples, unsigned window, unsigned channels);

/* Sensor health, for HEARTBEAT (docs/protocol.md): frames read, failures, current status. */
typedef struct {
    uint32_t reads, errors;
    uint8_t status; /* enum tinyml_sensor_status in tinyml_sensor_driver.h; 0 fine */
} tinyml_sensor_stats_t;

/* Only in projects rendered with a sensor (TINYML_SENSOR in tinyml_config.h), by the sampler
 * (firmware_templates/sensors/tinyml_sensor.c): fill `stats`, and return a message when the
 * sensor entered a new failing status since the last call (sent as ERROR 7), else NULL. */
const char *tinyml_sensor_poll_error(tinyml_sensor_stats_t *stats);

/* Only with the replay sensor: values streamed by the host (REPLAY, docs/protocol.md) at
 * `offset` in the current window (n little-endian float32s); returns offset + n, or -1 when the
 * chunk does not continue the window (an out-of-order chunk or a window overrun). */
long tinyml_replay_push(uint32_t offset, const uint8_t *values, unsigned n);

/* Standardise (computing the features first for feature models) and quantize one window of
 * raw samples into the model input. */
void tinyml_preprocess(const float *samples, int8_t *input);

/* For a preprocessing with state across windows (the daily_cycle feature): the next window starts a
 * new stream (reset 1) or continues after a gap (reset 0), in slot `slot` of the day. Returns 0, -1
 * when the preprocessing keeps no state, -2 when `slot` is not inside the day. */
int tinyml_preprocess_place(int reset, uint32_t slot);

/* The slot of the day of a window whose last sample was read `end_ms` ms into the day, for a
 * preprocessing with state across windows (run mode places each window with it once the host sent
 * TIME); -1 when the preprocessing keeps no state. */
long tinyml_preprocess_slot_ending(uint32_t end_ms);

/* Read the sensor; 0 when a window is complete (tinyml_run_window() holds it until the next call).
 * A run whose preprocessing keeps state across windows reads a window every training hop, so the state
 * steps at training's cadence: a hop shorter than the window slides it (after the first window each
 * reads only the hop's new samples), a longer one reads and discards the hop - window samples after
 * each window; after a sensor failure (tinyml_sensor_read -1) or tinyml_run_restart() the next window
 * is read whole at once. Other runs read windows back to back. */
int tinyml_run_read_window(void);

/* The next window is read whole (SERIES in run mode: the host starts a stream or places one after a gap). */
void tinyml_run_restart(void);

/* Frames the sensor delivers until the next window is complete: the window after a restart, else the
 * hop (the replay sensor sizes the host's next transfer with it; at most TINYML_DUE_VALUES / channels). */
unsigned tinyml_run_frames_due(void);

/* The raw window the last successful tinyml_run_read_window() read (preprocessing, capture). */
const float *tinyml_run_window(void);

#endif
