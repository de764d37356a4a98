/* tinyml device protocol v1 (docs/protocol.md): frame codec for firmware.
 *
 * C99, no heap, no libc beyond <stdint.h>/<stddef.h>/<string.h>.
 * - Decoder: feed one received byte at a time (safe to call from a UART ISR);
 *   it reports a message, a finished debug-text chunk or a bad frame.
 * - Encoder: writes a complete frame (0x00 | COBS(body) | 0x00) into a caller
 *   buffer or byte by byte through a putc callback (uses ~270 bytes of stack).
 * Decoded strings and byte arrays point into the decoder's buffer and stay
 * valid until the next call to tinyml_decoder_feed().
 * Checked against the same golden vectors as the Python codec
 * (tests/vectors/protocol/).
 */
#ifndef TINYML_PROTO_H
#define TINYML_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TINYML_PROTO_VERSION 1u
#define TINYML_PROTO_MAX_BODY 512u
#define TINYML_PROTO_MAX_PAYLOAD (TINYML_PROTO_MAX_BODY - 4u)
/* COBS of the largest body plus both 0x00 delimiters */
#define TINYML_PROTO_MAX_FRAME (TINYML_PROTO_MAX_BODY + TINYML_PROTO_MAX_BODY / 254u + 1u + 2u)
#define TINYML_PROTO_MAX_INPUT_CHUNK 256u
#define TINYML_PROTO_MAX_OUTPUT (TINYML_PROTO_MAX_PAYLOAD - 24u)       /* output bytes in a RESULT */
#define TINYML_PROTO_MAX_OUTPUT_CHUNK (TINYML_PROTO_MAX_PAYLOAD - 8u) /* output bytes in an OUTPUT */
#define TINYML_PROTO_MAX_SENSOR_NAME 32u  /* SAMPLES: bytes of the sensor name */
#define TINYML_PROTO_MAX_SAMPLE_BYTES 448u /* SAMPLES: data bytes per frame (112 f32 values) */
#define TINYML_PROTO_MAX_REPLAY_VALUES ((TINYML_PROTO_MAX_PAYLOAD - 4u) / 4u) /* float32s in a REPLAY */
#define TINYML_PROTO_MAC_BYTES 8u   /* AUTH_HELLO, AUTH_RESULT: HMAC-SHA256 truncated (tinyml_auth.h) */
#define TINYML_PROTO_NONCE_BYTES 8u /* AUTH_CHALLENGE, AUTH_HELLO: the host's challenge */
#define TINYML_PROTO_MAX_AUTH_OUTPUT (TINYML_PROTO_MAX_OUTPUT - TINYML_PROTO_MAC_BYTES) /* output bytes in an AUTH_RESULT */

enum tinyml_msg_type {
    TINYML_MSG_HELLO = 0x01,
    TINYML_MSG_RESULT = 0x02,
    TINYML_MSG_INPUT = 0x03,
    TINYML_MSG_INFER = 0x04,
    TINYML_MSG_ACK = 0x05,
    TINYML_MSG_ERROR = 0x06,
    TINYML_MSG_HEARTBEAT = 0x07,
    TINYML_MSG_HELLO_REQ = 0x08,
    TINYML_MSG_EXIT = 0x09,
    TINYML_MSG_OUTPUT_REQ = 0x0A,
    TINYML_MSG_OUTPUT = 0x0B,
    TINYML_MSG_SAMPLES = 0x0C,
    TINYML_MSG_CAPTURE = 0x0D,
    TINYML_MSG_REPLAY = 0x0E,
    TINYML_MSG_AUTH_CHALLENGE = 0x10, /* nonce */
    TINYML_MSG_AUTH_HELLO = 0x11,     /* u.hello, nonce, mac */
    TINYML_MSG_AUTH_RESULT = 0x12,    /* u.result (n <= TINYML_PROTO_MAX_AUTH_OUTPUT), mac */
    TINYML_MSG_SERIES = 0x14,         /* u.series: where the next validation window sits in its stream */
    TINYML_MSG_TIME = 0x15            /* u.time: the time now in the data's clock (run mode) */
};

