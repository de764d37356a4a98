/* The replay sensor: windows of samples streamed by the host in REPLAY frames instead of read
 * from a chip. The host sends the frames run mode reads next (tinyml_run_frames_due(): a whole
 * window, only the hop's new samples of a run that slides its window, or a hop's samples of a
 * run whose hop is longer than its window: those it discards, then the window), x channels float32
 * values (training order and unit) in chunks at increasing offsets; once they are complete, the
 * sampler takes them and the model runs. A resent chunk (its ACK was lost) is acknowledged again
 * without being stored twice; a chunk at offset 0 starts over; any other offset is refused. */
#include <string.h>

#include "tinyml_config.h"
#include "tinyml_run.h"
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

static float window[TINYML_DUE_VALUES];
static uint32_t total;  /* values the host sends this time (set by its chunk at offset 0) */
static uint32_t have;   /* values received of them */
static uint32_t given;  /* frames handed to the sampler */
static uint32_t last;   /* values of the last complete window, consumed (its last chunk may be resent) */

long tinyml_replay_push(uint32_t offset, const uint8_t *values, unsigned n)
{
    if (n && offset + n == have)
        return (long)have; /* a resent chunk */
    if (last && offset && offset + n == last)
        return (long)last; /* the last chunk of the window just run, resent */
    if (given)
        return -1; /* the complete window is being consumed: the host waits for its RESULT */
    if (offset == 0) {
        have = 0;
        total = tinyml_run_frames_due() * TINYML_SENSOR_NATIVE_CHANNELS;
    }
    last = 0;
    if (offset != have || n > total - have)
        return -1;
    memcpy(&window[have], values, 4u * n); /* little-endian float32 on every supported core */
    have += n;
    return (long)have;
}

int sensor_driver_init(void)
{
    /* Nothing to reset: the state starts empty at boot, and the sampler starts at the run loop's first
     * read, after the first poll of the line, which may already have taken (and acknowledged) a window. */
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    const unsigned frames_sent = total / TINYML_SENSOR_NATIVE_CHANNELS;
    if (!total || have < total)
        return 0;
    unsigned n = frames_sent - given < max_frames ? frames_sent - given : max_frames;
    memcpy(frames, &window[given * TINYML_SENSOR_NATIVE_CHANNELS], 4u * n * TINYML_SENSOR_NATIVE_CHANNELS);
    given += n;
    if (given == frames_sent) {
        last = total;
        have = given = total = 0;
    }
    return (int)n;
}

const char *sensor_driver_error(void)
{
    return "replay: no error";
}
