/* requires: fixedpoint, gemmlowp */
static int32_t tml_one_minus_x_over_one_plus_x(int32_t a)
{
    return tml_shl_sat(tml_add_wrap(tml_newton_reciprocal(a), -((int32_t)1 << 29)), 2);
}

static void tml_tanh(const tml_tanh_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t v = (int32_t)input[i] - p->input_zero_point;
        if (v <= -p->input_range_radius) {
            output[i] = -128;
        } else if (v >= p->input_range_radius) {
            output[i] = 127;
        } else {
            const int32_t a = tml_requant(v, p->input_multiplier, p->input_left_shift);
            int32_t r = 0;
            if (a != 0) {
                /* (1 - e) / (1 + e) with e = exp(-2|a|): Q4 raw read as Q5 doubles it exactly */
                const int32_t t = tml_one_minus_x_over_one_plus_x(tml_exp_on_negative(a < 0 ? a : -a, 5));
                r = a < 0 ? -t : t;
            }
            output[i] = tml_clamp8(tml_rdbpot(r, 24), -128, 127);
        }
    }
}
