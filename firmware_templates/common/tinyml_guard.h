/* The input envelope guard of an anomaly model (tinyml/train/guard.py): each int8 model input within its
 * training range plus a margin, folded into the reconstruction error sum so that an input outside scores
 * above the threshold. Integers only; Python computes the same numbers (excess_int8, guarded_sum). */
#ifndef TINYML_GUARD_H
#define TINYML_GUARD_H

#include <stdint.h>

/* The int8 steps the farthest input lies beyond [lo[i], hi[i]]; 0 when every input is inside. */
static inline uint32_t tinyml_guard_excess(const int8_t *in, const int8_t *lo, const int8_t *hi, uint32_t n)
{
    int32_t worst = 0;
    for (uint32_t i = 0; i < n; i++) {
        int32_t over = (int32_t)in[i] - hi[i], under = (int32_t)lo[i] - in[i];
        if (over > worst)
            worst = over;
        if (under > worst)
            worst = under;
    }
    return (uint32_t)worst;
}

/* The guarded score sum: error_sum, raised to threshold_sum + excess * step when an input is outside (or the
 * slope guard's CUSUM above its level, tinyml_slope.h), saturating at UINT64_MAX. No 64-bit division (the
 * lx106's libgcc has none): with step = hi * 2^32 + lo, excess * step = (excess * hi) * 2^32 + excess * lo,
 * each product below 2^64. */
static inline uint64_t tinyml_guard_sum(uint64_t error_sum, uint32_t excess, uint64_t threshold_sum, uint64_t step)
{
    if (excess == 0u)
        return error_sum;
    uint64_t high = (uint64_t)excess * (step >> 32), low = (uint64_t)excess * (uint32_t)step, raised = UINT64_MAX;
    if (high >> 32 == 0u) {
        uint64_t product = (high << 32) + low; /* wrapped iff below low */
        if (product >= low && product <= UINT64_MAX - threshold_sum)
            raised = threshold_sum + product;
    }
    return raised > error_sum ? raised : error_sum;
}

#endif
