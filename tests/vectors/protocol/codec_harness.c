/* Host test harness for the C protocol codec (run by tests/test_protocol_c.py).
 * stdin: one hex-encoded byte stream per line. For each stream, one line per event:
 *   MSG <re-encoded frame hex> <type>;<field>=<value>;...   (strings and bytes as hex,
 *                                                           score as f32 bits, output as a,b,c)
 *   TEXT | BAD <reason>
 * then END frames=<n> bad=<n> text=<n>.
 * Built with -DHARNESS_INPUT='"streams.inc"', the streams come from that file instead
 * (C string literals, one line each, followed by commas), for emulated boards whose
 * semihosting stdin is unreliable. */
#include <stdio.h>
#include <string.h>

#include "tinyml_proto.h"

#ifdef HARNESS_INPUT
static const char *const EMBEDDED[] = {
#include HARNESS_INPUT
    NULL};
static size_t embedded_line, embedded_pos;

static int next_char(void)
{
    while (EMBEDDED[embedded_line] && !EMBEDDED[embedded_line][embedded_pos]) {
        embedded_line++;
        embedded_pos = 0;
    }
    return EMBEDDED[embedded_line] ? EMBEDDED[embedded_line][embedded_pos++] : EOF;
}
#else
static int next_char(void) { return getchar(); }
#endif

static const char *const REASONS[] = {"none", "crc", "cobs", "too long", "unknown type", "bad length", "bad version"};

