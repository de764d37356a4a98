/* requires: fixedpoint */
static void tml_fully_connected(const tml_fully_connected_params *p, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, const int32_t *mult,
                                const int8_t *shift, int8_t *output)
{
    int32_t b, u, d;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * p->accum_depth;
        for (u = 0; u < p->out_depth; ++u) {
            const int8_t *w = weights + u * p->accum_depth;
            const int32_t c = p->per_channel ? u : 0;
            int32_t acc = 0;
            for (d = 0; d < p->accum_depth; ++d) {
                acc += (int32_t)w[d] * ((int32_t)x[d] + p->input_offset);
            }
            if (bias) {
                acc += bias[u];
            }
            acc = tml_requant(acc, mult[c], shift[c]) + p->output_offset;
            output[b * p->out_depth + u] = tml_clamp8(acc, p->act_min, p->act_max);
        }
    }
}
