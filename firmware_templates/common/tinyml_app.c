/* The tinyml application, the same on every board.
 *
 * Validation mode (default build): serve the device protocol (docs/protocol.md) on the serial
 * line: INPUT chunks fill the input tensor, INFER runs the model and answers RESULT with the
 * raw output, the decision (label, score) and the latency; OUTPUT_REQ fetches the output bytes a
 * RESULT frame cannot hold (only of the last result: the device keeps one output tensor).
 * Run mode (build with -DTINYML_RUN_MODE=1): read a window from the sensor hook
 * (tinyml_sensor.c), turn it into the model input, infer and send RESULT frames by itself,
 * plus a HEARTBEAT every few seconds; it keeps its last raw windows and streams them on CAPTURE
 * (tinyml_capture.h); the host's TIME places its windows in the day (state across windows).
 * MLPerf Tiny runner commands (build with -DTINYML_EEMBC=1, `make EEMBC=1`): the same line also
 * answers the runner's text commands (tinyml_eembc.h), so its runner can drive this firmware;
 * the line stays clean text (no binary frame, not even the boot HELLO) until the host sends a
 * binary frame itself.
 * A provisioned device (tinyml_device_key.h, `tinyml provision`) answers AUTH_CHALLENGE with AUTH_HELLO
 * and sends its run-mode results as AUTH_RESULT, under its key's MAC (docs/protocol.md). */
#include <string.h>

#include "tinyml_app.h"
#include "tinyml_capture.h"
#include "tinyml_config.h"
#include "tinyml_device_key.h"
#if TINYML_DEVICE_KEY_SET
#include "tinyml_auth.h"
#endif
#include "tinyml_port.h"
#include "tinyml_proto.h"
#include "tinyml_run.h"

static int8_t input[TINYML_INPUT_BYTES];
#if TINYML_DEVICE_FEATURES
/* INPUT fills a raw window; INFER turns it into features and the model input. */
static float window[TINYML_WINDOW_VALUES];
#define RX_TENSOR ((uint8_t *)window)
#define RX_BYTES (TINYML_WINDOW_VALUES * 4u)
#else
#define RX_TENSOR ((uint8_t *)input)
#define RX_BYTES TINYML_INPUT_BYTES
#endif
static int8_t output[TINYML_OUTPUT_BYTES];
static uint8_t tx_frame[TINYML_PROTO_MAX_FRAME];
static tinyml_decoder_t decoder;
static uint32_t boot_id, results, rx_errors;
/* HELLO's arena_bytes: the arena, or TINYML_HELLO_ARENA_FAILED when the runtime could not
 * allocate its tensors at boot (every INFER then fails). */
static uint32_t hello_arena = TINYML_ARENA_BYTES;
/* The seq of the result whose output the output tensor holds (valid while has_result). */
static uint32_t result_seq;
static uint8_t has_result;
#if TINYML_DEVICE_FEATURES && !TINYML_RUN_MODE
/* 1 once INPUT or SERIES came after the last INFER: an INFER repeated without them (the host lost its
 * RESULT and asks again) must not preprocess the window twice, which would step state across windows. */
static uint8_t window_fresh = 1;
static uint32_t preprocess_latency; /* of the last window preprocessed, ACKed again with a repeated INFER */
#endif

#if TINYML_EEMBC
/* The MLPerf runner reads the line as text: binary frames only once the host has sent one. */
static uint8_t host_speaks_binary;
#else
#define host_speaks_binary 1
#endif

static void send(const tinyml_msg_t *msg)
{
    if (!host_speaks_binary)
        return;
    size_t n = tinyml_encode(msg, tx_frame, sizeof tx_frame);
    if (n)
        port_write(tx_frame, n);
}

static tinyml_str_t str(const char *s)
{
    tinyml_str_t out = {s, (uint8_t)strlen(s)};
    return out;
}

static void send_hello_as(uint8_t type, const uint8_t *nonce)
{
    tinyml_msg_t m = {.type = type};
    m.u.hello.proto = TINYML_PROTO_VERSION;
    m.u.hello.board = str(TINYML_BOARD);
    m.u.hello.fw_version = str(TINYML_FW_VERSION);
    m.u.hello.device_id = str(TINYML_DEVICE_ID);
    memcpy(m.u.hello.model_hash, tinyml_model_hash, 8);
    m.u.hello.arena_bytes = hello_arena;
    m.u.hello.input_bytes = RX_BYTES;
    m.u.hello.output_bytes = TINYML_OUTPUT_BYTES;
    m.u.hello.boot_id = boot_id;
    m.u.hello.latency_unit = TINYML_LATENCY_UNIT;
#if TINYML_DEVICE_KEY_SET
    if (type == TINYML_MSG_AUTH_HELLO) {
        memcpy(m.nonce, nonce, TINYML_PROTO_NONCE_BYTES);
        if (tinyml_auth_sign(&m, tinyml_device_key) != 0)
            return;
    }
#else
    (void)nonce;
#endif
    send(&m);
}