static void hex(const void *data, size_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t i;
    for (i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
}

static void field_str(const char *name, tinyml_str_t s)
{
    printf(";%s=", name);
    hex(s.ptr, s.len);
}

static void field_u(const char *name, unsigned long v) { printf(";%s=%lu", name, v); }

static void print_fields(const tinyml_msg_t *m)
{
    uint32_t bits;
    uint16_t i;
    printf("%u", (unsigned)m->type);
    switch (m->type) {
    case TINYML_MSG_HELLO:
    case TINYML_MSG_AUTH_HELLO:
        field_u("proto", m->u.hello.proto);
        field_str("board", m->u.hello.board);
        field_str("fw_version", m->u.hello.fw_version);
        field_str("device_id", m->u.hello.device_id);
        printf(";model_hash=");
        hex(m->u.hello.model_hash, 8);
        field_u("arena_bytes", m->u.hello.arena_bytes);
        field_u("input_bytes", m->u.hello.input_bytes);
        field_u("output_bytes", m->u.hello.output_bytes);
        field_u("boot_id", m->u.hello.boot_id);
        field_u("latency_unit", m->u.hello.latency_unit);
        if (m->type == TINYML_MSG_AUTH_HELLO) {
            printf(";nonce=");
            hex(m->nonce, TINYML_PROTO_NONCE_BYTES);
            printf(";mac=");
            hex(m->mac, TINYML_PROTO_MAC_BYTES);
        }
        break;
    case TINYML_MSG_RESULT:
    case TINYML_MSG_AUTH_RESULT:
        field_u("seq", m->u.result.seq);
        field_u("boot_id", m->u.result.boot_id);
        field_u("timestamp_ms", m->u.result.timestamp_ms);
        field_u("latency", m->u.result.latency);
        field_u("latency_unit", m->u.result.latency_unit);
        field_u("label", m->u.result.label);
        memcpy(&bits, &m->u.result.score, 4);
        printf(";score=%08lx;output=", (unsigned long)bits);
        for (i = 0; i < m->u.result.n; i++) {
            printf(i ? ",%d" : "%d", m->u.result.output[i]);
        }
        if (m->type == TINYML_MSG_AUTH_RESULT) {
            printf(";mac=");
            hex(m->mac, TINYML_PROTO_MAC_BYTES);
        }
        break;
    case TINYML_MSG_AUTH_CHALLENGE:
        printf(";nonce=");
        hex(m->nonce, TINYML_PROTO_NONCE_BYTES);
        break;
    case TINYML_MSG_INPUT:
        field_u("offset", m->u.input.offset);
        printf(";data=");
        hex(m->u.input.data, m->u.input.len);
        break;
    case TINYML_MSG_INFER:
        field_u("seq", m->u.infer.seq);
        break;
    case TINYML_MSG_ACK:
        field_u("for_type", m->u.ack.for_type);
        field_u("value", m->u.ack.value);
        break;
    case TINYML_MSG_ERROR:
        field_u("code", m->u.error.code);
        field_str("message", m->u.error.message);
        break;
    case TINYML_MSG_HEARTBEAT:
        field_u("boot_id", m->u.heartbeat.boot_id);
        field_u("uptime_ms", m->u.heartbeat.uptime_ms);
        field_u("results", m->u.heartbeat.results);
        field_u("rx_errors", m->u.heartbeat.rx_errors);
        if (m->u.heartbeat.has_sensor) {
            field_u("sensor_reads", m->u.heartbeat.sensor_reads);
            field_u("sensor_errors", m->u.heartbeat.sensor_errors);
            field_u("sensor_status", m->u.heartbeat.sensor_status);
        }
        break;
    case TINYML_MSG_EXIT:
        field_u("code", m->u.exit.code);
        break;
    case TINYML_MSG_OUTPUT_REQ:
        field_u("seq", m->u.output_req.seq);
        field_u("offset", m->u.output_req.offset);
        break;
    case TINYML_MSG_OUTPUT:
        field_u("seq", m->u.output.seq);
        field_u("offset", m->u.output.offset);
        printf(";data=");
        hex(m->u.output.data, m->u.output.len);
        break;
    case TINYML_MSG_SAMPLES:
        field_u("boot_id", m->u.samples.boot_id);
        field_u("window", m->u.samples.window);
        field_u("timestamp_ms", m->u.samples.timestamp_ms);
        memcpy(&bits, &m->u.samples.fs, 4);
        printf(";fs=%08lx", (unsigned long)bits);
        field_u("samples", m->u.samples.samples);
        field_u("channels", m->u.samples.channels);
        field_u("format", m->u.samples.format);
        field_u("offset", m->u.samples.offset);
        field_str("sensor", m->u.samples.sensor);
        printf(";data=");
        hex(m->u.samples.data, m->u.samples.len);
        break;
    case TINYML_MSG_CAPTURE:
        field_u("mode", m->u.capture.mode);
        field_u("count", m->u.capture.count);
        break;
    case TINYML_MSG_SERIES:
        field_u("reset", m->u.series.reset);
        field_u("slot", m->u.series.slot);
        break;
    case TINYML_MSG_TIME:
        field_u("seconds", m->u.time.seconds);
        break;
    case TINYML_MSG_REPLAY:
        field_u("offset", m->u.replay.offset);
        printf(";data=");
        hex(m->u.replay.values, 4u * m->u.replay.n);
        break;
    default:
        break;
    }
}

static void count_byte(uint8_t b, void *ctx)
{
    (void)b;
    ++*(size_t *)ctx;
}

static void on_message(const tinyml_msg_t *m)
{
    static uint8_t frame[TINYML_PROTO_MAX_FRAME];
    size_t n = tinyml_encode(m, frame, sizeof frame), counted = 0;
    /* the putc path must produce the same length, and a buffer one byte short must be refused */
    if (tinyml_encode_putc(m, count_byte, &counted) != n || counted != n || tinyml_encode(m, frame, n - 1) != 0) {
        printf("MSG encode-mismatch ");
    } else {
        printf("MSG ");
        hex(frame, n);
        printf(" ");
    }
    print_fields(m);
    printf("\n");
}

static int nibble(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(void)
{
    static tinyml_decoder_t dec;
    tinyml_msg_t msg;
    int c, hi = -1;
    tinyml_decoder_init(&dec);
    while ((c = next_char()) != EOF) {
        if (c == '\n') {
            printf("END frames=%lu bad=%lu text=%lu\n", (unsigned long)dec.frames, (unsigned long)dec.bad_frames,
                   (unsigned long)dec.text_bytes);
            tinyml_decoder_init(&dec);
            hi = -1;
            continue;
        }
        if (nibble(c) < 0) continue;
        if (hi < 0) {
            hi = nibble(c);
            continue;
        }
        switch (tinyml_decoder_feed(&dec, (uint8_t)(hi * 16 + nibble(c)), &msg)) {
        case TINYML_FEED_MSG:
            on_message(&msg);
            break;
        case TINYML_FEED_TEXT:
            printf("TEXT\n");
            break;
        case TINYML_FEED_BAD:
            printf("BAD %s\n", REASONS[dec.bad_reason]);
            break;
        default:
            break;
        }
        hi = -1;
    }
    return 0;
}
