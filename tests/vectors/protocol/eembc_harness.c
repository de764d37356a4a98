/* Host harness for tinyml_eembc (run by tests/test_protocol_eembc.py).
 *
 *   eembc_harness FORMATS    stdin bytes go to the EEMBC command parser and to the binary
 *                            protocol decoder, as firmware would feed them. FORMATS is the
 *                            TINYML_EEMBC_* bit set. The fake model has 16 input values
 *                            (scale 0.5, zero point -3) and sums them; the clock advances
 *                            250 us per reading. Results: sum * 0.125, inferences, input_value(0).
 *   eembc_harness f3         each stdin line is a float32's bits in hex: print it as "%0.3f" does
 *   eembc_harness quant S Z  each stdin line is a float32's bits in hex: quantize it with the
 *                            scale whose bits are S (hex) and zero point Z
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyml_eembc.h"
#include "tinyml_proto.h"

#define VALUES 16

static uint8_t buffer[4 * VALUES];
static int8_t input[VALUES];
static int32_t last_sum;
static uint32_t inferences, clock_us;

static int infer(void *ctx)
{
    size_t i;
    (void)ctx;
    last_sum = 0;
    for (i = 0; i < VALUES; i++) {
        last_sum += input[i];
    }
    inferences++;
    return 0;
}

static void write_text(const char *text, size_t len, void *ctx)
{
    (void)ctx;
    fwrite(text, 1, len, stdout);
}

static uint32_t micros(void *ctx)
{
    (void)ctx;
    return clock_us += 250u;
}

static tinyml_eembc_t runner;

static void results(void *ctx)
{
    (void)ctx;
    tinyml_eembc_print_f3(&runner, (float)last_sum * 0.125f);
    tinyml_eembc_print(&runner, ",");
    tinyml_eembc_print_u32(&runner, inferences);
    tinyml_eembc_print(&runner, ",");
    tinyml_eembc_print_f3(&runner, tinyml_eembc_input_value(&runner, 0));
}

static float from_bits(const char *hex)
{
    uint32_t bits = (uint32_t)strtoul(hex, NULL, 16);
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static int per_line(int quantize, float scale, int32_t zero_point)
{
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (quantize) {
            printf("%d\n", tinyml_eembc_quantize(from_bits(line), scale, zero_point));
        } else {
            tinyml_eembc_print_f3(&runner, from_bits(line));
            printf("\n");
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static tinyml_decoder_t dec;
    tinyml_msg_t msg;
    int c;
    runner.buffer = buffer;
    runner.buffer_size = sizeof buffer;
    runner.input = input;
    runner.values = VALUES;
    runner.formats = argc > 1 ? (unsigned)atoi(argv[1]) : TINYML_EEMBC_BYTES;
    runner.input_scale = 0.5f;
    runner.input_zero_point = -3;
    runner.quantize = tinyml_eembc_quantize;
    runner.infer = infer;
    runner.write = write_text;
    runner.micros = micros;
    runner.results = results;
    runner.name = "tinyml";
    runner.model_id = "ad01";
    if (argc > 1 && strcmp(argv[1], "f3") == 0) {
        return per_line(0, 0.0f, 0);
    }
    if (argc > 3 && strcmp(argv[1], "quant") == 0) {
        return per_line(1, from_bits(argv[2]), (int32_t)atoi(argv[3]));
    }
    tinyml_decoder_init(&dec);
    tinyml_eembc_start(&runner);
    while ((c = getchar()) != EOF) {
        tinyml_eembc_feed(&runner, (uint8_t)c);
        if (tinyml_decoder_feed(&dec, (uint8_t)c, &msg) == TINYML_FEED_MSG) {
            printf("FRAME type=%u\r\n", (unsigned)msg.type);
        }
    }
    return 0;
}