static void send_hello(void)
{
    send_hello_as(TINYML_MSG_HELLO, NULL);
}

static void send_error(uint8_t code, const char *text)
{
    tinyml_msg_t m = {.type = TINYML_MSG_ERROR};
    m.u.error.code = code;
    m.u.error.message = str(text);
    send(&m);
}

static void send_ack(uint8_t for_type, uint32_t value)
{
    tinyml_msg_t m = {.type = TINYML_MSG_ACK};
    m.u.ack.for_type = for_type;
    m.u.ack.value = value;
    send(&m);
}

#if TINYML_RUN_MODE
/* The time of day from the host's TIME frame (docs/protocol.md): time_day_ms into the day when port_millis()
 * read time_at. Until the first TIME since boot a preprocessing with state across windows counts its slots
 * from boot (the first window is slot 0); the first TIME starts that state afresh at the next window, and
 * from then on each window's slot is the one of its start: the moment its last sample was read minus the
 * window's span, as the training data's timestamps place it (tinyml/data/features_series.py). */
#define DAY_MS 86400000u
static uint8_t has_time, time_fresh;
static uint32_t time_day_ms, time_at;

/* ms into the day now; moves time_at on by whole days, so the ms counter's wrap (49 days) never matters */
static uint32_t ms_of_day(void)
{
    uint32_t elapsed = port_millis() - time_at;
    while (elapsed >= DAY_MS) {
        time_at += DAY_MS;
        elapsed -= DAY_MS;
    }
    return (time_day_ms + elapsed) % DAY_MS;
}

/* ACK(TIME, the slot a window read now gets), or ACK(TIME, 0xFFFFFFFF) when no state needs the time */
static void set_time(uint32_t seconds)
{
    time_day_ms = (seconds % 86400u) * 1000u;
    time_at = port_millis();
    if (!has_time)
        time_fresh = 1;
    has_time = 1;
    long slot = tinyml_preprocess_slot_ending(time_day_ms);
    send_ack(TINYML_MSG_TIME, slot < 0 ? 0xFFFFFFFFu : (uint32_t)slot);
}

/* Before a window just read is preprocessed: its slot of the day, once the time is known */
static void place_window(void)
{
    if (!has_time)
        return;
    long slot = tinyml_preprocess_slot_ending(ms_of_day());
    if (slot >= 0) {
        (void)tinyml_preprocess_place(time_fresh, (uint32_t)slot);
        time_fresh = 0;
    }
}
#endif

/* Label and score as docs/protocol.md defines them for the model's task. Integer arithmetic
 * plus one int-to-float conversion and one division: some cores' libgcc (Xtensa lx106) lack
 * soft-float add and multiply, and the result is the same on every board. */
