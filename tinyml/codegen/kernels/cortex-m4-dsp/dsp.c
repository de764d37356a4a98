/* requires: fixedpoint */
/* The Cortex-M4 DSP core shared by FULLY_CONNECTED and CONV_2D: an int8 vector times int16
 * weight rows, requantized like the portable kernels (bit-exact). Four int8 inputs in a 32-bit
 * word unpack into two int16 pairs (even bytes, odd bytes); one SMLAD multiplies a pair with a
 * pair of weights and accumulates, so each instruction does two MACs.
 *
 * Weight layout (lowering.py: widen_rows): per group of 4 inputs a row has the words (w0, w2)
 * and (w1, w3); rows come in blocks of 4 interleaved group by group, leftover rows (rows % 4)
 * follow; every row is zero-padded to a multiple of 4 inputs. The bias already holds
 * bias + input_offset * sum(row), so inputs are used as they are. */

static inline uint32_t tml_load4(const int8_t *p)
{
    /* 4 bytes at any alignment: the M4 does unaligned LDR, memcpy keeps C's aliasing rules */
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int32_t tml_sxtb16_ror8(uint32_t v)
{
    /* bytes 1 and 3 as an int16 pair: one instruction, which ACLE has no intrinsic for */
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* Where the outputs of one matrix-vector product go, and how they are requantized. */
typedef struct {
    const int32_t *bias;
    const int32_t *mult;
    const int8_t *shift;
    int32_t step; /* mult/shift advance: 1 per channel, 0 per tensor */
    int32_t out_offset, lo, hi;
} tml_dsp_out;

/* acc[0..3] += the 4 interleaved rows at w times x[0 .. 4 * groups). Out of line so that the
 * compiler keeps all its live values in registers instead of spilling the caller's. */
__attribute__((noinline)) static void tml_dot_4rows(const int8_t *x, const int32_t *w, int32_t groups,
                                                    int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *end = x + 4 * groups;
    while (x != end) {
        const uint32_t v = tml_load4(x);
        const int32_t xe = __sxtb16(v), xo = tml_sxtb16_ror8(v);
        x += 4;
        a0 = __smlad(w[1], xo, __smlad(w[0], xe, a0));
        a1 = __smlad(w[3], xo, __smlad(w[2], xe, a1));
        a2 = __smlad(w[5], xo, __smlad(w[4], xe, a2));
        a3 = __smlad(w[7], xo, __smlad(w[6], xe, a3));
        w += 8;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* y[i] = requantized acc[i] for the n outputs starting at channel c. Out of line with few live
 * values, so that nothing is spilled per output. */
__attribute__((noinline)) static void tml_requant_n(const int32_t *acc, int32_t n, int32_t c,
                                                    const tml_dsp_out *o, int8_t *y)
{
    const int32_t *mult = o->mult + c * o->step;
    const int8_t *shift = o->shift + c * o->step;
    const int32_t step = o->step, out_offset = o->out_offset, lo = o->lo, hi = o->hi;
    const int8_t *end = y + n;
    while (y != end) {
        *y++ = tml_clamp8(tml_requant(*acc++, *mult, *shift) + out_offset, lo, hi);
        mult += step;
        shift += step;
    }
}

/* y[0 .. rows) = requantized (weights * x[0 .. depth) + bias). */
static void tml_dsp_matvec(const int8_t *x, int32_t depth, const int32_t *w, int32_t rows,
                           const tml_dsp_out *o, int8_t *y)
{
    const int32_t groups = depth >> 2, tail = depth & 3;
    const int32_t row_words = 2 * (groups + (tail != 0));
    const int32_t whole = rows & ~3; /* a fixed tail start: see portable/fully_connected.c */
    uint32_t last = 0; /* the partial last group of inputs, zero-filled like the weights */
    int32_t xe, xo, u, i, acc[4];
    for (i = 0; i < tail; ++i)
        last |= (uint32_t)(uint8_t)x[4 * groups + i] << (8 * i);
    xe = __sxtb16(last);
    xo = tml_sxtb16_ror8(last);
    for (u = 0; u < whole; u += 4, w += 4 * row_words) {
        acc[0] = o->bias[u];
        acc[1] = o->bias[u + 1];
        acc[2] = o->bias[u + 2];
        acc[3] = o->bias[u + 3];
        tml_dot_4rows(x, w, groups, acc);
        for (i = 0; tail && i < 4; ++i)
            acc[i] = __smlad(w[8 * groups + 2 * i + 1], xo, __smlad(w[8 * groups + 2 * i], xe, acc[i]));
        tml_requant_n(acc, 4, u, o, y + u);
    }
    for (u = whole; u < rows; ++u, w += row_words) {
        acc[0] = o->bias[u];
        for (i = 0; i < groups; ++i) {
            const uint32_t v = tml_load4(x + 4 * i);
            acc[0] = __smlad(w[2 * i + 1], tml_sxtb16_ror8(v), __smlad(w[2 * i], __sxtb16(v), acc[0]));
        }
        if (tail)
            acc[0] = __smlad(w[2 * groups + 1], xo, __smlad(w[2 * groups], xe, acc[0]));
        tml_requant_n(acc, 1, u, o, y + u);
    }
}
