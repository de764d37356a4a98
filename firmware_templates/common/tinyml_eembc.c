/* MLPerf Tiny / EEMBC runner commands. See tinyml_eembc.h. */
#include "tinyml_eembc.h"

#include <string.h>

#define MAX_DIGITS 10

static void out(const tinyml_eembc_t *e, const char *text) { e->write(text, strlen(text), e->ctx); }

void tinyml_eembc_print(const tinyml_eembc_t *e, const char *text) { out(e, text); }

void tinyml_eembc_print_u32(const tinyml_eembc_t *e, uint32_t value)
{
    char digits[MAX_DIGITS + 1];
    size_t i = MAX_DIGITS;
    digits[MAX_DIGITS] = '\0';
    do {
        digits[--i] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value && i);
    out(e, digits + i);
}

void tinyml_eembc_print_fixed(const tinyml_eembc_t *e, int32_t value, unsigned decimals)
{
    uint32_t magnitude = value < 0 ? (uint32_t)(-(value + 1)) + 1u : (uint32_t)value;
    uint32_t scale = 1;
    unsigned i;
    for (i = 0; i < decimals && i < 9; i++) {
        scale *= 10u;
    }
    if (value < 0) {
        out(e, "-");
    }
    tinyml_eembc_print_u32(e, magnitude / scale);
    if (decimals) {
        char frac[10];
        uint32_t rest = magnitude % scale;
        for (i = decimals < 9 ? decimals : 9; i > 0; i--) {
            frac[i - 1] = (char)('0' + rest % 10u);
            rest /= 10u;
        }
        frac[decimals < 9 ? decimals : 9] = '\0';
        out(e, ".");
        out(e, frac);
    }
}

static void ready(const tinyml_eembc_t *e) { out(e, "m-ready\r\n"); }

static void fail(const tinyml_eembc_t *e, const char *what)
{
    out(e, "e-[");
    out(e, what);
    out(e, "]\r\n");
}

static void lap(const tinyml_eembc_t *e)
{
    out(e, "m-lap-us-");
    tinyml_eembc_print_u32(e, e->micros(e->ctx));
    out(e, "\r\n");
}

/* Parse an unsigned decimal at *p (skipping spaces); 0 when there is none. */
static int parse_u32(const char **p, uint32_t *value)
{
    const char *s = *p;
    uint32_t v = 0;
    int digits = 0;
    while (*s == ' ') {
        s++;
    }
    while (*s >= '0' && *s <= '9' && digits < 9) {
        v = v * 10u + (uint32_t)(*s++ - '0');
        digits++;
    }
    *p = s;
    *value = v;
    return digits > 0 && (*s == ' ' || *s == '\0');
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void db_load(tinyml_eembc_t *e, const char *args)
{
    uint32_t n;
    if (!parse_u32(&args, &n) || n == 0 || n > e->input_size) {
        fail(e, "db load needs a byte count from 1 to the input size");
        return;
    }
    e->expected = n;
    e->loaded = 0;
    out(e, "m-[Expecting ");
    tinyml_eembc_print_u32(e, n);
    out(e, " bytes]\r\n");
}

static void db_data(tinyml_eembc_t *e, const char *hex)
{
    size_t n = strlen(hex), i;
    if (n % 2u) {
        fail(e, "Invalid hex: odd number of digits");
        return;
    }
    for (i = 0; i < n; i += 2) {
        if (hex_value(hex[i]) < 0 || hex_value(hex[i + 1]) < 0) {
            fail(e, "Invalid hex: not a hex digit");
            return;
        }
    }
    if (e->loaded + n / 2u > e->expected) {
        fail(e, "More bytes than db load announced");
        return;
    }
    for (i = 0; i < n; i += 2) {
        e->input[e->loaded++] = (uint8_t)(hex_value(hex[i]) * 16 + hex_value(hex[i + 1]));
    }
    if (e->loaded == e->expected) {
        out(e, "m-load-done\r\n");
    }
}

static void db_print(const tinyml_eembc_t *e)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < e->loaded; i++) {
        char byte[4] = {'-', digits[e->input[i] >> 4], digits[e->input[i] & 15u], '\0'};
        if (i % 8u == 0) {
            out(e, i ? "\r\nm-buffer" : "m-buffer");
        }
        out(e, byte);
    }
    if (e->loaded) {
        out(e, "\r\n");
    }
}

static int run(const tinyml_eembc_t *e, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (e->infer(e->ctx) != 0) {
            fail(e, "Inference failed");
            return -1;
        }
    }
    return 0;
}

static void results(const tinyml_eembc_t *e)
{
    out(e, "m-results-[");
    e->results(e->ctx);
    out(e, "]\r\n");
}

static void infer(const tinyml_eembc_t *e, const char *args)
{
    uint32_t n, warmup = 10;
    if (!parse_u32(&args, &n) || n == 0) {
        fail(e, "Inference iterations must be >0");
        return;
    }
    if (*args && !parse_u32(&args, &warmup)) {
        fail(e, "Warmup iterations must be a number");
        return;
    }
    out(e, "m-warmup-start-");
    tinyml_eembc_print_u32(e, warmup);
    out(e, "\r\n");
    if (run(e, warmup) != 0) {
        return;
    }
    out(e, "m-warmup-done\r\nm-infer-start-");
    tinyml_eembc_print_u32(e, n);
    out(e, "\r\n");
    lap(e);
    if (run(e, n) != 0) {
        return;
    }
    lap(e);
    out(e, "m-infer-done\r\n");
    results(e);
}

static int starts(const char *line, const char *word)
{
    size_t n = strlen(word);
    return strncmp(line, word, n) == 0 && (line[n] == '\0' || line[n] == ' ');
}

static void dispatch(tinyml_eembc_t *e, const char *line)
{
    if (starts(line, "name")) {
        out(e, "m-name-dut-[");
        out(e, e->name);
        out(e, "]\r\n");
    } else if (starts(line, "profile")) {
        out(e, "m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\nm-model-[");
        out(e, e->model_id);
        out(e, "]\r\n");
    } else if (starts(line, "timestamp")) {
        lap(e);
    } else if (starts(line, "db")) {
        const char *args = line + 2;
        while (*args == ' ') {
            args++;
        }
        if (starts(args, "load")) {
            db_load(e, args + 4);
        } else if (starts(args, "print")) {
            db_print(e);
        } else {
            db_data(e, args);
        }
    } else if (starts(line, "infer")) {
        infer(e, line + 5);
    } else if (starts(line, "results")) {
        results(e);
    } else {
        out(e, "e-[Unknown command: ");
        out(e, line);
        out(e, "]\r\n");
    }
    ready(e);
}

void tinyml_eembc_start(tinyml_eembc_t *e)
{
    e->len = 0;
    e->spoiled = 0;
    e->expected = 0;
    e->loaded = 0;
    out(e, "m-init-done\r\nm-ready\r\n");
}

void tinyml_eembc_feed(tinyml_eembc_t *e, uint8_t byte)
{
    if (byte == '%') {
        e->line[e->len] = '\0';
        if (!e->spoiled && e->len) {
            dispatch(e, e->line);
        }
        e->len = 0;
        e->spoiled = 0;
    } else if (byte == 0 || byte == '\n') { /* a frame delimiter or a line end: start afresh */
        e->len = 0;
        e->spoiled = 0;
    } else if (byte == '\r') {
        return;
    } else if (byte < 0x20u || byte >= 0x7Fu || e->len >= TINYML_EEMBC_LINE) {
        e->spoiled = 1;
    } else {
        e->line[e->len++] = (char)byte;
    }
}