static void decide(uint8_t *label, float *score)
{
#if TINYML_TASK_ANOMALY
    /* Reconstruction error in input-scale units with a Q16 output/input scale ratio:
     * score = sum(d^2) * in_scale^2 / (2^32 * n) with d = ((qi - zi) << 16) - ratio * (qo - zo);
     * with a guard (tinyml_guard.h), at least threshold * (1 + excess) when an input is outside; with a slope
     * guard, at least threshold * (1 + (S - h) / h) while its CUSUM S is above h; with a stuck guard, at least
     * threshold * (1 + (r - bound) / bound) when a sample repeats r > bound times in a row. */
    uint64_t sum = 0;
    for (unsigned i = 0; i < TINYML_OUTPUT_BYTES; i++) {
        int32_t d = (((int32_t)input[i] - TINYML_INPUT_ZERO_POINT) * 65536) -
                    TINYML_OUTPUT_TO_INPUT_Q16 * ((int32_t)output[i] - TINYML_OUTPUT_ZERO_POINT);
        sum += (uint64_t)((int64_t)d * d);
    }
#if TINYML_HAS_GUARD
    sum = tinyml_guard_sum(sum, tinyml_guard_excess(input, tinyml_guard_lo, tinyml_guard_hi, TINYML_INPUT_BYTES),
                           TINYML_THRESHOLD_SUM, TINYML_GUARD_STEP_SUM);
#endif
#if TINYML_HAS_SLOPE_GUARD
    sum = tinyml_guard_sum(sum, tinyml_ifeat_slope_over(), TINYML_THRESHOLD_SUM, TINYML_SLOPE_STEP_SUM);
#endif
#if TINYML_HAS_STUCK_GUARD
    sum = tinyml_guard_sum(sum, tinyml_ifeat_stuck_over(), TINYML_THRESHOLD_SUM, TINYML_STUCK_STEP_SUM);
#endif
    *score = (float)sum / TINYML_SCORE_DIVISOR;
#if TINYML_HAS_THRESHOLD
    *label = sum > TINYML_THRESHOLD_SUM ? 1u : 0u;
#if TINYML_HAS_STUCK_GUARD
    if (tinyml_ifeat_stuck_over() > 0)
        *label = TINYML_LABEL_SENSOR_FAULT; /* docs/protocol.md: a frozen reading, alerted at once */
#endif
#else
    *label = TINYML_LABEL_UNDECIDED;
#endif
#else
    unsigned best = 0;
    for (unsigned i = 1; i < TINYML_OUTPUT_BYTES; i++)
        if (output[i] > output[best])
            best = i;
    *score = (float)((int32_t)output[best] - TINYML_OUTPUT_ZERO_POINT) / TINYML_OUTPUT_INV_SCALE;
#if TINYML_OUTPUT_BYTES == 1
    *label = *score >= 0.5f ? 1u : 0u; /* one sigmoid output */
#else
    *label = (uint8_t)best;
#endif
#endif
}

/* Run the model on the input tensor and send the RESULT; ``sign``: as AUTH_RESULT when the
 * device has a key (run mode: the results the gateway stores). */
static void infer_and_report(uint32_t seq, int sign)
{
    uint32_t start = port_latency_counter();
    int rc = tinyml_model_invoke(input, output);
    uint32_t latency = port_latency_counter() - start;
    has_result = rc == 0;
    result_seq = seq;
    if (rc != 0) {
        send_error(TINYML_ERR_INFERENCE, "inference failed");
        return;
    }
    tinyml_msg_t m = {.type = TINYML_MSG_RESULT};
    m.u.result.seq = seq;
    m.u.result.boot_id = boot_id;
    m.u.result.timestamp_ms = port_millis();
    m.u.result.latency = latency;
    m.u.result.latency_unit = TINYML_LATENCY_UNIT;
    decide(&m.u.result.label, &m.u.result.score);
    /* A frame carries at most TINYML_PROTO_MAX_OUTPUT output bytes; larger outputs send their head
     * and the host fetches the rest with OUTPUT_REQ. */
    m.u.result.n = TINYML_OUTPUT_BYTES < TINYML_PROTO_MAX_OUTPUT ? TINYML_OUTPUT_BYTES : TINYML_PROTO_MAX_OUTPUT;
    m.u.result.output = output;
    results++;
#if TINYML_DEVICE_KEY_SET
    if (sign) {
        m.type = TINYML_MSG_AUTH_RESULT;
        if (m.u.result.n > TINYML_PROTO_MAX_AUTH_OUTPUT)
            m.u.result.n = TINYML_PROTO_MAX_AUTH_OUTPUT;
        if (tinyml_auth_sign(&m, tinyml_device_key) != 0)
            return;
    }
#else
    (void)sign;
#endif
    send(&m);
}

