/* The C encoder refuses what the protocol cannot carry (run by tests/test_protocol_c.py).
 * Prints one line per refused case that was wrongly accepted; exit status = their count. */
#include <stdio.h>

#include "tinyml_proto.h"

static uint8_t buf[TINYML_PROTO_MAX_FRAME];
static int8_t big[TINYML_PROTO_MAX_OUTPUT_CHUNK + 1];
static uint8_t data[TINYML_PROTO_MAX_INPUT_CHUNK + 1];

static int refused(const char *name, const tinyml_msg_t *m)
{
    if (tinyml_encode(m, buf, sizeof buf) != 0) {
        printf("accepted: %s\n", name);
        return 1;
    }
    return 0;
}

int main(void)
{
    int failures = 0;
    tinyml_msg_t m = {0};
    m.type = 0x42;
    failures += refused("unknown type", &m);
    m.type = TINYML_MSG_INPUT;
    m.u.input.data = data;
    m.u.input.len = 0;
    failures += refused("empty INPUT", &m);
    m.u.input.len = TINYML_PROTO_MAX_INPUT_CHUNK + 1;
    failures += refused("INPUT over 256 bytes", &m);
    m.u.input.data = NULL;
    m.u.input.len = 4;
    failures += refused("INPUT without data", &m);
    m.type = TINYML_MSG_RESULT;
    m.u.result.n = TINYML_PROTO_MAX_OUTPUT + 1;
    m.u.result.output = big;
    failures += refused("RESULT over 484 outputs", &m);
    m.u.result.n = TINYML_PROTO_MAX_OUTPUT; /* the largest RESULT fits exactly */
    if (tinyml_encode(&m, buf, sizeof buf) == 0) {
        printf("refused: RESULT with 484 outputs\n");
        failures++;
    }
    m.type = TINYML_MSG_AUTH_RESULT; /* the MAC takes 8 of RESULT's output bytes */
    m.u.result.n = TINYML_PROTO_MAX_AUTH_OUTPUT + 1;
    failures += refused("AUTH_RESULT over 476 outputs", &m);
    m.u.result.n = TINYML_PROTO_MAX_AUTH_OUTPUT;
    if (tinyml_encode(&m, buf, sizeof buf) == 0) {
        printf("refused: AUTH_RESULT with 476 outputs\n");
        failures++;
    }
    m.type = TINYML_MSG_OUTPUT;
    m.u.output.data = big;
    m.u.output.len = 0;
    failures += refused("empty OUTPUT", &m);
    m.u.output.len = TINYML_PROTO_MAX_OUTPUT_CHUNK + 1;
    failures += refused("OUTPUT over 500 bytes", &m);
    m.u.output.len = TINYML_PROTO_MAX_OUTPUT_CHUNK; /* the largest OUTPUT fits exactly */
    if (tinyml_encode(&m, buf, sizeof buf) == 0) {
        printf("refused: OUTPUT with 500 bytes\n");
        failures++;
    }
    m.u.output.data = NULL;
    m.u.output.len = 4;
    failures += refused("OUTPUT without data", &m);
    m.type = TINYML_MSG_SAMPLES;
    m.u.samples.data = (const uint8_t *)big;
    m.u.samples.len = 0;
    failures += refused("empty SAMPLES", &m);
    m.u.samples.len = TINYML_PROTO_MAX_SAMPLE_BYTES + 1;
    failures += refused("SAMPLES over 448 bytes", &m);
    m.u.samples.len = TINYML_PROTO_MAX_SAMPLE_BYTES;
    m.u.samples.sensor.ptr = (const char *)data;
    m.u.samples.sensor.len = TINYML_PROTO_MAX_SENSOR_NAME + 1;
    failures += refused("SAMPLES sensor name over 32 bytes", &m);
    m.u.samples.sensor.len = TINYML_PROTO_MAX_SENSOR_NAME; /* the largest SAMPLES fits */
    if (tinyml_encode(&m, buf, sizeof buf) == 0) {
        printf("refused: SAMPLES with 448 bytes and a 32-byte sensor name\n");
        failures++;
    }
    m.u.samples.data = NULL;
    m.u.samples.len = 4;
    failures += refused("SAMPLES without data", &m);
    m.type = TINYML_MSG_HELLO;
    m.u.hello.board.len = 200;
    m.u.hello.board.ptr = (const char *)data;
    m.u.hello.fw_version.len = 200;
    m.u.hello.fw_version.ptr = (const char *)data;
    m.u.hello.device_id.len = 200;
    m.u.hello.device_id.ptr = (const char *)data;
    failures += refused("HELLO over 508 payload bytes", &m);
    m.u.hello.device_id.ptr = NULL;
    failures += refused("HELLO string without pointer", &m);
    m.type = TINYML_MSG_INFER;
    if (tinyml_encode_putc(&m, NULL, NULL) != 0) {
        printf("accepted: NULL putc\n");
        failures++;
    }
    if (tinyml_encode(&m, buf, 5) != 0) {
        printf("accepted: buffer too small\n");
        failures++;
    }
    return failures;
}