enum tinyml_sample_format { TINYML_SAMPLE_F32 = 0 };

enum tinyml_capture_mode { TINYML_CAPTURE_STOP = 0, TINYML_CAPTURE_STREAM = 1, TINYML_CAPTURE_RECENT = 2 };

enum tinyml_latency_unit {
    TINYML_LATENCY_CYCLES = 0,
    TINYML_LATENCY_TICKS = 1,
    TINYML_LATENCY_US = 2,
    TINYML_LATENCY_INSTRUCTIONS = 3
};

enum tinyml_error_code {
    TINYML_ERR_BAD_FRAME = 1,
    TINYML_ERR_UNKNOWN_TYPE = 2,
    TINYML_ERR_BAD_LENGTH = 3,
    TINYML_ERR_UNSUPPORTED = 4,
    TINYML_ERR_INFERENCE = 5,
    TINYML_ERR_MODEL_MISMATCH = 6,
    TINYML_ERR_SENSOR = 7
};

#define TINYML_LABEL_UNDECIDED 0xFFu
/* An anomaly detector's label when its stuck guard fires: a frozen reading, which the gateway alerts on at once. */
#define TINYML_LABEL_SENSOR_FAULT 2u
/* HELLO.arena_bytes when the runtime could not allocate its arena at boot (INFER will fail). */
#define TINYML_HELLO_ARENA_FAILED 0xFFFFFFFFu

/* A str8 field: not NUL-terminated. */
typedef struct {
    const char *ptr;
    uint8_t len;
} tinyml_str_t;

typedef struct {
    uint8_t type; /* enum tinyml_msg_type */
    uint8_t nonce[TINYML_PROTO_NONCE_BYTES]; /* AUTH_CHALLENGE, AUTH_HELLO */
    uint8_t mac[TINYML_PROTO_MAC_BYTES];     /* AUTH_HELLO, AUTH_RESULT (tinyml_auth_sign fills it) */
    union {
        struct {
            uint8_t proto;
            tinyml_str_t board, fw_version, device_id;
            uint8_t model_hash[8];
            uint32_t arena_bytes, input_bytes, output_bytes, boot_id;
            uint8_t latency_unit;
        } hello;
        struct {
            uint32_t seq, boot_id, timestamp_ms, latency;
            uint8_t latency_unit, label;
            float score;
            uint16_t n;
            const int8_t *output;
        } result;
        struct {
            uint32_t offset;
            uint16_t len; /* 1..256 */
            const uint8_t *data;
        } input;
        struct {
            uint32_t seq;
        } infer;
        struct {
            uint8_t for_type; /* the message type acknowledged */
            uint32_t value;
        } ack;
        struct {
            uint8_t code;
            tinyml_str_t message;
        } error;
        struct {
            uint32_t boot_id, uptime_ms, results, rx_errors;
            /* Sent (and decoded) only when has_sensor: firmware with a sensor driver. */
            uint8_t has_sensor;
            uint32_t sensor_reads, sensor_errors;
            uint8_t sensor_status;
        } heartbeat;
        struct {
            uint8_t code;
        } exit;
        struct {
            uint32_t seq, offset;
        } output_req;
        struct {
            uint32_t seq, offset;
            uint16_t len; /* 1..TINYML_PROTO_MAX_OUTPUT_CHUNK */
            const int8_t *data;
        } output;
        struct {
            uint32_t boot_id, window, timestamp_ms;
            float fs;
            uint16_t samples; /* per channel in the whole window */
            uint8_t channels, format;
            uint32_t offset;  /* index of the first value of data in the interleaved window */
            tinyml_str_t sensor; /* at most TINYML_PROTO_MAX_SENSOR_NAME bytes */
            uint16_t len;     /* data bytes, 1..TINYML_PROTO_MAX_SAMPLE_BYTES */
            const uint8_t *data;
        } samples;
        struct {
            uint8_t mode; /* enum tinyml_capture_mode */
            uint16_t count;
        } capture;
        struct {
            uint8_t reset; /* 1: forget the state across windows first (a new stream); 0: keep it */
            uint32_t slot; /* the next window's slot of the day */
        } series;
        struct {
            uint32_t seconds; /* since the epoch, as the training data's timestamps give them */
        } time;
        struct {
            uint32_t offset; /* index of the first value in the current window */
            uint16_t n;      /* 1..TINYML_PROTO_MAX_REPLAY_VALUES */
            const uint8_t *values; /* n little-endian float32s (unaligned: copy them out) */
        } replay;
    } u;
} tinyml_msg_t;

