/* tinyml device protocol v1: frame codec. See tinyml_proto.h and docs/protocol.md. */
#include "tinyml_proto.h"

#include <string.h>

/* ---- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection (bitwise: small flash) ---- */
static uint16_t crc_byte(uint16_t crc, uint8_t byte)
{
    int i;
    crc ^= (uint16_t)((uint16_t)byte << 8);
    for (i = 0; i < 8; i++) {
        crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t tinyml_crc16(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        crc = crc_byte(crc, data[i]);
    }
    return crc;
}

/* ---- little-endian field access ---- */
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static float get_f32(const uint8_t *p)
{
    uint32_t bits = get_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- decoder ---- */
static void reset_chunk(tinyml_decoder_t *d)
{
    d->len = 0;
    d->raw_len = 0;
    d->code = 0;
    d->remaining = 0;
    d->overflow = 0;
    d->printable = 1;
}

void tinyml_decoder_init(tinyml_decoder_t *d)
{
    memset(d, 0, sizeof *d);
    reset_chunk(d);
}

static int is_printable(uint8_t b) { return (b >= 0x20u && b < 0x7Fu) || b == '\t' || b == '\r' || b == '\n'; }

#define OVERFLOW_RAW 1u
#define OVERFLOW_BODY 2u
#define MAX_ENCODED (TINYML_PROTO_MAX_FRAME - 2u)

static void append(tinyml_decoder_t *d, uint8_t b)
{
    if (d->len < TINYML_PROTO_MAX_BODY) {
        d->body[d->len++] = b;
    } else {
        d->overflow |= OVERFLOW_BODY;
    }
}

static int finish_chunk(tinyml_decoder_t *d, tinyml_msg_t *msg)
{
    int reason;
    if (d->raw_len == 0) {
        return TINYML_FEED_NONE;
    }
    if (d->printable) {
        d->text_bytes += d->raw_len;
        return TINYML_FEED_TEXT;
    }
    if (d->overflow & OVERFLOW_RAW) {
        reason = TINYML_BAD_TOO_LONG;
    } else if (d->remaining != 0) {
        reason = TINYML_BAD_COBS;
    } else if (d->overflow & OVERFLOW_BODY) {
        reason = TINYML_BAD_TOO_LONG;
    } else {
        reason = tinyml_parse_body(d->body, d->len, msg);
    }
    if (reason != TINYML_BAD_NONE) {
        d->bad_reason = (uint8_t)reason;
        d->bad_frames++;
        return TINYML_FEED_BAD;
    }
    d->frames++;
    return TINYML_FEED_MSG;
}

int tinyml_decoder_feed(tinyml_decoder_t *d, uint8_t byte, tinyml_msg_t *msg)
{
    if (byte == 0) {
        int result = finish_chunk(d, msg);
        reset_chunk(d);
        return result;
    }
    if (d->raw_len < 0xFFFFu) {
        d->raw_len++;
    }
    if (!is_printable(byte)) {
        d->printable = 0;
    }
    if (d->printable && ((byte == '\n' && d->raw_len >= 2) || d->raw_len > MAX_ENCODED)) {
        /* text ends early at a newline or when longer than a frame (no frame starts with two
         * printable bytes: its second byte is the version, 0x01) */
        d->text_bytes += d->raw_len;
        reset_chunk(d);
        return TINYML_FEED_TEXT;
    }
    if (d->raw_len > MAX_ENCODED) {
        d->overflow |= OVERFLOW_RAW;
    }
    if (d->overflow & OVERFLOW_RAW) {
        return TINYML_FEED_NONE;
    }
    if (d->remaining == 0) { /* a COBS code byte: the previous block (if not full) ended in 0x00 */
        if (d->code != 0 && d->code != 0xFFu) {
            append(d, 0);
        }
        d->code = byte;
        d->remaining = (uint8_t)(byte - 1u);
    } else {
        append(d, byte);
        d->remaining--;
    }
    return TINYML_FEED_NONE;
}

/* ---- body parsing ---- */
typedef struct {
    const uint8_t *p;
    size_t left;
    int ok;
} reader_t;

static const uint8_t *take(reader_t *r, size_t n)
{
    const uint8_t *p = r->p;
    if (!r->ok || n > r->left) {
        r->ok = 0;
        return NULL;
    }
    r->p += n;
    r->left -= n;
    return p;
}

static uint8_t rd_u8(reader_t *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

static uint16_t rd_u16(reader_t *r)
{
    const uint8_t *p = take(r, 2);
    return p ? get_u16(p) : 0;
}

static uint32_t rd_u32(reader_t *r)
{
    const uint8_t *p = take(r, 4);
    return p ? get_u32(p) : 0;
}

static float rd_f32(reader_t *r)
{
    const uint8_t *p = take(r, 4);
    return p ? get_f32(p) : 0.0f;
}

static tinyml_str_t rd_str8(reader_t *r)
{
    tinyml_str_t s;
    s.len = rd_u8(r);
    s.ptr = (const char *)take(r, s.len);
    if (!s.ptr) {
        s.len = 0;
    }
    return s;
}

/* All remaining bytes, which must be 1..most (INPUT and OUTPUT data). */
static const uint8_t *rd_rest(reader_t *r, size_t most, uint16_t *len)
{
    *len = (uint16_t)r->left;
    if (r->left < 1 || r->left > most) {
        r->ok = 0;
    }
    return take(r, r->left);
}

static void rd_fixed(reader_t *r, uint8_t *out, size_t n)
{
    const uint8_t *p = take(r, n);
    if (p) {
        memcpy(out, p, n);
    }
}

static int parse_payload(reader_t *r, tinyml_msg_t *m)
{
    switch (m->type) {
    case TINYML_MSG_HELLO:
    case TINYML_MSG_AUTH_HELLO:
        m->u.hello.proto = rd_u8(r);
        m->u.hello.board = rd_str8(r);
        m->u.hello.fw_version = rd_str8(r);
        m->u.hello.device_id = rd_str8(r);
        rd_fixed(r, m->u.hello.model_hash, 8);
        m->u.hello.arena_bytes = rd_u32(r);
        m->u.hello.input_bytes = rd_u32(r);
        m->u.hello.output_bytes = rd_u32(r);
        m->u.hello.boot_id = rd_u32(r);
        m->u.hello.latency_unit = rd_u8(r);
        if (m->type == TINYML_MSG_AUTH_HELLO) {
            rd_fixed(r, m->nonce, TINYML_PROTO_NONCE_BYTES);
            rd_fixed(r, m->mac, TINYML_PROTO_MAC_BYTES);
        }
        break;
    case TINYML_MSG_RESULT:
    case TINYML_MSG_AUTH_RESULT:
        m->u.result.seq = rd_u32(r);
        m->u.result.boot_id = rd_u32(r);
        m->u.result.timestamp_ms = rd_u32(r);
        m->u.result.latency = rd_u32(r);
        m->u.result.latency_unit = rd_u8(r);
        m->u.result.label = rd_u8(r);
        m->u.result.score = rd_f32(r);
        m->u.result.n = rd_u16(r);
        m->u.result.output = (const int8_t *)take(r, m->u.result.n);
        if (m->type == TINYML_MSG_AUTH_RESULT) {
            rd_fixed(r, m->mac, TINYML_PROTO_MAC_BYTES);
        }
        break;
    case TINYML_MSG_AUTH_CHALLENGE:
        rd_fixed(r, m->nonce, TINYML_PROTO_NONCE_BYTES);
        break;
    case TINYML_MSG_INPUT:
        m->u.input.offset = rd_u32(r);
        m->u.input.data = rd_rest(r, TINYML_PROTO_MAX_INPUT_CHUNK, &m->u.input.len);
        break;
    case TINYML_MSG_INFER:
        m->u.infer.seq = rd_u32(r);
        break;
    case TINYML_MSG_ACK:
        m->u.ack.for_type = rd_u8(r);
        m->u.ack.value = rd_u32(r);
        break;
    case TINYML_MSG_ERROR:
        m->u.error.code = rd_u8(r);
        m->u.error.message = rd_str8(r);
        break;
    case TINYML_MSG_HEARTBEAT:
        m->u.heartbeat.boot_id = rd_u32(r);
        m->u.heartbeat.uptime_ms = rd_u32(r);
        m->u.heartbeat.results = rd_u32(r);
        m->u.heartbeat.rx_errors = rd_u32(r);
        if (r->ok && r->left) { /* the sensor counters of firmware with a sensor driver */
            m->u.heartbeat.has_sensor = 1;
            m->u.heartbeat.sensor_reads = rd_u32(r);
            m->u.heartbeat.sensor_errors = rd_u32(r);
            m->u.heartbeat.sensor_status = rd_u8(r);
        }
        break;
    case TINYML_MSG_HELLO_REQ:
        break;
    case TINYML_MSG_EXIT:
        m->u.exit.code = rd_u8(r);
        break;
    case TINYML_MSG_OUTPUT_REQ:
        m->u.output_req.seq = rd_u32(r);
        m->u.output_req.offset = rd_u32(r);
        break;
    case TINYML_MSG_OUTPUT:
        m->u.output.seq = rd_u32(r);
        m->u.output.offset = rd_u32(r);
        m->u.output.data = (const int8_t *)rd_rest(r, TINYML_PROTO_MAX_OUTPUT_CHUNK, &m->u.output.len);
        break;
    case TINYML_MSG_SAMPLES:
        m->u.samples.boot_id = rd_u32(r);
        m->u.samples.window = rd_u32(r);
        m->u.samples.timestamp_ms = rd_u32(r);
        m->u.samples.fs = rd_f32(r);
        m->u.samples.samples = rd_u16(r);
        m->u.samples.channels = rd_u8(r);
        m->u.samples.format = rd_u8(r);
        m->u.samples.offset = rd_u32(r);
        m->u.samples.sensor = rd_str8(r);
        if (m->u.samples.sensor.len > TINYML_PROTO_MAX_SENSOR_NAME) {
            r->ok = 0;
        }
        m->u.samples.data = rd_rest(r, TINYML_PROTO_MAX_SAMPLE_BYTES, &m->u.samples.len);
        break;
    case TINYML_MSG_CAPTURE:
        m->u.capture.mode = rd_u8(r);
        m->u.capture.count = rd_u16(r);
        break;
    case TINYML_MSG_SERIES:
        m->u.series.reset = rd_u8(r);
        m->u.series.slot = rd_u32(r);
        if (m->u.series.reset > 1u) {
            r->ok = 0;
        }
        break;
    case TINYML_MSG_TIME:
        m->u.time.seconds = rd_u32(r);
        break;
    case TINYML_MSG_REPLAY: {
        uint16_t bytes;
        m->u.replay.offset = rd_u32(r);
        m->u.replay.values = rd_rest(r, 4u * TINYML_PROTO_MAX_REPLAY_VALUES, &bytes);
        if (bytes % 4u) {
            r->ok = 0;
        }
        m->u.replay.n = (uint16_t)(bytes / 4u);
        break;
    }
    default:
        return TINYML_BAD_UNKNOWN_TYPE;
    }
    return (r->ok && r->left == 0) ? TINYML_BAD_NONE : TINYML_BAD_LENGTH;
}

int tinyml_parse_body(const uint8_t *body, size_t len, tinyml_msg_t *msg)
{
    reader_t r;
    if (len < 4) {
        return TINYML_BAD_LENGTH;
    }
    if (tinyml_crc16(0xFFFFu, body, len - 2) != get_u16(body + len - 2)) {
        return TINYML_BAD_CRC;
    }
    if (body[0] != TINYML_PROTO_VERSION) {
        return TINYML_BAD_VERSION;
    }
    memset(msg, 0, sizeof *msg);
    msg->type = body[1];
    r.p = body + 2;
    r.left = len - 4;
    r.ok = 1;
    return parse_payload(&r, msg);
}

/* ---- encoder: body bytes go through a streaming COBS block buffer ---- */
typedef struct {
    tinyml_putc_fn put;
    void *ctx;
    size_t count;
    uint16_t crc;
    uint8_t n;
    uint8_t after_full; /* the last block written was a full 0xFF block */
    uint8_t raw;        /* MAC input: bytes straight to put, no COBS, CRC or MAC */
    uint8_t block[254];
} encoder_t;

static void put_raw(encoder_t *e, uint8_t b)
{
    e->put(b, e->ctx);
    e->count++;
}

static void flush_block(encoder_t *e, uint8_t code)
{
    uint8_t i;
    put_raw(e, code);
    for (i = 0; i < e->n; i++) {
        put_raw(e, e->block[i]);
    }
    e->after_full = (code == 0xFFu);
    e->n = 0;
}

static void put_cobs(encoder_t *e, uint8_t b)
{
    if (b == 0) {
        flush_block(e, (uint8_t)(e->n + 1u));
        return;
    }
    e->block[e->n++] = b;
    if (e->n == 254u) {
        flush_block(e, 0xFFu);
    }
}

static void put_u8(encoder_t *e, uint8_t b)
{
    if (e->raw) {
        put_raw(e, b);
        return;
    }
    e->crc = crc_byte(e->crc, b);
    put_cobs(e, b);
}

static void put_u16(encoder_t *e, uint16_t v)
{
    put_u8(e, (uint8_t)v);
    put_u8(e, (uint8_t)(v >> 8));
}

static void put_u32(encoder_t *e, uint32_t v)
{
    put_u16(e, (uint16_t)v);
    put_u16(e, (uint16_t)(v >> 16));
}

static void put_f32(encoder_t *e, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    put_u32(e, bits);
}

static void put_bytes(encoder_t *e, const void *data, size_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t i;
    for (i = 0; i < n; i++) {
        put_u8(e, p[i]);
    }
}

static void put_str8(encoder_t *e, tinyml_str_t s)
{
    put_u8(e, s.len);
    put_bytes(e, s.ptr, s.len);
}

/* Payload length of a message, or -1 when it cannot be sent. */
static long payload_len(const tinyml_msg_t *m)
{
    switch (m->type) {
    case TINYML_MSG_HELLO:
    case TINYML_MSG_AUTH_HELLO:
        if ((m->u.hello.board.len && !m->u.hello.board.ptr) || (m->u.hello.fw_version.len && !m->u.hello.fw_version.ptr) ||
            (m->u.hello.device_id.len && !m->u.hello.device_id.ptr)) {
            return -1;
        }
        return 1L + 1 + m->u.hello.board.len + 1 + m->u.hello.fw_version.len + 1 + m->u.hello.device_id.len + 8 + 17 +
               (m->type == TINYML_MSG_AUTH_HELLO ? 16 : 0);
    case TINYML_MSG_RESULT:
    case TINYML_MSG_AUTH_RESULT:
        if (m->u.result.n > (m->type == TINYML_MSG_RESULT ? TINYML_PROTO_MAX_OUTPUT : TINYML_PROTO_MAX_AUTH_OUTPUT) ||
            (m->u.result.n && !m->u.result.output)) {
            return -1;
        }
        return 24L + m->u.result.n + (m->type == TINYML_MSG_AUTH_RESULT ? 8 : 0);
    case TINYML_MSG_AUTH_CHALLENGE:
        return 8;
    case TINYML_MSG_INPUT:
        if (m->u.input.len < 1 || m->u.input.len > TINYML_PROTO_MAX_INPUT_CHUNK || !m->u.input.data) {
            return -1;
        }
        return 4L + m->u.input.len;
    case TINYML_MSG_INFER:
        return 4;
    case TINYML_MSG_ACK:
        return 5;
    case TINYML_MSG_ERROR:
        return (m->u.error.message.len && !m->u.error.message.ptr) ? -1 : 2L + m->u.error.message.len;
    case TINYML_MSG_HEARTBEAT:
        return m->u.heartbeat.has_sensor ? 25 : 16;
    case TINYML_MSG_HELLO_REQ:
        return 0;
    case TINYML_MSG_EXIT:
        return 1;
    case TINYML_MSG_OUTPUT_REQ:
        return 8;
    case TINYML_MSG_OUTPUT:
        if (m->u.output.len < 1 || m->u.output.len > TINYML_PROTO_MAX_OUTPUT_CHUNK || !m->u.output.data) {
            return -1;
        }
        return 8L + m->u.output.len;
    case TINYML_MSG_SAMPLES:
        if (m->u.samples.len < 1 || m->u.samples.len > TINYML_PROTO_MAX_SAMPLE_BYTES || !m->u.samples.data ||
            m->u.samples.sensor.len > TINYML_PROTO_MAX_SENSOR_NAME || (m->u.samples.sensor.len && !m->u.samples.sensor.ptr)) {
            return -1;
        }
        return 25L + m->u.samples.sensor.len + m->u.samples.len;
    case TINYML_MSG_CAPTURE:
        return 3;
    case TINYML_MSG_SERIES:
        return m->u.series.reset > 1u ? -1 : 5;
    case TINYML_MSG_TIME:
        return 4;
    case TINYML_MSG_REPLAY:
        if (m->u.replay.n < 1 || m->u.replay.n > TINYML_PROTO_MAX_REPLAY_VALUES || !m->u.replay.values) {
            return -1;
        }
        return 4L + 4L * m->u.replay.n;
    default:
        return -1;
    }
}

static void put_payload(encoder_t *e, const tinyml_msg_t *m)
{
    switch (m->type) {
    case TINYML_MSG_HELLO:
    case TINYML_MSG_AUTH_HELLO:
        put_u8(e, m->u.hello.proto);
        put_str8(e, m->u.hello.board);
        put_str8(e, m->u.hello.fw_version);
        put_str8(e, m->u.hello.device_id);
        put_bytes(e, m->u.hello.model_hash, 8);
        put_u32(e, m->u.hello.arena_bytes);
        put_u32(e, m->u.hello.input_bytes);
        put_u32(e, m->u.hello.output_bytes);
        put_u32(e, m->u.hello.boot_id);
        put_u8(e, m->u.hello.latency_unit);
        if (m->type == TINYML_MSG_AUTH_HELLO) {
            put_bytes(e, m->nonce, TINYML_PROTO_NONCE_BYTES);
            if (!e->raw) {
                put_bytes(e, m->mac, TINYML_PROTO_MAC_BYTES);
            }
        }
        break;
    case TINYML_MSG_RESULT:
    case TINYML_MSG_AUTH_RESULT:
        put_u32(e, m->u.result.seq);
        put_u32(e, m->u.result.boot_id);
        put_u32(e, m->u.result.timestamp_ms);
        put_u32(e, m->u.result.latency);
        put_u8(e, m->u.result.latency_unit);
        put_u8(e, m->u.result.label);
        put_f32(e, m->u.result.score);
        put_u16(e, m->u.result.n);
        put_bytes(e, m->u.result.output, m->u.result.n);
        if (m->type == TINYML_MSG_AUTH_RESULT && !e->raw) {
            put_bytes(e, m->mac, TINYML_PROTO_MAC_BYTES);
        }
        break;
    case TINYML_MSG_AUTH_CHALLENGE:
        put_bytes(e, m->nonce, TINYML_PROTO_NONCE_BYTES);
        break;
    case TINYML_MSG_INPUT:
        put_u32(e, m->u.input.offset);
        put_bytes(e, m->u.input.data, m->u.input.len);
        break;
    case TINYML_MSG_INFER:
        put_u32(e, m->u.infer.seq);
        break;
    case TINYML_MSG_ACK:
        put_u8(e, m->u.ack.for_type);
        put_u32(e, m->u.ack.value);
        break;
    case TINYML_MSG_ERROR:
        put_u8(e, m->u.error.code);
        put_str8(e, m->u.error.message);
        break;
    case TINYML_MSG_HEARTBEAT:
        put_u32(e, m->u.heartbeat.boot_id);
        put_u32(e, m->u.heartbeat.uptime_ms);
        put_u32(e, m->u.heartbeat.results);
        put_u32(e, m->u.heartbeat.rx_errors);
        if (m->u.heartbeat.has_sensor) {
            put_u32(e, m->u.heartbeat.sensor_reads);
            put_u32(e, m->u.heartbeat.sensor_errors);
            put_u8(e, m->u.heartbeat.sensor_status);
        }
        break;
    case TINYML_MSG_EXIT:
        put_u8(e, m->u.exit.code);
        break;
    case TINYML_MSG_OUTPUT_REQ:
        put_u32(e, m->u.output_req.seq);
        put_u32(e, m->u.output_req.offset);
        break;
    case TINYML_MSG_OUTPUT:
        put_u32(e, m->u.output.seq);
        put_u32(e, m->u.output.offset);
        put_bytes(e, m->u.output.data, m->u.output.len);
        break;
    case TINYML_MSG_SAMPLES:
        put_u32(e, m->u.samples.boot_id);
        put_u32(e, m->u.samples.window);
        put_u32(e, m->u.samples.timestamp_ms);
        put_f32(e, m->u.samples.fs);
        put_u16(e, m->u.samples.samples);
        put_u8(e, m->u.samples.channels);
        put_u8(e, m->u.samples.format);
        put_u32(e, m->u.samples.offset);
        put_str8(e, m->u.samples.sensor);
        put_bytes(e, m->u.samples.data, m->u.samples.len);
        break;
    case TINYML_MSG_CAPTURE:
        put_u8(e, m->u.capture.mode);
        put_u16(e, m->u.capture.count);
        break;
    case TINYML_MSG_SERIES:
        put_u8(e, m->u.series.reset);
        put_u32(e, m->u.series.slot);
        break;
    case TINYML_MSG_TIME:
        put_u32(e, m->u.time.seconds);
        break;
    case TINYML_MSG_REPLAY:
        put_u32(e, m->u.replay.offset);
        put_bytes(e, m->u.replay.values, 4u * m->u.replay.n);
        break;
    default: /* HELLO_REQ: empty */
        break;
    }
}

size_t tinyml_encode_putc(const tinyml_msg_t *msg, tinyml_putc_fn putc, void *ctx)
{
    encoder_t e;
    uint16_t crc;
    long plen = payload_len(msg);
    if (plen < 0 || plen > (long)TINYML_PROTO_MAX_PAYLOAD || !putc) {
        return 0;
    }
    e.put = putc;
    e.ctx = ctx;
    e.count = 0;
    e.crc = 0xFFFFu;
    e.n = 0;
    e.after_full = 0;
    e.raw = 0;
    put_raw(&e, 0);
    put_u8(&e, TINYML_PROTO_VERSION);
    put_u8(&e, msg->type);
    put_payload(&e, msg);
    crc = e.crc;
    put_cobs(&e, (uint8_t)crc);
    put_cobs(&e, (uint8_t)(crc >> 8));
    if (e.n != 0 || !e.after_full) { /* standard COBS: no empty block after a full one at the end */
        flush_block(&e, (uint8_t)(e.n + 1u));
    }
    put_raw(&e, 0);
    return e.count;
}

size_t tinyml_mac_input_putc(const tinyml_msg_t *msg, tinyml_putc_fn putc, void *ctx)
{
    encoder_t e;
    long plen = payload_len(msg);
    if (plen < 0 || plen > (long)TINYML_PROTO_MAX_PAYLOAD || !putc ||
        (msg->type != TINYML_MSG_AUTH_HELLO && msg->type != TINYML_MSG_AUTH_RESULT)) {
        return 0;
    }
    e.put = putc;
    e.ctx = ctx;
    e.count = 0;
    e.raw = 1;
    put_u8(&e, msg->type);
    put_payload(&e, msg);
    return e.count;
}

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t pos;
} buffer_sink_t;

static void put_buffer(uint8_t byte, void *ctx)
{
    buffer_sink_t *s = (buffer_sink_t *)ctx;
    if (s->pos < s->cap) {
        s->buf[s->pos] = byte;
    }
    s->pos++;
}

size_t tinyml_encode(const tinyml_msg_t *msg, uint8_t *buf, size_t cap)
{
    buffer_sink_t sink;
    size_t n;
    sink.buf = buf;
    sink.cap = buf ? cap : 0;
    sink.pos = 0;
    n = tinyml_encode_putc(msg, put_buffer, &sink);
    return (n > sink.cap) ? 0 : n;
}
