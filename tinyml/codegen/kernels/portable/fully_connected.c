/* requires: dot */
/* Four output channels per pass over the input (tml_dot4 with offset 0: the input zero point
 * is in the bias, and compilers drop the addition when FULLY_CONNECTED is tml_dot4's only
 * user), then one requantization record per output (see portable/lowering.py). */

/* y[i] = requantized acc[i] for i < n, with the records from q on. Out of line, so that the
 * per-call values stay in registers and nothing is spilled or recomputed per output. */
TML_NOINLINE static void tml_fc_out(const int32_t *acc, int32_t n, const int32_t *q,
                                    const tml_fully_connected_params *p, int8_t *y)
{
    const int32_t step = p->requant_step, off = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32_t range = (uint32_t)(hi - lo);
    const int8_t *end = y + n;
    do {
        /* TFLM's MultiplyByQuantizedMultiplier as one rounding: with q = (M_lo, M_hi, C, H, k),
         * (hi32(a * M_lo + 2^31) + a * M_hi + H - C * [a < 0]) >> k, high word mod 2^32 */
        const int32_t a = *acc++;
        const uint32_t top = (uint32_t)q[3] - (((uint32_t)a >> 31) & (uint32_t)q[2]);
        const uint64_t u = (uint64_t)((int64_t)a * q[0]) + ((uint64_t)top << 32 | 0x80000000u);
        int32_t v = ((int32_t)((uint32_t)(u >> 32) + (uint32_t)a * (uint32_t)q[1]) >> q[4]) + off;
        if ((uint32_t)(v - lo) > range) /* one test for both bounds while in range */
            v = v < lo ? lo : hi;
        *y++ = (int8_t)v;
        q += step;
    } while (y != end);
}

static void tml_fully_connected(const tml_fully_connected_params *p, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, const int32_t *requant, int8_t *output)
{
    const int32_t depth = p->accum_depth, units = p->out_depth, step = p->requant_step;
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
            tml_fc_out(acc, 4, requant + u * step, p, y + u);
        }
        for (u = whole; u < units; ++u) {
            acc[0] = tml_dot1(x, weights + u * depth, depth, 0, bias[u]);
            tml_fc_out(acc, 1, requant + u * step, p, y + u);
        }
    }
}