/* What tinyml_decoder_feed() found at this byte. */
enum tinyml_feed_result {
    TINYML_FEED_NONE = 0, /* byte consumed, chunk not finished */
    TINYML_FEED_MSG = 1,  /* *msg holds a valid message */
    TINYML_FEED_TEXT = 2, /* a printable (debug text) chunk ended */
    TINYML_FEED_BAD = 3   /* a bad frame ended; see decoder.bad_reason */
};

enum tinyml_bad_reason {
    TINYML_BAD_NONE = 0,
    TINYML_BAD_CRC = 1,
    TINYML_BAD_COBS = 2,
    TINYML_BAD_TOO_LONG = 3,
    TINYML_BAD_UNKNOWN_TYPE = 4,
    TINYML_BAD_LENGTH = 5,
    TINYML_BAD_VERSION = 6
};

typedef struct {
    uint8_t body[TINYML_PROTO_MAX_BODY];
    uint16_t len;       /* decoded body bytes so far */
    uint16_t raw_len;   /* encoded bytes in this chunk */
    uint8_t code;       /* current COBS block code */
    uint8_t remaining;  /* data bytes left in the current block */
    uint8_t overflow;   /* chunk longer than any frame */
    uint8_t printable;  /* every byte so far is printable ASCII/tab/CR/LF */
    uint8_t bad_reason; /* enum tinyml_bad_reason of the last TINYML_FEED_BAD */
    uint32_t frames, bad_frames, text_bytes;
} tinyml_decoder_t;

void tinyml_decoder_init(tinyml_decoder_t *d);
/* Feed one received byte; returns enum tinyml_feed_result and fills *msg on TINYML_FEED_MSG. */
int tinyml_decoder_feed(tinyml_decoder_t *d, uint8_t byte, tinyml_msg_t *msg);

/* Parse one COBS-decoded body (version|type|payload|crc); returns enum tinyml_bad_reason
 * (TINYML_BAD_NONE on success). Pointers in *msg point into body. */
int tinyml_parse_body(const uint8_t *body, size_t len, tinyml_msg_t *msg);

/* Encode into buf; returns the frame length, or 0 if the message is invalid or cap too small. */
size_t tinyml_encode(const tinyml_msg_t *msg, uint8_t *buf, size_t cap);

typedef void (*tinyml_putc_fn)(uint8_t byte, void *ctx);
/* Encode through putc; returns the number of bytes written, or 0 (nothing written) if invalid. */
size_t tinyml_encode_putc(const tinyml_msg_t *msg, tinyml_putc_fn putc, void *ctx);

uint16_t tinyml_crc16(uint16_t crc, const uint8_t *data, size_t len);

/* What the MAC of an AUTH_HELLO or AUTH_RESULT covers, byte by byte through putc: the type, then
 * the payload without the MAC (no COBS, no CRC). Returns the byte count, or 0 (nothing written)
 * for a message that cannot be sent or carries no MAC. */
size_t tinyml_mac_input_putc(const tinyml_msg_t *msg, tinyml_putc_fn putc, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* TINYML_PROTO_H */
