/* requires: fixedpoint */
/* Fixed-point exp and reciprocal with gemmlowp's exact rounding (Q0.31 results). */

static int32_t tml_add_wrap(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t tml_shl_sat(int32_t x, int exponent)
{
    /* SaturatingRoundingMultiplyByPOT for a positive exponent. */
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t tml_exp_quarter(int32_t a)
{
    /* exp(a) for a in [-1/4, 0), Taylor series around -1/8. */
    const int32_t constant_term = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = tml_add_wrap(a, 1 << 28);
    const int32_t x2 = tml_srdhm(x, x);
    const int32_t x3 = tml_srdhm(x2, x);
    const int32_t x4 = tml_srdhm(x2, x2);
    const int32_t x4_over_4 = tml_rdbpot(x4, 2);
    const int32_t poly = tml_rdbpot(tml_add_wrap(tml_srdhm(tml_add_wrap(x4_over_4, x3), one_third), x2), 1);
    return tml_add_wrap(constant_term, tml_srdhm(constant_term, tml_add_wrap(x, poly)));
}

static int32_t tml_exp_on_negative(int32_t a, int integer_bits)
{
    /* exp(a) for a <= 0 given in Q(integer_bits).(31 - integer_bits), integer_bits <= 5. */
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod = tml_add_wrap(a & (one_quarter - 1), -one_quarter);
    const int32_t remainder = tml_add_wrap(a_mod, -a);
    int32_t result = tml_exp_quarter(tml_shl_sat(a_mod, integer_bits));
    int e;
    for (e = -2; e <= 4; ++e) {
        if (integer_bits > e && (remainder & ((int32_t)1 << (fractional_bits + e)))) {
            result = tml_srdhm(result, multipliers[e + 2]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

static int32_t tml_newton_reciprocal(int32_t a)
{
    /* 1 / ((1 + a) / 2) in Q2.29 for a in [0, 1): three Newton-Raphson steps from 48/17 - 32/17 d. */
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = tml_add_wrap(1515870810, tml_srdhm(half_den, -1010580540));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = tml_add_wrap((int32_t)1 << 29, -tml_srdhm(half_den, x));
        x = tml_add_wrap(x, tml_shl_sat(tml_srdhm(x, one_minus), 2));
    }
    return x;
}
