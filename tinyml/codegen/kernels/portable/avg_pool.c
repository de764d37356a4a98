/* requires: pool */
static void tml_avg_pool(const tml_pool_params *p, const int8_t *input, int8_t *output)
{
    tml_pool(p, input, output, 1);
}