#if TINYML_EEMBC
#include "tinyml_eembc.h"
/* The benchmark decides the input format the runner sends (tinyml_eembc.h). */
#if defined(TINYML_EEMBC_kws01)
#define EEMBC_MODEL_ID "kws01"
#define EEMBC_FORMATS TINYML_EEMBC_BYTES
#elif defined(TINYML_EEMBC_vww01)
#define EEMBC_MODEL_ID "vww01"
#define EEMBC_FORMATS TINYML_EEMBC_UINT8
#elif defined(TINYML_EEMBC_ic01) || (!defined(TINYML_EEMBC_ad01) && !TINYML_TASK_ANOMALY)
#define EEMBC_MODEL_ID "ic01"
#define EEMBC_FORMATS TINYML_EEMBC_UINT8
#else
#define EEMBC_MODEL_ID "ad01"
#define EEMBC_FORMATS (TINYML_EEMBC_BYTES | TINYML_EEMBC_FLOAT32)
#endif
#if TINYML_DEVICE_FEATURES
/* Feature models take their raw float32 window, as in validation, and compute features in C. */
#define EEMBC_BUFFER RX_TENSOR
#define EEMBC_BUFFER_SIZE RX_BYTES
#define EEMBC_VALUES RX_BYTES
#define EEMBC_INPUT ((int8_t *)RX_TENSOR)
#define EEMBC_ACCEPTS TINYML_EEMBC_BYTES
#elif EEMBC_FORMATS & TINYML_EEMBC_FLOAT32
static uint8_t eembc_buffer[4u * TINYML_INPUT_BYTES]; /* the float32 input, kept for the score */
#define EEMBC_BUFFER eembc_buffer
#define EEMBC_BUFFER_SIZE sizeof eembc_buffer
#define EEMBC_VALUES TINYML_INPUT_BYTES
#define EEMBC_INPUT input
#define EEMBC_ACCEPTS EEMBC_FORMATS
#else
#define EEMBC_BUFFER ((uint8_t *)input)
#define EEMBC_BUFFER_SIZE sizeof input
#define EEMBC_VALUES TINYML_INPUT_BYTES
#define EEMBC_INPUT input
#define EEMBC_ACCEPTS EEMBC_FORMATS
#endif
static tinyml_eembc_t eembc;

static int eembc_infer(void *ctx)
{
    (void)ctx;
    has_result = 0; /* the output tensor no longer holds the last RESULT's output */
#if TINYML_DEVICE_FEATURES && !TINYML_RUN_MODE
    tinyml_preprocess(window, input);
#endif
    return tinyml_model_invoke(input, output);
}

static void eembc_write(const char *text, size_t len, void *ctx)
{
    (void)ctx;
    port_write((const uint8_t *)text, len);
}

static uint32_t eembc_micros(void *ctx)
{
    (void)ctx;
    return port_micros();
}

static float dequantized_output(unsigned i)
{
    return (float)((int32_t)output[i] - TINYML_OUTPUT_ZERO_POINT) * TINYML_OUTPUT_SCALE;
}

/* What the runner compares, computed as the MLPerf Tiny reference firmware does in float32 and
 * printed as its "%0.3f": the anomaly score, the mean squared difference between the dequantized
 * output and the input the host sent (the float32 values, or the dequantized int8 input); or
 * every dequantized output. */
static void eembc_results(void *ctx)
{
    (void)ctx;
#if TINYML_TASK_ANOMALY
    float sum = 0.0f;
    for (unsigned i = 0; i < TINYML_OUTPUT_BYTES; i++) {
#if TINYML_DEVICE_FEATURES
        float x = (float)((int32_t)input[i] - TINYML_INPUT_ZERO_POINT) * TINYML_INPUT_SCALE;
#else
        float x = tinyml_eembc_input_value(&eembc, i);
#endif
        float d = dequantized_output(i) - x;
        sum += d * d;
    }
    tinyml_eembc_print_f3(&eembc, sum / (float)TINYML_OUTPUT_BYTES);
#else
    for (unsigned i = 0; i < TINYML_OUTPUT_BYTES; i++) {
        if (i)
            tinyml_eembc_print(&eembc, ",");
        tinyml_eembc_print_f3(&eembc, dequantized_output(i));
    }
#endif
}

static void eembc_start(void)
{
    eembc.buffer = EEMBC_BUFFER;
    eembc.buffer_size = EEMBC_BUFFER_SIZE;
    eembc.input = EEMBC_INPUT;
    eembc.values = EEMBC_VALUES;
    eembc.formats = EEMBC_ACCEPTS;
    eembc.input_scale = TINYML_INPUT_SCALE;
    eembc.input_zero_point = TINYML_INPUT_ZERO_POINT;
#if EEMBC_ACCEPTS & TINYML_EEMBC_FLOAT32
    eembc.quantize = tinyml_eembc_quantize;
#endif
    eembc.infer = eembc_infer;
    eembc.write = eembc_write;
    eembc.micros = eembc_micros;
    eembc.results = eembc_results;
    eembc.name = "tinyml";
    eembc.model_id = EEMBC_MODEL_ID;
    tinyml_eembc_start(&eembc);
}
#endif

