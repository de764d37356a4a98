/* requires: fixedpoint, reciprocal */
/* LOGISTIC and TANH share TFLM's input clamp and Q4.27 rescale; they differ in the fixed-point core. */
static int32_t tml_one_minus_x_over_one_plus_x(int32_t a)
{
    return tml_shl_sat(tml_add_wrap(tml_newton_reciprocal(a), -((int32_t)1 << 29)), 2);
}

static void tml_sigmoid_tanh(const tml_sigmoid_tanh_params *p, const int8_t *input, int8_t *output, int is_tanh)
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
            if (is_tanh) {
                /* (1 - e) / (1 + e) with e = exp(-2|a|): Q4 raw read as Q5 doubles it exactly */
                const int32_t t =
                    a == 0 ? 0 : tml_one_minus_x_over_one_plus_x(tml_exp_on_negative(a < 0 ? a : -a, 5));
                r = tml_rdbpot(a < 0 ? -t : t, 24);
            } else if (a == 0) {
                r = tml_rdbpot((int32_t)1 << 30, 23) - 128;
            } else {
                const int32_t pos = tml_one_over_one_plus_x(tml_exp_on_negative(a > 0 ? -a : a, 4));
                r = tml_rdbpot(a > 0 ? pos : tml_add_wrap(INT32_MAX, -pos), 23) - 128;
            }
            output[i] = tml_clamp8(r, -128, 127);
        }
    }
}
