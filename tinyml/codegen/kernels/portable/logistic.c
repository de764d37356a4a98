/* requires: fixedpoint, reciprocal */
static void tml_logistic(const tml_logistic_params *p, const int8_t *input, int8_t *output)
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
            int32_t r;
            if (a == 0) {
                r = (int32_t)1 << 30;
            } else {
                const int32_t pos = tml_one_over_one_plus_x(tml_exp_on_negative(a > 0 ? -a : a, 4));
                r = a > 0 ? pos : tml_add_wrap(INT32_MAX, -pos);
            }
            output[i] = tml_clamp8(tml_rdbpot(r, 23) - 128, -128, 127);
        }
    }
}