/* Up to one frame of the last result's output from the requested offset. */
static void send_output(uint32_t seq, uint32_t offset)
{
    if (!has_result || seq != result_seq) {
        send_error(TINYML_ERR_UNSUPPORTED, "no output for this seq: the device keeps only its last result");
        return;
    }
    if (offset >= TINYML_OUTPUT_BYTES) {
        send_error(TINYML_ERR_BAD_LENGTH, "offset outside the output tensor");
        return;
    }
    tinyml_msg_t m = {.type = TINYML_MSG_OUTPUT};
    m.u.output.seq = seq;
    m.u.output.offset = offset;
    m.u.output.len = (uint16_t)(TINYML_OUTPUT_BYTES - offset < TINYML_PROTO_MAX_OUTPUT_CHUNK
                                    ? TINYML_OUTPUT_BYTES - offset
                                    : TINYML_PROTO_MAX_OUTPUT_CHUNK);
    m.u.output.data = output + offset;
    send(&m);
}

/* Handle one host message; returns an exit code to stop with, or -1 to go on. */
static int handle(const tinyml_msg_t *msg)
{
    switch (msg->type) {
    case TINYML_MSG_INPUT:
#if TINYML_RUN_MODE
        send_error(TINYML_ERR_UNSUPPORTED, "run mode reads the sensor");
#else
        if (msg->u.input.offset > RX_BYTES || msg->u.input.len > RX_BYTES - msg->u.input.offset) {
            send_error(TINYML_ERR_BAD_LENGTH, "input chunk outside the input tensor");
            break;
        }
        memcpy(RX_TENSOR + msg->u.input.offset, msg->u.input.data, msg->u.input.len);
        send_ack(TINYML_MSG_INPUT, msg->u.input.offset + msg->u.input.len);
#if TINYML_DEVICE_FEATURES
        window_fresh = 1;
#endif
#endif
        break;
    case TINYML_MSG_INFER:
#if TINYML_DEVICE_FEATURES && !TINYML_RUN_MODE
        if (window_fresh || !has_result || msg->u.infer.seq != result_seq) {
            uint32_t start = port_latency_counter();
            tinyml_preprocess(window, input);
            preprocess_latency = port_latency_counter() - start;
            window_fresh = 0;
        }
        /* ACK(INFER, latency of the preprocessing) precedes the RESULT, whose latency is the model's */
        send_ack(TINYML_MSG_INFER, preprocess_latency);
#endif
        infer_and_report(msg->u.infer.seq, 0);
        break;
    case TINYML_MSG_SERIES: /* validation, and run mode with the replay sensor (`tinyml replay` starts streams) */
#if TINYML_DEVICE_FEATURES && (!TINYML_RUN_MODE || TINYML_SENSOR_REPLAY)
    {
        int rc = tinyml_preprocess_place(msg->u.series.reset, msg->u.series.slot);
        if (rc == -1)
            send_error(TINYML_ERR_UNSUPPORTED, "no state across windows in this model's preprocessing");
        else if (rc != 0)
            send_error(TINYML_ERR_BAD_LENGTH, "slot outside the day of the daily_cycle feature");
        else {
            send_ack(TINYML_MSG_SERIES, msg->u.series.slot);
#if !TINYML_RUN_MODE
            window_fresh = 1;
#else
            tinyml_run_restart(); /* a new stream, or a gap: the next window is read whole */
#endif
        }
        break;
    }
#else
        send_error(TINYML_ERR_UNSUPPORTED, "SERIES places raw validation or replayed windows; this build takes none");
        break;
#endif
    case TINYML_MSG_TIME:
#if TINYML_RUN_MODE
        set_time(msg->u.time.seconds);
#else
        send_error(TINYML_ERR_UNSUPPORTED, "TIME places run-mode windows in the day; validation takes SERIES");
#endif
        break;
    case TINYML_MSG_OUTPUT_REQ:
        send_output(msg->u.output_req.seq, msg->u.output_req.offset);
        break;
    case TINYML_MSG_HELLO_REQ:
        send_hello();
        break;
#if TINYML_DEVICE_KEY_SET
    case TINYML_MSG_AUTH_CHALLENGE:
        send_hello_as(TINYML_MSG_AUTH_HELLO, msg->nonce);
        break;
#endif
    case TINYML_MSG_CAPTURE:
        tinyml_capture_request(msg->u.capture.mode, msg->u.capture.count);
        break;
    case TINYML_MSG_REPLAY:
#if TINYML_RUN_MODE && TINYML_SENSOR_REPLAY
    {
        long filled = tinyml_replay_push(msg->u.replay.offset, msg->u.replay.values, msg->u.replay.n);
        if (filled < 0)
            send_error(TINYML_ERR_BAD_LENGTH, "replay chunk does not continue the window");
        else
            send_ack(TINYML_MSG_REPLAY, (uint32_t)filled);
        break;
    }
#else
        send_error(TINYML_ERR_UNSUPPORTED, "no replay sensor: render with --sensor replay and build MODE=run");
        break;
#endif
    case TINYML_MSG_EXIT:
#if TINYML_EMULATED
        return msg->u.exit.code;
#else
        send_error(TINYML_ERR_UNSUPPORTED, "a real board does not exit");
        break;
#endif
    default:
        send_error(TINYML_ERR_UNKNOWN_TYPE, "unexpected message type");
        break;
    }
    return -1;
}

