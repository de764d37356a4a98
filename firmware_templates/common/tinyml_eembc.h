/* The MLPerf Tiny / EEMBC runner's text commands, as a small add-on to the tinyml protocol.
 *
 * Lets the MLPerf Tiny benchmark runner (mlcommons/tiny, benchmark/runner) drive a tinyml
 * firmware: ASCII commands ending in '%' (name, profile, timestamp, db load N, db HEX,
 * db print, infer N [W], results), answers ending in "m-ready". C99, no heap, no printf.
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

typedef struct {
    /* filled by the firmware */
    uint8_t *input;               /* the model's input tensor */
    size_t input_size;
    int (*infer)(void *ctx);      /* run the model on input; 0 on success */
    void (*write)(const char *text, size_t len, void *ctx); /* to the UART */
    uint32_t (*micros)(void *ctx);                          /* a microsecond clock */
    void (*results)(void *ctx);   /* print the result values, e.g. via tinyml_eembc_print_* */
    const char *name;             /* e.g. "tinyml" */
    const char *model_id;         /* ad01, kws01, vww01, ic01 */
    void *ctx;
    /* state */
    char line[TINYML_EEMBC_LINE + 1];
    size_t len;
    uint8_t spoiled;              /* an over-long line or a non-text byte: ignore until the end */
    size_t expected, loaded;
} tinyml_eembc_t;

/* Reset the state (keeps the callbacks) and print "m-init-done" and "m-ready". */
void tinyml_eembc_start(tinyml_eembc_t *e);
/* Feed one received byte; runs a command when its '%' arrives. */
void tinyml_eembc_feed(tinyml_eembc_t *e, uint8_t byte);

/* Helpers for the results callback: text, and an unsigned or fixed-point decimal. */
void tinyml_eembc_print(const tinyml_eembc_t *e, const char *text);
void tinyml_eembc_print_u32(const tinyml_eembc_t *e, uint32_t value);
/* value / 10^decimals with a sign, e.g. (-1234, 3) -> "-1.234" */
void tinyml_eembc_print_fixed(const tinyml_eembc_t *e, int32_t value, unsigned decimals);

#ifdef __cplusplus
}
#endif

#endif /* TINYML_EEMBC_H */
