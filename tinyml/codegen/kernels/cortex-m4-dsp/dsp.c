/* Cortex-M4 DSP helpers: four int8 inputs in a 32-bit word unpack into two int16 pairs (even
 * bytes, odd bytes), each of which one SMLAD multiplies with a pair of weights and accumulates. */

static inline uint32_t tml_load4(const int8_t *p)
{
    /* 4 bytes at any alignment: the M4 does unaligned LDR, memcpy keeps C's aliasing rules */
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int32_t tml_sxtb16_ror8(uint32_t v)
{
    /* bytes 1 and 3 as an int16 pair: one instruction, which ACLE has no intrinsic for */
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* tml_requant (fixedpoint) in fewer instructions, with the same result for every input:
 * TFLM's SaturatingRoundingDoublingHighMul nudges by 2^30 (1 - 2^30 when negative) and then
 * truncates toward zero; for every 64-bit product that equals flooring (ab + 2^30) / 2^31, one
 * arithmetic shift. Its saturation case needs multiplier == INT32_MIN, which the generator never
 * emits (multipliers lie in [2^30, 2^31) or are 0). RoundingDivideByPOT is unchanged, branch-free. */
static inline int32_t tml_requant_dsp(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift & ~(shift >> 31); /* max(shift, 0), branch-free */
    const int32_t right = left - shift;          /* max(-shift, 0) */
    const int32_t s = (int32_t)(((int64_t)(int32_t)((uint32_t)x << left) * multiplier + ((int64_t)1 << 30)) >> 31);
    const int32_t mask = (int32_t)((1u << right) - 1u);
    return (s >> right) + ((s & mask) > (mask >> 1) + (int32_t)((uint32_t)s >> 31));
}
