/* Host harness for tinyml_eembc (run by tests/test_protocol_eembc.py): stdin bytes go to the
 * EEMBC command parser and to the binary protocol decoder, as firmware would feed them.
 * The fake model sums its 16 input bytes; the clock advances 250 us per reading. */
#include <stdio.h>

#include "tinyml_eembc.h"
#include "tinyml_proto.h"

static uint8_t input[16];
static int32_t last_sum;
static uint32_t inferences, clock_us;

static int infer(void *ctx)
{
    size_t i;
    (void)ctx;
    last_sum = 0;
    for (i = 0; i < sizeof input; i++) {
        last_sum += (int8_t)input[i];
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
    tinyml_eembc_print_fixed(&runner, last_sum * 125, 3); /* the sum times 0.125 */
    tinyml_eembc_print(&runner, ",");
    tinyml_eembc_print_u32(&runner, inferences);
}

int main(void)
{
    static tinyml_decoder_t dec;
    tinyml_msg_t msg;
    int c;
    runner.input = input;
    runner.input_size = sizeof input;
    runner.infer = infer;
    runner.write = write_text;
    runner.micros = micros;
    runner.results = results;
    runner.name = "tinyml";
    runner.model_id = "ad01";
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
