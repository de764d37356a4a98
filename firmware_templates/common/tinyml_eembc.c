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

/* mantissa * 2^shift (shift >= 0) in decimal: a float32 at most 2^128, 39 digits, kept in
 * base-10^9 limbs (least significant first) and doubled shift times. */
static void print_big(const tinyml_eembc_t *e, uint32_t mantissa, int shift)
{
    uint32_t limb[5] = {mantissa % 1000000000u, mantissa / 1000000000u, 0, 0, 0};
    int top = 4, i;
    while (shift-- > 0) {
        uint32_t carry = 0;
        for (i = 0; i < 5; i++) {
            uint32_t v = limb[i] * 2u + carry;
            carry = v >= 1000000000u;
            limb[i] = carry ? v - 1000000000u : v;
        }
    }
    while (top > 0 && limb[top] == 0) {
        top--;
    }
    tinyml_eembc_print_u32(e, limb[top]);
    for (i = top - 1; i >= 0; i--) {
        char nine[10];
        uint32_t v = limb[i];
        int k;
        for (k = 8; k >= 0; k--) {
            nine[k] = (char)('0' + v % 10u);
            v /= 10u;
        }
        nine[9] = '\0';
        out(e, nine);
    }
}

void tinyml_eembc_print_f3(const tinyml_eembc_t *e, float value)
{
    uint32_t bits, mantissa, exponent;
    int shift;
    memcpy(&bits, &value, sizeof bits);
    mantissa = bits & 0x7FFFFFu;
    exponent = (bits >> 23) & 0xFFu;
    if (exponent == 0xFFu && mantissa) {
        out(e, "nan");
        return;
    }
    if (bits >> 31) {
        out(e, "-"); /* printf prints "-0.000" for -0.0 and for small negatives too */
    }
    if (exponent == 0xFFu) {
        out(e, "inf");
        return;
    }
    if (exponent) {
        mantissa |= 0x800000u;
    } else {
        exponent = 1; /* subnormal */
    }
    shift = (int)exponent - 150; /* |value| = mantissa * 2^shift */
    if (shift >= 0) {            /* an integer */
        print_big(e, mantissa, shift);
        out(e, ".000");
    } else {
        /* thousandths = round(mantissa * 1000 / 2^-shift), ties to even; below 2^34 */
        uint64_t scaled = (uint64_t)mantissa * 1000u, thousandths = 0;
        if (-shift < 40) {
            uint64_t rest = scaled & ((1ull << -shift) - 1u), half = 1ull << (-shift - 1);
            thousandths = scaled >> -shift;
            if (rest > half || (rest == half && (thousandths & 1u))) {
                thousandths++;
            }
        }
        char frac[6] = {'.', 0, 0, 0, '\0', '\0'};
        uint32_t below = (uint32_t)(thousandths % 1000u);
        frac[3] = (char)('0' + below % 10u);
        frac[2] = (char)('0' + below / 10u % 10u);
        frac[1] = (char)('0' + below / 100u);
        print_big(e, (uint32_t)(thousandths / 1000u), 0);
        out(e, frac);
    }
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float f32_at(const uint8_t *p)
{
    uint32_t bits = le32(p);
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

int8_t tinyml_eembc_quantize(float x, float scale, int32_t zero_point)
{
    double v = (double)x / (double)scale + (double)zero_point;
    int32_t whole;
    double frac;
    if (!(v > -128.0)) {
        return -128;
    }
    if (v >= 127.0) {
        return 127;
    }
    whole = (int32_t)v; /* toward zero; exact, as is the remainder below */
    frac = v - (double)whole;
    if (frac > 0.5 || (frac == 0.5 && (whole & 1))) {
        whole++;
    } else if (frac < -0.5 || (frac == -0.5 && (whole & 1))) {
        whole--;
    }
    return (int8_t)whole;
}

float tinyml_eembc_input_value(const tinyml_eembc_t *e, size_t i)
{
    if (e->loaded_format == TINYML_EEMBC_FLOAT32) {
        return f32_at(e->buffer + 4u * i);
    }
    return (float)((int32_t)e->input[i] - e->input_zero_point) * e->input_scale;
}

static void ready(const tinyml_eembc_t *e) { out(e, "m-ready\r\n"); }

static void fail(const tinyml_eembc_t *e, const char *what)
{
    out(e, "e-[");
    out(e, what);
    out(e, "]\r\n");
}

/* No input is loaded and no load is under way. */
static void drop_input(tinyml_eembc_t *e)
{
    e->expected = 0;
    e->loaded = 0;
    e->loaded_format = 0;
    e->has_results = 0;
}

/* An error while loading: it leaves no input, so no later infer can score a stale one. */
static void fail_load(tinyml_eembc_t *e, const char *what)
{
    drop_input(e);
    fail(e, what);
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

/* The format a load of n bytes has, or 0 when n fits none the firmware accepts. */
static unsigned format_of(const tinyml_eembc_t *e, size_t n)
{
    if (n == e->values && (e->formats & (TINYML_EEMBC_BYTES | TINYML_EEMBC_UINT8))) {
        return e->formats & TINYML_EEMBC_BYTES ? TINYML_EEMBC_BYTES : TINYML_EEMBC_UINT8;
    }
    if (n == 4u * e->values && (e->formats & TINYML_EEMBC_FLOAT32) && e->quantize) {
        return TINYML_EEMBC_FLOAT32;
    }
    return 0;
}

static void print_sizes(const tinyml_eembc_t *e)
{
    const char *sep = "";
    if (e->formats & TINYML_EEMBC_BYTES) {
        tinyml_eembc_print_u32(e, (uint32_t)e->values);
        out(e, " (int8)");
        sep = " or ";
    } else if (e->formats & TINYML_EEMBC_UINT8) {
        tinyml_eembc_print_u32(e, (uint32_t)e->values);
        out(e, " (uint8)");
        sep = " or ";
    }
    if ((e->formats & TINYML_EEMBC_FLOAT32) && e->quantize) {
        out(e, sep);
        tinyml_eembc_print_u32(e, (uint32_t)(4u * e->values));
        out(e, " (float32)");
    }
}

static void db_load(tinyml_eembc_t *e, const char *args)
{
    uint32_t n;
    if (!parse_u32(&args, &n) || *args) {
        fail_load(e, "Command 'db load' requires the # of bytes");
        return;
    }
    if (!format_of(e, n) || n > e->buffer_size) {
        drop_input(e);
        out(e, "e-[db load ");
        tinyml_eembc_print_u32(e, n);
        out(e, ": this ");
        out(e, e->model_id);
        out(e, " model takes ");
        print_sizes(e);
        out(e, " bytes]\r\n");
        return;
    }
    drop_input(e);
    e->expected = n;
    out(e, "m-[Expecting ");
    tinyml_eembc_print_u32(e, n);
    out(e, " bytes]\r\n");
}

/* All announced bytes are in: make them the model input. */
static void finish_load(tinyml_eembc_t *e)
{
    unsigned format = format_of(e, e->loaded);
    size_t i;
    if (format == TINYML_EEMBC_FLOAT32) {
        for (i = 0; i < e->values; i++) {
            uint32_t bits = le32(e->buffer + 4u * i);
            if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x7FFFFFu)) {
                fail_load(e, "Input value is not a number (NaN)");
                return;
            }
        }
        for (i = 0; i < e->values; i++) {
            e->input[i] = e->quantize(f32_at(e->buffer + 4u * i), e->input_scale, e->input_zero_point);
        }
    } else if (format == TINYML_EEMBC_UINT8) {
        for (i = 0; i < e->values; i++) {
            e->input[i] = (int8_t)(e->buffer[i] ^ 0x80u); /* pixel - 128 */
        }
    } else if ((uint8_t *)e->input != e->buffer) {
        memcpy(e->input, e->buffer, e->values);
    }
    e->expected = 0;
    e->loaded_format = (uint8_t)format;
    out(e, "m-load-done\r\n");
}

static void db_data(tinyml_eembc_t *e, const char *hex)
{
    size_t n = strlen(hex), i;
    if (!e->expected) {
        fail_load(e, "No db load under way: send db load N first");
        return;
    }
    if (n % 2u) {
        fail_load(e, "Insufficent number of hex digits");
        return;
    }
    for (i = 0; i < n; i++) {
        if (hex_value(hex[i]) < 0) {
            fail_load(e, "Invalid hex digit");
            return;
        }
    }
    if (e->loaded + n / 2u > e->expected) {
        fail_load(e, "More bytes than db load announced");
        return;
    }
    for (i = 0; i < n; i += 2) {
        e->buffer[e->loaded++] = (uint8_t)(hex_value(hex[i]) * 16 + hex_value(hex[i + 1]));
    }
    if (e->loaded == e->expected) {
        finish_load(e);
    }
}

static void db_print(const tinyml_eembc_t *e)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < e->loaded; i++) {
        char byte[4] = {'-', digits[e->buffer[i] >> 4], digits[e->buffer[i] & 15u], '\0'};
        if (i % 8u == 0) {
            out(e, i ? "\r\nm-buffer" : "m-buffer");
        }
        out(e, byte);
    }
    if (e->loaded) {
        out(e, "\r\n");
    }
}

