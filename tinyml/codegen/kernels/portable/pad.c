static void tml_pad(const tml_pad_params *p, const int8_t *input, int8_t *output)
{
    int32_t i[5];
    for (i[0] = 0; i[0] < p->out_dims[0]; ++i[0]) {
        for (i[1] = 0; i[1] < p->out_dims[1]; ++i[1]) {
            for (i[2] = 0; i[2] < p->out_dims[2]; ++i[2]) {
                for (i[3] = 0; i[3] < p->out_dims[3]; ++i[3]) {
                    for (i[4] = 0; i[4] < p->out_dims[4]; ++i[4]) {
                        int32_t d, src = 0, inside = 1;
                        for (d = 0; d < 5; ++d) {
                            const int32_t k = i[d] - p->before[d];
                            inside = inside && k >= 0 && k < p->in_dims[d];
                            src = src * p->in_dims[d] + k;
                        }
                        *output++ = inside ? input[src] : (int8_t)p->value;
                    }
                }
            }
        }
    }
}
