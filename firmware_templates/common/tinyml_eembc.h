/* The MLPerf Tiny / EEMBC runner's text commands, as a small add-on to the tinyml protocol.
 *
 * Lets the MLPerf Tiny benchmark runner (mlcommons/tiny, benchmark/runner) drive a tinyml
 * firmware: ASCII commands ending in '%' (name, profile, help, timestamp, db load N, db HEX,
 * db print, infer [N [W]], results), answers ending in "m-ready". C99, no heap, no printf.
 *
 * Input formats: the runner sends each benchmark's dataset file as it is stored. `db load N`
 * announces N bytes; when they have all arrived they become the model input according to N:
 *   N = values      TINYML_EEMBC_BYTES: the int8 input tensor as it is (kws01; also ad01)
 *                   TINYML_EEMBC_UINT8: uint8 pixels, input = pixel - 128 (vww01, ic01)
 *   N = 4 * values  TINYML_EEMBC_FLOAT32: little-endian float32 values, quantized here with
 *                   the model's input scale and zero point (ad01: 640 floats, 2,560 bytes)
 * Anything else, and any bad `db` line, is answered with an "e-[...]" line and leaves no input
 * loaded: `infer` then answers an error instead of "m-lap-us-"/"m-results-" lines, which the
 * runner needs, so a failed load cannot be scored as if it were the previous input.
 *
 * Feed every received byte to tinyml_eembc_feed() as well as to tinyml_decoder_feed(): the
 * commands are printable text, which the binary decoder counts as text and skips, and a
 * binary frame is ignored here (its second byte, 0x01, is not printable, and that spoils
 * the line until the next '%', LF or 0x00), so both protocols share one UART.
 */
#ifndef TINYML_EEMBC_H
#define TINYML_EEMBC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TINYML_EEMBC_LINE 80u /* the runner's EE_CMD_SIZE */

/* Input formats (a bit set in tinyml_eembc_t.formats; BYTES and UINT8 exclude each other). */
#define TINYML_EEMBC_BYTES 1u
#define TINYML_EEMBC_UINT8 2u
#define TINYML_EEMBC_FLOAT32 4u

typedef struct {
    /* filled by the firmware */
    uint8_t *buffer;              /* `db` bytes land here ... */
    size_t buffer_size;
    int8_t *input;                /* ... and become this model input (may be the buffer itself) */
    size_t values;                /* input values (bytes of the int8 tensor) */
    unsigned formats;             /* TINYML_EEMBC_* accepted */
    float input_scale;            /* the model's input quantization, for FLOAT32 */
    int32_t input_zero_point;
    /* FLOAT32 also needs this set to tinyml_eembc_quantize: only then is its double
     * arithmetic linked in, so firmware without float32 input stays small */
    int8_t (*quantize)(float x, float scale, int32_t zero_point);
    int (*infer)(void *ctx);      /* run the model on input; 0 on success */
    void (*write)(const char *text, size_t len, void *ctx); /* to the UART */
    uint32_t (*micros)(void *ctx);                          /* a microsecond clock */
    void (*results)(void *ctx);   /* print the result values, e.g. via tinyml_eembc_print_f3 */
    const char *name;             /* e.g. "tinyml" */
    const char *model_id;         /* ad01, kws01, vww01, ic01 */
    void *ctx;
    /* state */
    char line[TINYML_EEMBC_LINE + 1];
    size_t len;
    uint8_t spoiled;              /* an over-long line or a non-text byte: ignore until the end */
    uint8_t loaded_format;        /* the format of the input loaded, 0 while none is */
    uint8_t has_results;          /* the last infer ran on the loaded input and succeeded */
    size_t expected, loaded;      /* bytes announced by `db load` (0: no load under way), received */
} tinyml_eembc_t;

/* Reset the state (keeps the callbacks) and print "m-init-done" and "m-ready". */
void tinyml_eembc_start(tinyml_eembc_t *e);
/* Feed one received byte; runs a command when its '%' arrives. */
void tinyml_eembc_feed(tinyml_eembc_t *e, uint8_t byte);

/* Input value i as the host meant it: the float it sent (FLOAT32), else the int8 input
 * dequantized, (float)(q - zero_point) * scale, as the MLPerf Tiny reference firmware does. */
float tinyml_eembc_input_value(const tinyml_eembc_t *e, size_t i);
/* float -> int8 as tinyml's host reference quantizes (tinyml.model.interpreters.quantize_input):
 * round half to even of (double)x / scale + zero_point, clamped to -128..127. */
int8_t tinyml_eembc_quantize(float x, float scale, int32_t zero_point);

/* Helpers for the results callback: text, an unsigned decimal, and a float exactly as
 * printf("%0.3f") prints it (correctly rounded, ties to even; "inf", "nan") without printf. */
void tinyml_eembc_print(const tinyml_eembc_t *e, const char *text);
void tinyml_eembc_print_u32(const tinyml_eembc_t *e, uint32_t value);
void tinyml_eembc_print_f3(const tinyml_eembc_t *e, float value);

#ifdef __cplusplus
}
#endif

#endif /* TINYML_EEMBC_H */
