/* requires: fixedpoint, dsp */
/* FULLY_CONNECTED on the M4 DSP extension: two MACs per SMLAD, four output channels per pass
 * over the input, bit-exact with the portable kernel. The generator lays the weights out as
 * 32-bit words of 4 int8, each row zero-padded to a multiple of 4 inputs; within a block of 4
 * channels the words interleave (input group g: channel 0, 1, 2, 3 of the block); leftover
 * channels follow row by row. bias holds bias + input_offset * sum(row), so the inputs are
 * used as they are and the zero point costs nothing at run time. */
typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t output_offset, act_min, act_max, per_channel;
} tml_fully_connected_dsp_params;

/* acc[0..3] += the 4 interleaved rows at w times x[0 .. 4 * groups). Out of line so that the
 * compiler keeps all its live values in registers instead of spilling the caller's. */
__attribute__((noinline)) static void tml_dot_4rows(const int8_t *x, const uint32_t *w, int32_t groups,
                                                    int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *end = x + 4 * groups;
    while (x != end) {
        const uint32_t v = tml_load4(x);
        const int32_t xe = __sxtb16(v), xo = tml_sxtb16_ror8(v);
        x += 4;
        a0 = tml_mac4(a0, w[0], xe, xo);
        a1 = tml_mac4(a1, w[1], xe, xo);
        a2 = tml_mac4(a2, w[2], xe, xo);
        a3 = tml_mac4(a3, w[3], xe, xo);
        w += 4;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static int8_t tml_fc_dsp_out(const tml_fully_connected_dsp_params *p, int32_t acc, const int32_t *mult,
                             const int8_t *shift, int32_t u)
{
    const int32_t c = p->per_channel ? u : 0;
    return tml_clamp8(tml_requant(acc, mult[c], shift[c]) + p->output_offset, p->act_min, p->act_max);
}

static void tml_fully_connected_dsp(const tml_fully_connected_dsp_params *p, const int8_t *input,
                                    const int32_t *weights, const int32_t *bias, const int32_t *mult,
                                    const int8_t *shift, int8_t *output)
{
    const int32_t groups = p->accum_depth >> 2;
    const int32_t tail = p->accum_depth & 3;
    const int32_t row_words = groups + (tail != 0);
    int32_t b, u, i;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * p->accum_depth;
        const uint32_t *w = (const uint32_t *)weights;
        int8_t *y = output + b * p->out_depth;
        uint32_t last = 0; /* the partial last group of inputs, zero-filled like the weights */
        int32_t xe, xo, acc[4];
        for (i = 0; i < tail; ++i)
            last |= (uint32_t)(uint8_t)x[4 * groups + i] << (8 * i);
        xe = __sxtb16(last);
        xo = tml_sxtb16_ror8(last);
        for (u = 0; u + 4 <= p->out_depth; u += 4, w += 4 * row_words) {
            for (i = 0; i < 4; ++i)
                acc[i] = bias[u + i];
            tml_dot_4rows(x, w, groups, acc);
            for (i = 0; i < 4; ++i) {
                if (tail)
                    acc[i] = tml_mac4(acc[i], w[4 * groups + i], xe, xo);
                y[u + i] = tml_fc_dsp_out(p, acc[i], mult, shift, u + i);
            }
        }
        for (; u < p->out_depth; ++u) {
            int32_t a = bias[u];
            for (i = 0; i < groups; ++i) {
                const uint32_t v = tml_load4(x + 4 * i);
                a = tml_mac4(a, *w++, __sxtb16(v), tml_sxtb16_ror8(v));
            }
            if (tail)
                a = tml_mac4(a, *w++, xe, xo);
            y[u] = tml_fc_dsp_out(p, a, mult, shift, u);
        }
    }
}