/* An intact frame of an unknown type (its CRC held: a newer host's command) gets ERROR 2, so the
 * host stops asking; anything else may have been garbled on the line: ERROR 1, the host resends.
 * (A short body is judged before its CRC, so "bad length" cannot tell garbling from a bad layout.) */
static void report_bad_frame(uint8_t reason)
{
    if (reason == TINYML_BAD_UNKNOWN_TYPE)
        send_error(TINYML_ERR_UNKNOWN_TYPE, "unknown message type");
    else
        send_error(TINYML_ERR_BAD_FRAME, "bad frame");
}

/* Feed every waiting byte to the decoder; returns an exit code or -1. */
static int poll_serial(void)
{
    int c;
    while ((c = port_read_byte()) >= 0) {
        tinyml_msg_t msg;
#if TINYML_EEMBC
        tinyml_eembc_feed(&eembc, (uint8_t)c);
#endif
        int r = tinyml_decoder_feed(&decoder, (uint8_t)c, &msg);
#if TINYML_EEMBC
        if (r == TINYML_FEED_BAD || r == TINYML_FEED_MSG)
            host_speaks_binary = 1;
#endif
        if (r == TINYML_FEED_BAD) {
            rx_errors++;
            report_bad_frame(decoder.bad_reason);
        } else if (r == TINYML_FEED_MSG) {
            int code = handle(&msg);
            if (code >= 0)
                return code;
        }
    }
    return -1;
}

#if TINYML_RUN_MODE

static void send_heartbeat(void)
{
    tinyml_msg_t m = {.type = TINYML_MSG_HEARTBEAT};
    m.u.heartbeat.boot_id = boot_id;
    m.u.heartbeat.uptime_ms = port_millis();
    m.u.heartbeat.results = results;
    m.u.heartbeat.rx_errors = rx_errors;
#if TINYML_SENSOR
    tinyml_sensor_stats_t stats;
    (void)tinyml_sensor_poll_error(&stats);
    m.u.heartbeat.has_sensor = 1;
    m.u.heartbeat.sensor_reads = stats.reads;
    m.u.heartbeat.sensor_errors = stats.errors;
    m.u.heartbeat.sensor_status = stats.status;
#endif
    send(&m);
}

/* A sensor that enters a failing status says so once in an ERROR frame (HEARTBEAT counts on). */
static void report_sensor(void)
{
#if TINYML_SENSOR
    tinyml_sensor_stats_t stats;
    const char *why = tinyml_sensor_poll_error(&stats);
    if (why)
        send_error(TINYML_ERR_SENSOR, why);
#endif
}
#endif

int tinyml_main(void)
{
    port_init();
    boot_id = port_boot_id();
    tinyml_decoder_init(&decoder);
    if (tinyml_model_init() != 0)
        hello_arena = TINYML_HELLO_ARENA_FAILED;
    send_hello(); /* not in MLPerf mode: the host asks with HELLO_REQ there */
#if TINYML_EEMBC
    eembc_start();
#endif
#if TINYML_RUN_MODE
    uint32_t seq = 0, last_beat = port_millis();
    for (;;) {
        int code = poll_serial();
        if (code >= 0)
            return code;
        if (has_time)
            (void)ms_of_day(); /* keeps time_at within a day of now */
        if (tinyml_run_read_window() == 0) {
            place_window();
            tinyml_preprocess(tinyml_run_window(), input);
            infer_and_report(seq, 1);
            tinyml_capture_window(tinyml_run_window(), boot_id, seq++, port_millis());
        }
#if TINYML_RUN_IDLE
        else {
            port_idle(); /* until a byte arrives or the next millisecond tick */
        }
#endif
        report_sensor();
        if (port_millis() - last_beat >= TINYML_HEARTBEAT_MS) {
            last_beat = port_millis();
            send_heartbeat();
        }
    }
#else
    for (;;) {
        int code = poll_serial();
        if (code >= 0)
            return code;
        port_idle();
    }
#endif
}
