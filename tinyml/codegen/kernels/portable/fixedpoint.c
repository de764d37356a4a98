/* Integer rounding arithmetic of TFLM's reference kernels (gemmlowp semantics, double rounding). */

static int32_t tml_srdhm(int32_t a, int32_t b)
{
    /* SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturating the one overflow case.
     * TFLM nudges by 2^30 (1 - 2^30 for a negative product) and truncates toward zero; for every
     * 64-bit product that is the same as flooring (ab + 2^30) / 2^31: one arithmetic shift. */
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

static int32_t tml_rdbpot(int32_t x, int exponent)
{
    /* RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero. */
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t tml_requant(int32_t x, int32_t multiplier, int shift)
{
    /* MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31). */
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return tml_rdbpot(tml_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static int8_t tml_clamp8(int32_t x, int32_t lo, int32_t hi)
{
    return (int8_t)(x < lo ? lo : (x > hi ? hi : x));
}
