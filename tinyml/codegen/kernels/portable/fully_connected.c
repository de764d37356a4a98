/* requires: dot, requant_out */
/* Four output channels per pass over the input (tml_dot4 with offset 0: the input zero point
 * is in the bias, and compilers drop the addition when FULLY_CONNECTED is tml_dot4's only
 * user), then one requantization record per output (requant_out.c). */

static void tml_fully_connected(const tml_fully_connected_params *p, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, const int32_t *requant, int8_t *output)
{
    const int32_t depth = p->accum_depth, units = p->out_depth, step = p->requant_step;
    const tml_out_range r = {p->output_offset, p->act_min, p->act_max, step};
    /* The tail starts at a bound computed once, not where the 4-wide loop stopped: GCC's -O3
     * otherwise unrolls the (dead) tail from an unknown start and warns of overflow in u * depth
     * (-Waggressive-loop-optimizations). */
    const int32_t whole = units & ~3; /* units >= 0 */
    int32_t b, u, acc[4];
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * depth;
        int8_t *y = output + b * units;
        for (u = 0; u < whole; u += 4) {
            memcpy(acc, bias + u, sizeof acc);
            tml_dot4(x, weights + u * depth, 0, depth, depth, acc);
            tml_requant_out(acc, 4, requant + u * step, &r, y + u);
        }
        for (u = whole; u < units; ++u) {
            acc[0] = tml_dot1(x, weights + u * depth, depth, 0, bias[u]);
            tml_requant_out(acc, 1, requant + u * step, &r, y + u);
        }
    }
}
