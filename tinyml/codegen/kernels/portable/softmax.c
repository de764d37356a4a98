/* requires: fixedpoint, reciprocal */
static int tml_clz32(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

static void tml_softmax(const tml_softmax_params *p, const int8_t *input, int8_t *output)
{
    int32_t i, c;
    for (i = 0; i < p->outer; ++i) {
        const int8_t *x = input + i * p->depth;
        int8_t *y = output + i * p->depth;
        int32_t max_in_row = -128;
        int32_t sum = 0;
        int32_t scale, headroom, exponent;
        for (c = 0; c < p->depth; ++c) {
            if (x[c] > max_in_row) {
                max_in_row = x[c];
            }
        }
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tml_requant(diff, p->input_multiplier, p->input_left_shift);
                sum = tml_add_wrap(sum, tml_rdbpot(tml_exp_on_negative(scaled, 5), 12));
            }
        }
        headroom = tml_clz32((uint32_t)sum);
        scale = tml_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
        exponent = (12 - headroom) + 31 - 8;
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = tml_requant(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = tml_exp_on_negative(scaled, 5);
                const int32_t out = tml_rdbpot(tml_srdhm(scale, e), exponent) - 128;
                y[c] = tml_clamp8(out, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
