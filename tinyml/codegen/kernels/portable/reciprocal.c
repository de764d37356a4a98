/* requires: gemmlowp */
static int32_t tml_one_over_one_plus_x(int32_t a)
{
    return tml_shl_sat(tml_newton_reciprocal(a), 1);
}
