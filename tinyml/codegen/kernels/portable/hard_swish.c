/* requires: fixedpoint */
static int16_t tml_srdhm16(int16_t a, int16_t b)
{
    const int32_t ab = (int32_t)a * (int32_t)b;
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)((ab + (ab >= 0 ? (1 << 14) : (1 - (1 << 14)))) / (1 << 15));
}

static int16_t tml_sdhm16(int16_t a, int16_t b)
{
    /* like tml_srdhm16 but rounding toward zero */
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static int16_t tml_shl_sat16(int16_t v, int amount)
{
    const int32_t r = (int32_t)v * (1 << amount);
    return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

static void tml_hard_swish(const tml_hard_swish_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int16_t hires = (int16_t)(((int32_t)input[i] - p->input_zero_point) * 128);
        const int16_t preshift = tml_srdhm16(hires, (int16_t)p->output_multiplier);
        int16_t reluish = hires;
        int32_t out;
        if (p->reluish_exponent > 0) {
            reluish = tml_shl_sat16(reluish, (int)p->reluish_exponent - 1);
        }
        reluish = tml_srdhm16(reluish, (int16_t)p->reluish_multiplier);
        if (p->reluish_exponent > 0) {
            reluish = tml_shl_sat16(reluish, 1);
        }
        if (p->reluish_exponent < 0) {
            reluish = (int16_t)tml_rdbpot(reluish, (int)-p->reluish_exponent);
        }
        reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1);
        out = tml_rdbpot(tml_sdhm16(reluish, preshift), (int)-p->output_exponent) + p->output_zero_point;
        output[i] = tml_clamp8(out, -128, 127);
    }
}
