/* requires: fixedpoint */
static void tml_leaky_relu(const tml_leaky_relu_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t v = (int32_t)input[i] - p->input_zero_point;
        const int32_t r = v >= 0 ? tml_requant(v, p->m_identity, p->s_identity)
                                 : tml_requant(v, p->m_alpha, p->s_alpha);
        output[i] = tml_clamp8(r + p->output_zero_point, -128, 127);
    }
}
