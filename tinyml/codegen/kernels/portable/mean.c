/* requires: fixedpoint */
static void tml_mean(const tml_mean_params *p, const int8_t *input, int8_t *output)
{
    int32_t o, r, i;
    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < p->inner; ++i) {
            const int8_t *x = input + o * p->reduced * p->inner + i;
            int32_t sum = 0;
            for (r = 0; r < p->reduced; ++r) {
                sum += x[r * p->inner];
            }
            sum -= p->input_zero_point * p->reduced;
            output[o * p->inner + i] =
                tml_clamp8(tml_requant(sum, p->multiplier, p->shift) + p->output_zero_point, -128, 127);
        }
    }
}
