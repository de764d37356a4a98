/* requires: fixedpoint */
static void tml_requantize(const tml_requantize_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t v = tml_requant((int32_t)input[i] - p->input_zero_point, p->multiplier, p->shift);
        output[i] = tml_clamp8(v + p->output_zero_point, p->act_min, p->act_max);
    }
}