static int run(tinyml_eembc_t *e, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (e->infer(e->ctx) != 0) {
            e->has_results = 0;
            fail(e, "Inference failed");
            return -1;
        }
    }
    return 0;
}

static void results(const tinyml_eembc_t *e)
{
    if (!e->has_results) {
        fail(e, "No results: the last infer did not run on a loaded input");
        return;
    }
    out(e, "m-results-[");
    e->results(e->ctx);
    out(e, "]\r\n");
}

static void infer(tinyml_eembc_t *e, const char *args)
{
    uint32_t n = 1, warmup = 10;
    if (*args && (!parse_u32(&args, &n) || n == 0)) {
        fail(e, "Inference iterations must be >0");
        return;
    }
    if (*args && (!parse_u32(&args, &warmup) || *args)) {
        fail(e, "Inference warmup must be >=0");
        return;
    }
    e->has_results = 0;
    if (!e->loaded_format) {
        fail(e, "No input loaded: db load N and its bytes first; the last load failed or is incomplete");
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
    e->has_results = 1;
    results(e);
}

static void help(const tinyml_eembc_t *e)
{
    /* the reference firmware's text, word for word */
    out(e, "ULPMark for tinyML Firmware V0.0.1\r\n\r\n"
           "help         : Print this information\r\n"
           "name         : Print the name of the device\r\n"
           "timestsamp   : Generate a timetsamp\r\n"
           "db SUBCMD    : Manipulate a generic byte buffer\r\n"
           "  load N     : Allocate N bytes and set load counter\r\n"
           "  db HH[HH]* : Load 8-bit hex byte(s) until N bytes\r\n"
           "  print [N=16] [offset=0]\r\n"
           "             : Print N bytes at offset as hex\r\n"
           "infer N [W=0]: Load input, execute N inferences after W warmup loops\r\n"
           "results      : Return the result fp32 vector\r\n");
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
    } else if (starts(line, "help")) {
        help(e);
    } else if (starts(line, "timestamp")) {
        lap(e);
    } else if (starts(line, "db")) {
        const char *args = line + 2;
        while (*args == ' ') {
            args++;
        }
        if (!*args) {
            fail(e, "Command 'db' requires a subcommand");
        } else if (starts(args, "load")) {
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
    drop_input(e);
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
