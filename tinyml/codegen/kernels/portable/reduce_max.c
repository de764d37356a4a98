static void tml_reduce_max(const tml_reduce_max_params *p, const int8_t *input, int8_t *output)
{
    int32_t o, r, i;
    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < p->inner; ++i) {
            const int8_t *x = input + o * p->reduced * p->inner + i;
            int8_t best = -128;
            for (r = 0; r < p->reduced; ++r) {
                if (x[r * p->inner] > best) {
                    best = x[r * p->inner];
                }
            }
            output[o * p->inner + i] = best;
        }
    }
}
