/* The replay sensor: windows of samples streamed by the host in REPLAY frames instead of read
 * from a chip. The host sends window x channels float32 values (training order and unit) in
 * chunks at increasing offsets; once the window is complete, the sampler takes its frames and
 * the model runs. A resent chunk (its ACK was lost) is acknowledged again without being stored
 * twice; a chunk at offset 0 starts the window over; any other offset is refused. */
#include <string.h>

#include "tinyml_config.h"
#include "tinyml_run.h"
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

static float window[TINYML_WINDOW_VALUES];
static uint32_t have;   /* values received of the current window */
static uint32_t given;  /* frames handed to the sampler */
static uint8_t done;    /* the last window is complete and consumed (its last chunk may be resent) */

long tinyml_replay_push(uint32_t offset, const uint8_t *values, unsigned n)
{
    if (n && offset + n == have)
        return (long)have; /* a resent chunk */
    if (done && offset && offset + n == TINYML_WINDOW_VALUES)
        return (long)TINYML_WINDOW_VALUES; /* the last chunk of the window just run, resent */
    if (given)
        return -1; /* the complete window is being consumed: the host waits for its RESULT */
    if (offset == 0)
        have = 0;
    done = 0;
    if (offset != have || n > TINYML_WINDOW_VALUES - have)
        return -1;
    memcpy(&window[have], values, 4u * n); /* little-endian float32 on every supported core */
    have += n;
    return (long)have;
}

int sensor_driver_init(void)
{
    have = given = 0;
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    const unsigned total = TINYML_WINDOW_VALUES / TINYML_SENSOR_NATIVE_CHANNELS;
    if (have < TINYML_WINDOW_VALUES)
        return 0;
    unsigned n = total - given < max_frames ? total - given : max_frames;
    memcpy(frames, &window[given * TINYML_SENSOR_NATIVE_CHANNELS], 4u * n * TINYML_SENSOR_NATIVE_CHANNELS);
    given += n;
    if (given == total) {
        have = given = 0;
        done = 1;
    }
    return (int)n;
}

const char *sensor_driver_error(void)
{
    return "replay: no error";
}
