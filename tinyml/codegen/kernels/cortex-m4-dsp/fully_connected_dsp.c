/* requires: fixedpoint, dsp */
/* FULLY_CONNECTED on the M4 DSP extension: two MACs per SMLAD, four output channels per pass
 * over the input, bit-exact with the portable kernel. The generator widens the weights to
 * int16 pairs in SMLAD order (lowering.py: widen_rows): per group of 4 inputs a row has the
 * words (w0, w2) and (w1, w3); rows come in blocks of 4 interleaved group by group, leftover
 * rows follow; every row is zero-padded to a multiple of 4 inputs. bias holds
 * bias + input_offset * sum(row), so the inputs are used as they are. */
typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t output_offset, act_min, act_max, per_channel;
} tml_fully_connected_dsp_params;

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

/* y[i] = requantized acc[i] for n outputs; mult/shift advance by step (1 per channel, 0 per
 * tensor). Out of line with few live values, so that nothing is spilled per output. */
__attribute__((noinline)) static void tml_requant_n(const int32_t *acc, int32_t n, const int32_t *mult,
                                                    const int8_t *shift, int32_t step,
                                                    const tml_fully_connected_dsp_params *p, int8_t *y)
{
    const int32_t out_offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int8_t *end = y + n;
    while (y != end) {
        int32_t a = tml_requant_dsp(*acc++, *mult, *shift) + out_offset;
        if (a < lo)
            a = lo;
        if (a > hi)
            a = hi;
        *y++ = (int8_t)a;
        mult += step;
        shift += step;
    }
}

static void tml_fully_connected_dsp(const tml_fully_connected_dsp_params *p, const int8_t *input,
                                    const int32_t *weights, const int32_t *bias, const int32_t *mult,
                                    const int8_t *shift, int8_t *output)
{
    const int32_t depth = p->accum_depth, out_depth = p->out_depth, step = p->per_channel ? 1 : 0;
    const int32_t groups = depth >> 2, tail = depth & 3;
    const int32_t row_words = 2 * (groups + (tail != 0));
    int32_t b, u, i;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * depth;
        const int32_t *w = weights;
        int8_t *y = output + b * out_depth;
        uint32_t last = 0; /* the partial last group of inputs, zero-filled like the weights */
        int32_t xe, xo, acc[4];
        for (i = 0; i < tail; ++i)
            last |= (uint32_t)(uint8_t)x[4 * groups + i] << (8 * i);
        xe = __sxtb16(last);
        xo = tml_sxtb16_ror8(last);
        for (u = 0; u + 4 <= out_depth; u += 4, w += 4 * row_words) {
            acc[0] = bias[u];
            acc[1] = bias[u + 1];
            acc[2] = bias[u + 2];
            acc[3] = bias[u + 3];
            tml_dot_4rows(x, w, groups, acc);
            for (i = 0; tail && i < 4; ++i)
                acc[i] = __smlad(w[8 * groups + 2 * i + 1], xo, __smlad(w[8 * groups + 2 * i], xe, acc[i]));
            tml_requant_n(acc, 4, mult + u * step, shift + u * step, step, p, y + u);
        }
        for (; u < out_depth; ++u, w += row_words) {
            acc[0] = bias[u];
            for (i = 0; i < groups; ++i) {
                const uint32_t v = tml_load4(x + 4 * i);
                acc[0] = __smlad(w[2 * i + 1], tml_sxtb16_ror8(v), __smlad(w[2 * i], __sxtb16(v), acc[0]));
            }
            if (tail)
                acc[0] = __smlad(w[2 * groups + 1], xo, __smlad(w[2 * groups], xe, acc[0]));
            tml_requant_n(acc, 1, mult + u * step, shift + u * step, step, p, y + u);
        }
    }
}
