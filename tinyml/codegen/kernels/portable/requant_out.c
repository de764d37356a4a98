/* requires: noinline */
/* Requantization by records (portable/lowering.py): TFLM's two roundings as one, one record of
 * 5 int32 words per output channel, or a single record (step 0) for a per-tensor scale. */
typedef struct {
    int32_t offset, lo, hi, step; /* output zero point, activation range, record step */
} tml_out_range;

/* y[i] = requantized acc[i] for i < n, n > 0, with the records from q on. Out of line, so that
 * the per-call values stay in registers and nothing is spilled or recomputed per output. */
TML_NOINLINE static void tml_requant_out(const int32_t *acc, int32_t n, const int32_t *q, const tml_out_range *r,
                                         int8_t *y)
{
    const int32_t step = r->step, off = r->offset, lo = r->lo, hi = r->hi;
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
