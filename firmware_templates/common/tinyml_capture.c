/* Capture in run mode: see tinyml_capture.h and docs/protocol.md (SAMPLES, CAPTURE). */
#include "tinyml_capture.h"

#include <string.h>

#include "tinyml_port.h"
#include "tinyml_proto.h"

/* Frames go out through a small staging buffer: no second 520-byte frame buffer. */
typedef struct {
    uint8_t buf[64];
    size_t n;
} sink_t;

static void flush(sink_t *s)
{
    if (s->n) {
        port_write(s->buf, s->n);
        s->n = 0;
    }
}

static void put_byte(uint8_t byte, void *ctx)
{
    sink_t *s = (sink_t *)ctx;
    s->buf[s->n++] = byte;
    if (s->n == sizeof s->buf)
        flush(s);
}

static void send(const tinyml_msg_t *m)
{
    sink_t sink;
    sink.n = 0;
    tinyml_encode_putc(m, put_byte, &sink);
    flush(&sink);
}

static void send_error(uint8_t code, const char *text)
{
    tinyml_msg_t m = {.type = TINYML_MSG_ERROR};
    m.u.error.code = code;
    m.u.error.message.ptr = text;
    m.u.error.message.len = (uint8_t)strlen(text);
    send(&m);
}

#if TINYML_RUN_MODE

#define VALUES_PER_CHUNK (TINYML_PROTO_MAX_SAMPLE_BYTES / 4u)

static void send_window(const float *samples, uint32_t boot_id, uint32_t window, uint32_t timestamp_ms)
{
    tinyml_msg_t m = {.type = TINYML_MSG_SAMPLES};
    uint32_t offset;
    m.u.samples.boot_id = boot_id;
    m.u.samples.window = window;
    m.u.samples.timestamp_ms = timestamp_ms;
    m.u.samples.fs = TINYML_SAMPLE_RATE_HZ;
    m.u.samples.samples = (uint16_t)(TINYML_WINDOW_VALUES / TINYML_CHANNELS);
    m.u.samples.channels = (uint8_t)TINYML_CHANNELS;
    m.u.samples.format = TINYML_SAMPLE_F32;
    m.u.samples.sensor.ptr = TINYML_SENSOR_NAME;
    m.u.samples.sensor.len = (uint8_t)strlen(TINYML_SENSOR_NAME);
    for (offset = 0; offset < TINYML_WINDOW_VALUES; offset += VALUES_PER_CHUNK) {
        uint32_t n = TINYML_WINDOW_VALUES - offset < VALUES_PER_CHUNK ? TINYML_WINDOW_VALUES - offset : VALUES_PER_CHUNK;
        m.u.samples.offset = offset;
        m.u.samples.len = (uint16_t)(n * 4u);
        m.u.samples.data = (const uint8_t *)(samples + offset); /* f32 little-endian: every tinyml core */
        send(&m);
    }
}

#if TINYML_CAPTURE_WINDOWS
static float ring[TINYML_CAPTURE_WINDOWS][TINYML_WINDOW_VALUES];
static uint32_t ring_window[TINYML_CAPTURE_WINDOWS], ring_ms[TINYML_CAPTURE_WINDOWS], ring_boot;
static uint32_t kept, next_slot; /* windows in the ring, and the slot the next one goes to */
#endif
static uint8_t streaming;
static uint16_t stream_left; /* windows still to stream; 0 = until stopped */

void tinyml_capture_window(const float *samples, uint32_t boot_id, uint32_t window, uint32_t timestamp_ms)
{
#if TINYML_CAPTURE_WINDOWS
    memcpy(ring[next_slot], samples, sizeof ring[0]);
    ring_window[next_slot] = window;
    ring_ms[next_slot] = timestamp_ms;
    ring_boot = boot_id;
    next_slot = (next_slot + 1u) % TINYML_CAPTURE_WINDOWS;
    if (kept < TINYML_CAPTURE_WINDOWS)
        kept++;
#endif
    if (streaming) {
        send_window(samples, boot_id, window, timestamp_ms);
        if (stream_left && --stream_left == 0)
            streaming = 0;
    }
}

static void send_ack(uint32_t value)
{
    tinyml_msg_t m = {.type = TINYML_MSG_ACK};
    m.u.ack.for_type = TINYML_MSG_CAPTURE;
    m.u.ack.value = value;
    send(&m);
}

void tinyml_capture_request(uint8_t mode, uint16_t count)
{
    switch (mode) {
    case TINYML_CAPTURE_STOP:
        streaming = 0;
        send_ack(0);
        break;
    case TINYML_CAPTURE_STREAM:
        streaming = 1;
        stream_left = count;
        send_ack(0);
        break;
    case TINYML_CAPTURE_RECENT: {
#if TINYML_CAPTURE_WINDOWS
        uint32_t n = (count == 0 || count > kept) ? kept : count, i;
        send_ack(n);
        for (i = 0; i < n; i++) { /* oldest first */
            uint32_t slot = (next_slot + TINYML_CAPTURE_WINDOWS - n + i) % TINYML_CAPTURE_WINDOWS;
            send_window(ring[slot], ring_boot, ring_window[slot], ring_ms[slot]);
        }
#else
        send_error(TINYML_ERR_UNSUPPORTED, "no window ring: built with TINYML_CAPTURE_WINDOWS=0");
#endif
        break;
    }
    default:
        send_error(TINYML_ERR_BAD_LENGTH, "unknown capture mode");
        break;
    }
}

#else /* validation firmware: no sensor, nothing to capture */

void tinyml_capture_window(const float *samples, uint32_t boot_id, uint32_t window, uint32_t timestamp_ms)
{
    (void)samples;
    (void)boot_id;
    (void)window;
    (void)timestamp_ms;
}

void tinyml_capture_request(uint8_t mode, uint16_t count)
{
    (void)mode;
    (void)count;
    send_error(TINYML_ERR_UNSUPPORTED, "validation firmware reads no sensor: build MODE=run to capture");
}

#endif
