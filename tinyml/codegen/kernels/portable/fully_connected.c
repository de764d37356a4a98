/* requires: fixedpoint, dot */
/* Four output channels per pass over the input (tml_dot4). The parameters are copied into
 * locals first: stores through int8_t pointers may alias anything, and would otherwise force
 * the compiler to reload them for every output. */
static void tml_fully_connected(const tml_fully_connected_params *p, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, const int32_t *mult,
                                const int8_t *shift, int8_t *output)
{
    const int32_t depth = p->accum_depth, units = p->out_depth, offset = p->input_offset;
    const int32_t out_offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int32_t step = p->per_channel ? 1 : 0;
    int32_t b, u, k;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * depth;
        int8_t *y = output + b * units;
        for (u = 0; u < units; u += 4) {
            const int32_t n = units - u < 4 ? units - u : 4;
            int32_t acc[4];
            acc[0] = acc[1] = acc[2] = acc[3] = 0; /* not an initializer: -Os makes that a memset call */
            if (n == 4) {
                tml_dot4(x, weights + u * depth, offset, depth, depth, acc);
            } else {
                for (k = 0; k < n; ++k) {
                    acc[k] = tml_dot1(x, weights + (u + k) * depth, depth, offset, 0);
                }
            }
            for (k = 0; k < n; ++k) {
                const int32_t c = (u + k) * step;
                const int32_t a = acc[k] + (bias ? bias[u + k] : 0);
                y[u + k] = tml_clamp8(tml_requant(a, mult[c], shift[c]) + out_offset, lo, hi);
            }
        }
    }
}
