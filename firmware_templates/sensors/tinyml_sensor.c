/* The sampler: turns a sensor driver's frames into the windows the model was trained on.
 *
 * Rendered in place of the placeholder hook when a project names a sensor (`tinyml firmware new
 * --sensor NAME`). It keeps the tinyml_sensor_read() contract of tinyml_run.h: deliver `window`
 * frames of `channels` values in the training data's channel order and unit, interleaved (the
 * model's window, the hop of a run that slides its window, or samples a run whose hop is longer
 * than its window discards), return 1 until they are complete,
 * and -1 when frames were lost (the run loop then reads its next window whole). Polled sensors (temperature) are read once per
 * sample period of the board's millisecond clock; FIFO sensors (accelerometers) are paced by
 * their own output data rate and drained whenever called. A failing sensor (no answer, wrong
 * identity, FIFO overrun, bus fault) is counted, reported once per new status through
 * tinyml_sensor_poll_error() (the application sends it as an ERROR frame and the counters in
 * HEARTBEAT) and probed again every TINYML_SENSOR_RETRY_MS. */
#include "tinyml_bus.h"
#include "tinyml_port.h"
#include "tinyml_run.h"
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

static const uint8_t channel_map[TINYML_SENSOR_CHANNELS] = TINYML_SENSOR_CHANNEL_MAP;
static const float channel_scale[TINYML_SENSOR_CHANNELS] = TINYML_SENSOR_CHANNEL_SCALE;
static float frames[TINYML_SENSOR_READ_FRAMES * TINYML_SENSOR_NATIVE_CHANNELS];
static uint8_t started, status, reported;
static uint32_t reads, errors, retry_at;
static unsigned filled; /* frames of the current window so far */
static const float *filling; /* ... into this buffer, of this many frames */
static unsigned filling_window;
#if TINYML_SENSOR_POLLED
static uint32_t due_ms, due_us_rest;

static void next_due(void)
{
    due_us_rest += TINYML_SENSOR_PERIOD_US;
    due_ms += due_us_rest / 1000u;
    due_us_rest %= 1000u;
}
#endif

static void fail(int why)
{
    status = (uint8_t)why;
    errors++;
    started = 0;
    filled = 0;
    retry_at = port_millis() + TINYML_SENSOR_RETRY_MS;
}

static int start(void)
{
    int st = tinyml_bus_init();
    if (st == TINYML_BUS_OK)
        st = sensor_driver_init();
    else
        st = st == TINYML_BUS_NACK ? TINYML_SENSOR_NO_ANSWER : TINYML_SENSOR_BUS_ERROR;
    if (st != TINYML_SENSOR_OK) {
        fail(st);
        return st;
    }
    started = 1;
    status = TINYML_SENSOR_OK;
    filled = 0;
#if TINYML_SENSOR_POLLED
    /* The first conversion after configuring ends a period later: until then a temperature
     * register reads its power-on value (0 degC on the TMP10x). */
    due_ms = port_millis();
    due_us_rest = 0;
    next_due();
#endif
    return 0;
}

int tinyml_sensor_read(float *samples, unsigned window, unsigned channels)
{
    if (channels != TINYML_SENSOR_CHANNELS)
        return 1; /* rendered for another model: never deliver a mis-shaped window */
    if (!started && ((int32_t)(port_millis() - retry_at) < 0 || start() != 0))
        return -1; /* failed: whatever the window held is lost */
    if (samples != filling || window != filling_window) {
        /* The run loop restarted (a lost read, a new stream): frames taken for the window it gave up
         * belong to no window it will read now. */
        filled = 0;
        filling = samples;
        filling_window = window;
    }
    unsigned want = window - filled;
#if TINYML_SENSOR_POLLED
    if ((int32_t)(port_millis() - due_ms) < 0)
        return 1;
    next_due();
    want = 1;
#else
    if (want > TINYML_SENSOR_READ_FRAMES)
        want = TINYML_SENSOR_READ_FRAMES;
#endif
    int n = sensor_driver_read(frames, want);
    if (n == -TINYML_SENSOR_OVERRUN) { /* samples were lost: this window would have a gap */
        status = TINYML_SENSOR_OVERRUN;
        errors++;
        filled = 0;
        return -1;
    }
    if (n < 0) {
        if (-n == TINYML_SENSOR_NOT_READY)
            return 1;
        fail(-n);
        return -1;
    }
    for (int f = 0; f < n; f++, filled++) {
        for (unsigned c = 0; c < channels; c++)
            samples[filled * channels + c] = frames[f * TINYML_SENSOR_NATIVE_CHANNELS + channel_map[c]] * channel_scale[c];
        reads++;
    }
    if (filled < window)
        return 1;
    filled = 0;
    status = TINYML_SENSOR_OK; /* a whole window again: a later failure is reported afresh */
    return 0;
}

const char *tinyml_sensor_poll_error(tinyml_sensor_stats_t *stats)
{
    stats->reads = reads;
    stats->errors = errors;
    stats->status = status;
    if (status == reported)
        return 0;
    reported = status;
    return status == TINYML_SENSOR_OK ? 0 : sensor_driver_error();
}

void tinyml_sensor_describe(char *buf, unsigned cap, const char *head, uint32_t value, unsigned digits,
                            const char *tail)
{
    static const char hex[] = "0123456789abcdef";
    unsigned n = 0;
    while (*head && n + 1 < cap)
        buf[n++] = *head++;
    for (unsigned i = 0; digits && i < 2 && n + 1 < cap; i++)
        buf[n++] = "0x"[i];
    while (digits-- && n + 1 < cap)
        buf[n++] = hex[(value >> (4u * digits)) & 0xFu];
    while (*tail && n + 1 < cap)
        buf[n++] = *tail++;
    buf[n] = 0;
}
